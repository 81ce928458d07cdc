"""The mmpose parity checker on the shared ``pipeline`` and ``train`` fixtures (the same library code as
``scripts/mmpose_parity.py``), its bad-input errors, and a freshly made fixture when mmpose is installed."""
import os
import subprocess

import pytest

from conftest import REPO, shared_path

MMPOSE_PYTHON = os.environ.get("MMPOSE_PYTHON", "/work/mmpose_venv/bin/python")


def _run(name):
    from rsn_tf.parity import run_fixture

    lines = []
    report = run_fixture(shared_path("fixtures", f"{name}.npz"), shared_path("data", "coco_sample"), log=lines.append)
    print("\n".join(lines + [report.summary()]))
    return report


def test_pipeline_fixture_passes_the_parity_checker():
    report = _run("mmpose_pipeline_coco_sample")
    names = [c.name for c in report.checks]
    for required in ("bbox_xyxy", "center_scale", "warp_mat", "crop", "input_normalised", "heatmaps",
                     "keypoint_weights", "eval.crop", "eval.heatmaps"):
        assert required in names
    assert report.ok, report.lines()
    crop = next(c for c in report.checks if c.name == "crop")
    assert crop.worst == 0 and crop.tolerance == 0  # bit-exact on OpenCV 4.x


def test_train_fixture_passes_the_parity_checker():
    report = _run("mmpose_rsn_train_tiny")
    by_name = {c.name: c for c in report.checks}
    for required in ("data.inputs", "lr", "fp64.loss_terms", "fp64.step0.grad.head", "fp64.step0.grad.backbone",
                     "fp64.after1.weights", "step0.loss_terms", "step0.ohkm_keypoint_losses", "after1.weights",
                     "after1.bn_stats", "steps1-5.loss", "after6.weights", "eval_forward.after6",
                     "after6.eval_outputs", "steps_run"):
        assert required in by_name, required
    assert report.ok, report.lines()
    # the float64 replica of rsn_tf's step sits where mmpose's own float64 replica does
    assert by_name["fp64.step0.grad.head"].worst <= by_name["fp64.step0.grad.head"].tolerance / 2


def test_missing_data_is_one_clear_error(tmp_path):
    from rsn_tf.parity import run_fixture

    with pytest.raises(FileNotFoundError, match="pass --data DIR") as e:
        run_fixture(shared_path("fixtures", "mmpose_pipeline_coco_sample.npz"), str(tmp_path))
    assert "test_coco.json" in str(e.value) and "\n" not in str(e.value)
    with pytest.raises(FileNotFoundError, match="pass --data DIR"):
        run_fixture(shared_path("fixtures", "mmpose_pipeline_coco_sample.npz"), None)


def test_script_reports_bad_data_and_exits_2(tmp_path, capsys):
    import importlib.util

    spec = importlib.util.spec_from_file_location("mmpose_parity", os.path.join(REPO, "scripts", "mmpose_parity.py"))
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    fixture = shared_path("fixtures", "mmpose_pipeline_coco_sample.npz")
    assert script.main([fixture, "--data", str(tmp_path)]) == 2
    out = capsys.readouterr()
    assert "pass --data DIR" in out.err and out.out.strip().endswith("parity: FAIL could not run")
    assert script.DEFAULT_DATA.endswith(os.path.join("shared", "data", "coco_sample"))


@pytest.mark.slow
def test_train_fixture_passes_with_the_traced_step(monkeypatch):
    import rsn_tf.parity.train

    monkeypatch.setattr(rsn_tf.parity.train, "RUN_GRAPH", True)
    assert _run("mmpose_rsn_train_tiny").ok


@pytest.mark.slow
def test_a_fresh_mmpose_fixture_on_a_derived_image_set_passes(tmp_path):
    """Make a pipeline fixture with the real mmpose on mirrored/cropped COCO-sample images with shrunk
    boxes, 384x288 crops and padding 1.0 (keypoints beyond the crop border), then check it."""
    if not os.path.exists(MMPOSE_PYTHON):
        pytest.skip(f"needs an mmpose install ({MMPOSE_PYTHON}; set MMPOSE_PYTHON)")
    import cv2

    out = tmp_path / "fixture"
    cmd = [MMPOSE_PYTHON, os.path.join(REPO, "tests", "helpers", "make_mmpose_pipeline_fixture.py"),
           "--source", shared_path("data", "coco_sample"), "--out", str(out), "--input-size", "384x288",
           "--padding", "1.0", "--box-scale", "0.6,1.0", "--seed", "3", "--tools", shared_path("tools")]
    if os.environ.get("MMPOSE_OPENCV_PATH"):  # an OpenCV 4.x for mmpose's side when its venv has 5.x
        cmd += ["--opencv-path", os.environ["MMPOSE_OPENCV_PATH"]]
    subprocess.run(cmd, check=True, capture_output=True)
    from rsn_tf.parity import run_fixture

    report = run_fixture(str(out / "mmpose_pipeline_derived.npz"), str(out / "data"))
    print("\n".join(report.lines()))
    crop = next(c for c in report.checks if c.name == "crop")
    if not crop.passed and crop.tolerance > 0:
        pytest.skip(f"mmpose's side ran OpenCV 5 ({crop.source}); set MMPOSE_OPENCV_PATH to an OpenCV 4.x "
                    f"(rsn_tf has {cv2.__version__})")
    assert report.ok, report.lines()
