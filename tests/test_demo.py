"""The README's main job end to end, shrunk: complexity -> synth -> train -> eval -> summary."""
import os

from rsn_tf.cli import main


def test_demo_end_to_end_small(tmp_path, capsys):
    out = str(tmp_path / "demo")
    rc = main(["demo", "--out", out, "--presets", "rsn18", "--images", "10",
               "--set", "train.epochs=1", "--set", "train.steps_per_epoch=2", "--set", "train.batch_size=4",
               "--set", "train.validation_steps=1", "--set", "train.schedule.warmup_steps=1"])
    assert rc == 0
    for rel in ("complexity/complexity.md", "complexity/rsn18_summary.txt", "synth/synth_sheet.png",
                "train/model.keras", "train/history.csv", "eval/metrics.json", "eval/overlays.png", "summary.md"):
        assert os.path.getsize(os.path.join(out, rel)) > 0, rel
    summary = open(os.path.join(out, "summary.md")).read()
    assert "| rsn18 | 256x192 | 9.145 | 2.245 |" in summary
    assert "| AP | AP50 |" in summary and "Held-out localisation" in summary
    # the demo says what its model can and cannot do, and where real weights are
    assert "never seen a real person" in summary and "rsn infer --weights mmpose/rsn18-coco" in summary
    assert "Connected to" in open(os.path.join(out, "complexity", "rsn18_summary.txt")).read()  # not cut at 80
    assert os.path.getsize(os.path.join(out, "eval", "metrics.md")) > 0
