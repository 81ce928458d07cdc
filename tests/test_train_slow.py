"""Slow end-to-end training checks (run with --runslow): kill -9 and resume through the CLI, and
overfitting the 12 real COCO people of ../shared/data/coco_sample."""
import json
import os
import signal
import subprocess
import sys
import time

import pytest
import yaml

from conftest import shared_path
from helpers.tiny import TINY_MODEL

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OVERFIT_RATIO = 0.6


def _env():
    return dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH=REPO)


def _coco_sample_config(tmp_path, model, **train):
    ann = shared_path("data", "coco_sample", "test_coco.json")
    images = os.path.dirname(ann)
    cfg = {"name": "coco_sample", "model": model,
           "data": {"format": "coco", "train_ann": ann, "train_images": images, "val_ann": ann, "val_images": images,
                    "augment": {"recipe": "none"}},
           "train": {"batch_size": 4, "validation_freq": 0, "verbose": 2, **train}}
    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return str(path)


@pytest.mark.slow
def test_kill_9_then_rerun_resumes(tmp_path):
    cfg = _coco_sample_config(tmp_path, TINY_MODEL, epochs=4, steps_per_epoch=3,
                              optimizer={"lr": 1e-3}, schedule={"name": "constant"})
    wd = str(tmp_path / "wd")
    cmd = [sys.executable, "-m", "rsn_tf", "train", "--config", cfg, "--workdir", wd]
    p = subprocess.Popen(cmd, env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=REPO)
    history = os.path.join(wd, "history.csv")
    backup = os.path.join(wd, "backup", "training_metadata.json")  # written after the epoch's records

    def backed_up():
        try:
            return json.load(open(backup))["epoch"]
        except (OSError, ValueError):
            return 0

    deadline = time.time() + 500
    while time.time() < deadline and p.poll() is None and backed_up() < 1:
        time.sleep(0.5)
    assert p.poll() is None, "training finished before it could be killed"
    p.send_signal(signal.SIGKILL)
    p.wait()
    done = backed_up()
    assert 1 <= done < 4
    rows = len(open(history).read().strip().splitlines()) - 1
    assert rows >= done  # every backed-up epoch has its row (an epoch recorded but not backed up is redone)
    out = subprocess.run(cmd, env=_env(), capture_output=True, text=True, cwd=REPO, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    assert f"Epoch {done + 1}/4" in out.stdout and "Epoch 1/4" not in out.stdout
    epochs = [ln.split(",")[0] for ln in open(history).read().strip().splitlines()[1:]]
    assert epochs[-1] == "3" and sorted(set(epochs)) == ["0", "1", "2", "3"]


@pytest.mark.slow
def test_overfit_coco_sample(tmp_path):
    """rsn18 graph at quarter width, 128x96, no augmentation, the 12 labelled people, 1,000 steps of
    Adam 1e-2: the loss falls far below its start (measured: 806 -> see docs/training.md)."""
    model = {"preset": "rsn18", "input_size": [128, 96],
             "overrides": {"planes": [16, 32, 64, 128], "stem_channels": 16, "res_top_channels": 16,
                           "unit_channels": 64}}
    cfg = _coco_sample_config(tmp_path, model, batch_size=12, epochs=200, steps_per_epoch=5,
                              optimizer={"lr": 1e-2}, schedule={"name": "constant", "warmup_steps": 10})
    from rsn_tf.training.callbacks import read_history
    from rsn_tf.training.trainer import train_experiment

    train_experiment(cfg, str(tmp_path / "wd"))
    rows = read_history(str(tmp_path / "wd" / "history.csv"))
    first, last = rows[0]["loss"], rows[-1]["loss"]
    print(json.dumps({"first_loss": first, "last_loss": last, "ratio": last / first}))
    assert last < OVERFIT_RATIO * first


@pytest.mark.slow
def test_train_synthetic_main_job(tmp_path):
    """The demo's training step end to end on a few synthetic images, with a tiny model."""
    from rsn_tf.training.synthetic import train_synthetic

    overrides = [f"model={json.dumps(TINY_MODEL)}", "model.input_size=[128,96]", "train.epochs=1",
                 "train.steps_per_epoch=2", "train.batch_size=4", "train.validation_steps=1",
                 "train.schedule.warmup_steps=0"]
    r = train_synthetic(str(tmp_path), num_images=10, overrides=overrides)
    assert os.path.exists(r["model"]) and len(r["history"]) == 1
    assert r["heldout"]["keypoints"] > 0 and r["heldout"]["mean_px"] > 0
