"""What a newcomer meets: every fault caught before work starts, nothing silently lost, output that does
not mislead. Bad files are made here from the shared samples; a weights path that does not exist proves a
check ran before the model was loaded (that error would come first otherwise)."""
import json
import logging
import os
import shutil
import subprocess
import sys
from types import SimpleNamespace

import cv2
import numpy as np
import pytest
from conftest import REPO, shared_path

from rsn_tf.cli import build_parser, main
from rsn_tf.keypoints import COCO
from rsn_tf.model import ModelConfig, build_rsn

TINY = ModelConfig(num_blocks=(1, 1, 1, 1), planes=(16, 32, 64, 128), stem_channels=16, unit_channels=32,
                   input_size=(128, 96))
NO_MODEL = "no-such-model.keras"


def zero_estimator():
    """A PoseEstimator over a network that outputs flat heatmaps: the real code path, no TensorFlow."""
    from rsn_tf.inference.estimator import PoseEstimator
    h, w = TINY.heatmap_size
    return PoseEstimator(lambda x: np.zeros((len(x), h, w, 17), np.float32), config=TINY, keypoints="coco")


def coco_sample():
    return shared_path("data", "coco_sample", "test_coco.json"), shared_path("data", "coco_sample")


def _coco_copy(tmp_path, name, change):
    ann, _ = coco_sample()
    data = json.load(open(ann))
    change(data)
    path = tmp_path / name
    path.write_text(json.dumps(data))
    return str(path), data


def _short_keypoints(data):
    person = [a for a in data["annotations"] if not a["iscrowd"]][1]
    person["keypoints"] = person["keypoints"][:48]  # 16 triplets in a 17-keypoint file
    data["bad_id"] = person["id"]


@pytest.fixture(scope="module")
def synthetic_tiny(tmp_path_factory):
    """A tiny random RSN whose metadata says it was trained on the built-in synthetic figures."""
    import keras
    keras.utils.set_random_seed(0)
    meta = {"keypoints": "coco", "trained_with": "rsn train", "experiment": {"name": "synthetic_rsn18"},
            "trained_on": {"annotations": "synth/person_keypoints_train.json",
                           "description": "rsn_tf synthetic people, seed 0", "synthetic": True}}
    path = str(tmp_path_factory.mktemp("model") / "synthetic_tiny.keras")
    build_rsn(TINY, metadata=meta).save(path)
    return path


# ------------------------------------------------------------------------------------ annotations
def test_one_annotation_validation_for_train_and_eval(tmp_path, capsys):
    """16 triplets in a 17-keypoint file: rsn eval names the annotation id and field, as rsn train does,
    before the model is even loaded (it used to print a numpy broadcast error after inference)."""
    from rsn_tf.data.coco import load_coco
    ann, data = _coco_copy(tmp_path, "kp16.json", _short_keypoints)
    _, images = coco_sample()
    expected = f"annotation id {data['bad_id']}: field 'keypoints' has 48 values, expected 3 * 17 = 51"
    with pytest.raises(ValueError) as train_error:
        load_coco(ann, images)  # the training reader
    assert expected in str(train_error.value)
    assert main(["eval", "--weights", NO_MODEL, "--ann", ann, "--images", images, "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"rsn eval: error: {train_error.value}"
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("change, message", [
    (lambda d: d["annotations"][1].update(id=d["annotations"][0]["id"]), "appears twice"),
    (lambda d: d["annotations"][0].update(image_id=424242), "field 'image_id' is 424242, which is not an id"),
    (lambda d: d["annotations"][0].update(bbox=[1, 2, 3]), "field 'bbox' must be [x, y, w, h] (4 numbers)"),
    (lambda d: d["annotations"].clear(), "no person with a labelled keypoint"),
])
def test_more_annotation_faults_are_one_line_before_work(tmp_path, capsys, change, message):
    ann, _ = _coco_copy(tmp_path, "bad.json", change)
    _, images = coco_sample()
    assert main(["eval", "--weights", NO_MODEL, "--ann", ann, "--images", images, "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"rsn eval: error: {ann}: ") and message in err and len(err.strip().splitlines()) == 1


def test_model_and_dataset_keypoint_counts_checked_before_inference(tmp_path, capsys, monkeypatch,
                                                                    synthetic_tiny):
    """A 14-keypoint file (with --sigmas) and a 17-keypoint model: one line naming both counts and the file,
    and the network never runs."""
    from rsn_tf.inference.estimator import PoseEstimator

    def k14(d):
        c = d["categories"][0]
        c["keypoints"], c["skeleton"] = c["keypoints"][:14], []
        for a in d["annotations"]:
            a["keypoints"] = a["keypoints"][:42]
    ann, _ = _coco_copy(tmp_path, "k14.json", k14)
    _, images = coco_sample()
    monkeypatch.setattr(PoseEstimator, "predict_many", lambda *a, **k: pytest.fail("inference ran"))
    assert main(["eval", "--weights", synthetic_tiny, "--ann", ann, "--images", images, "--sigmas",
                 ",".join(["0.05"] * 14), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert f"{ann}: the annotations have 14 keypoints per person but the model outputs 17" in err


def test_detection_file_ids_none_is_an_error_some_are_counted(tmp_path, capsys, caplog):
    from rsn_tf.evaluation.runner import evaluate_coco

    ann, images = coco_sample()
    dets = json.load(open(shared_path("data", "coco_sample", "test_coco_det_AP_H_56.json")))
    none = tmp_path / "dets_none.json"
    none.write_text(json.dumps([dict(d, image_id=d["image_id"] + 10 ** 7) for d in dets]))
    assert main(["eval", "--weights", NO_MODEL, "--ann", ann, "--images", images, "--boxes", str(none),
                 "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert f"{none}: none of its 118 detections is for an image of {ann}" in err and "10000785" in err
    some = tmp_path / "dets_some.json"
    some.write_text(json.dumps([dict(d, image_id=d["image_id"] + (10 ** 7 if d["image_id"] == 785 else 0))
                                for d in dets]))
    n_785 = sum(d["image_id"] == 785 for d in dets)
    with caplog.at_level(logging.WARNING):
        m = evaluate_coco(zero_estimator(), ann, images, boxes=str(some), verbose=False)
    assert f"{n_785} of 118 detections are for 1 image ids not in {ann} and are skipped: [10000785]" in caplog.text
    assert "1 of 4 images with annotated people have no detection" in caplog.text and "000000000785.jpg" in caplog.text
    assert m["input"]["detections_unknown_image_ids"] == 1 and m["input"]["images_without_detections"] == 1


def test_eval_writes_metrics_md_and_overlays_with_ground_truth_and_legend(tmp_path):
    from rsn_tf.evaluation.runner import evaluate_coco, write_overlays
    from rsn_tf.visualize import LEFT

    ann, images = coco_sample()
    out = tmp_path / "eval"
    m = evaluate_coco(zero_estimator(), ann, images, out_dir=str(out), num_overlays=1, verbose=False)
    md = (out / "metrics.md").read_text()
    assert "| AP |" in md and ann in md and "flip test on" in md
    first = cv2.imread(m["overlays"][0])
    image = cv2.imread(os.path.join(images, "000000000785.jpg"))
    assert first.shape[1] == image.shape[1] and first.shape[0] > image.shape[0]  # + the legend strip
    # ground truth drawn under the predictions: a ring of the side colour around a labelled left joint
    gt = np.zeros((1, 17, 2), np.float32)
    vis = np.zeros((1, 17), np.float32)
    gt[0, 5], vis[0, 5] = [40, 40], 2  # left shoulder
    far = SimpleNamespace(keypoints=np.full((17, 2), 150.0, np.float32), keypoint_scores=np.full(17, 1.0),
                          box=None, box_score=1.0, score=1.0)
    blank = tmp_path / "blank"
    blank.mkdir()
    cv2.imwrite(str(blank / "x.png"), np.zeros((200, 200, 3), np.uint8))
    paths = write_overlays([(1, [far])], {1: {"file_name": "x.png"}}, str(blank), COCO, str(tmp_path / "ov"),
                           {1: (gt, vis)})
    pic = cv2.imread(paths[0])
    ring = pic[40 - 5:40 + 6, 40 - 5:40 + 6].reshape(-1, 3)
    assert (np.abs(ring.astype(int) - LEFT).sum(1) < 30).any()  # the ring, in the left colour
    assert pic.shape[0] > 200 and (pic[200:] == 255).mean() > 0.5  # a white legend strip underneath


def test_contact_sheet_and_overlays_share_one_palette():
    """The same body part gets the same colour in the synthetic contact sheet, the ground truth and the
    predictions (they used to be blue-ish / red-ish on one and orange / blue on the other)."""
    from rsn_tf.data.contact_sheet import draw_instances
    from rsn_tf.visualize import LEFT, RIGHT, draw_ground_truth, draw_poses

    img = np.zeros((120, 160, 3), np.uint8)
    kp = np.zeros((1, 17, 2), np.float32)
    vis = np.zeros((1, 17), np.float32)
    kp[0, 5], kp[0, 7], kp[0, 6], kp[0, 8] = [30, 20], [30, 100], [120, 20], [120, 100]  # left/right upper arm
    vis[0, [5, 6, 7, 8]] = 2
    sheet = draw_instances(img, kp, vis, np.array([[0, 0, 159, 119]]), COCO)
    np.testing.assert_array_equal(sheet, draw_ground_truth(img, kp, vis, COCO, boxes=[[0, 0, 159, 119]],
                                                           thickness=2))
    pose = SimpleNamespace(keypoints=kp[0], keypoint_scores=np.full(17, 1.5), box=None, box_score=1.0, score=1.0)
    pred = draw_poses(img, [pose], COCO)

    def hue(picture, x):
        px = picture[60, x - 1:x + 2].astype(float).max(0)
        return px / px.max()
    for x, colour in ((30, LEFT), (120, RIGHT)):
        want = np.asarray(colour, float) / max(colour)
        np.testing.assert_allclose(hue(sheet, x), want, atol=0.1)
        np.testing.assert_allclose(hue(pred, x), want, atol=0.1)


# ------------------------------------------------------------------------------------ infer
def _exif_jpeg(src: str, dst: str, orientation: int) -> None:
    from PIL import Image
    im = Image.open(src).convert("RGB")
    exif = Image.Exif()
    exif[0x0112] = orientation
    im.save(dst, exif=exif, quality=95)


def test_read_image_orientation_rule(tmp_path):
    """One decoder: the stored pixels by default (datasets are annotated so), the EXIF-upright picture on
    request, equal to what Pillow (a viewer) shows, for all 8 EXIF orientations."""
    from PIL import Image, ImageOps

    from rsn_tf.data.images import exif_orientation, read_image
    from rsn_tf.evaluation.runner import read_image as eval_reader

    src = shared_path("data", "person_images", "grace_hopper.jpg")
    for tag in range(1, 9):
        path = str(tmp_path / f"o{tag}.jpg")
        _exif_jpeg(src, path, tag)
        stored = read_image(path)
        assert exif_orientation(path) == tag
        np.testing.assert_array_equal(stored, cv2.imdecode(np.fromfile(path, np.uint8),
                                                           cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION))
        np.testing.assert_array_equal(eval_reader(path), stored)  # evaluation: stored orientation
        viewer = np.asarray(ImageOps.exif_transpose(Image.open(path)).convert("RGB"))[:, :, ::-1]
        upright = read_image(path, "exif")
        assert upright.shape == viewer.shape, tag
        assert np.abs(upright.astype(int) - viewer.astype(int)).mean() < 3, tag  # decoder rounding only


def test_one_read_image_everywhere():
    """No module decodes images itself: everything goes through rsn_tf.data.images.read_image."""
    offenders = []
    for root, _, files in os.walk(os.path.join(REPO, "rsn_tf")):
        for f in files:
            if f.endswith(".py") and os.path.join(root, f) != os.path.join(REPO, "rsn_tf", "data", "images.py"):
                text = open(os.path.join(root, f)).read()
                if "cv2.imread(" in text or "cv2.imdecode(" in text:
                    offenders.append(os.path.relpath(os.path.join(root, f), REPO))
    assert offenders == []


def test_infer_unique_names_orientation_and_model_card(tmp_path, capsys, synthetic_tiny):
    """a/grace_hopper.jpg and b/grace_hopper.png: two overlays with two names (one used to overwrite the
    other); a phone photo with an EXIF tag is processed upright and says so; the synthetic model says what
    it cannot do and where real weights are."""
    src = shared_path("data", "person_images", "grace_hopper.jpg")
    for d in "abc":
        (tmp_path / d).mkdir()
    shutil.copy(src, tmp_path / "a" / "grace_hopper.jpg")
    cv2.imwrite(str(tmp_path / "b" / "grace_hopper.png"), cv2.imread(src))
    _exif_jpeg(src, str(tmp_path / "c" / "phone.jpg"), 6)  # stored sideways, shown rotated 90 clockwise
    files = [str(tmp_path / "a" / "grace_hopper.jpg"), str(tmp_path / "b" / "grace_hopper.png"),
             str(tmp_path / "c" / "phone.jpg")]
    out = tmp_path / "out"
    assert main(["infer", "--weights", synthetic_tiny, *files, "--out", str(out)]) == 0
    stdout = capsys.readouterr().out
    assert "wrote" in stdout and "and 3 overlays" in stdout
    assert "note: this model was trained only on the built-in synthetic stick figures" in stdout
    assert "rsn infer --weights mmpose/rsn18-coco" in stdout
    poses = json.load(open(out / "poses.json"))
    names = [e["overlay"] for e in poses["images"]]
    assert names == ["grace_hopper_jpg.png", "grace_hopper_png.png", "phone.png"]
    assert sorted(os.listdir(out)) == sorted(names + ["poses.json"])
    phone = poses["images"][2]
    assert (phone["width"], phone["height"]) == (600, 512) and phone["orientation"].startswith("exif 6 applied")
    assert poses["images"][0]["orientation"] == "stored"
    # a rerun into the same folder says what it replaced; --orientation stored keeps the stored frame
    assert main(["infer", "--weights", synthetic_tiny, files[2], "--orientation", "stored", "--out", str(out)]) == 0
    assert "replaced 2 file(s) of an earlier run" in capsys.readouterr().out
    phone = json.load(open(out / "poses.json"))["images"][0]
    assert (phone["width"], phone["height"]) == (512, 600) and "not applied" in phone["orientation"]


def test_overlay_names_never_collide():
    from rsn_tf.visualize import overlay_names
    names = overlay_names(["a/x.jpg", "b/x.png", "c/x.jpg", "d/x.jpg", "y.jpg", "e/y.jpg", "d/x.jpg"])
    assert len(set(names)) == 7
    assert names[:4] == ["a_x_jpg.png", "x_png.png", "c_x_jpg.png", "d_x_jpg.png"] and names[6] == "d_x_jpg_2.png"
    assert overlay_names(["a/p.jpg", "b/q.jpg"]) == ["p.png", "q.png"]


def test_infer_input_faults_before_the_model_loads(tmp_path, capsys):
    bad = tmp_path / "not_an_image.jpg"
    bad.write_text("hello")
    assert main(["infer", "--weights", NO_MODEL, str(bad), str(tmp_path / "missing.jpg"), "--out",
                 str(tmp_path / "o")]) == 2
    assert "none of the 2 given files is a readable image" in capsys.readouterr().err
    boxes = tmp_path / "boxes.json"
    boxes.write_text(json.dumps({"someone_else.jpg": [[1, 2, 30, 40]]}))
    photo = shared_path("data", "person_images", "astronaut.png")
    assert main(["infer", "--weights", NO_MODEL, photo, "--boxes", str(boxes), "--out", str(tmp_path / "o")]) == 2
    assert "none of its 1 names" in capsys.readouterr().err
    (tmp_path / "afile").write_text("x")
    assert main(["infer", "--weights", NO_MODEL, photo, "--out", str(tmp_path / "afile")]) == 2
    assert "is a file; give a folder" in capsys.readouterr().err


# ------------------------------------------------------------------------------------ held-out, model card
def test_heldout_evaluation_uses_the_mpii_decode_kernel():
    from rsn_tf.data.config import DataConfig
    from rsn_tf.training.heldout import heldout_keypoint_error

    ann = shared_path("data", "mpii_sample", "test_mpii.json")
    model = build_rsn(TINY.replace(num_keypoints=16, input_size=(64, 64)), metadata={"keypoints": "mpii"})
    cfg = DataConfig(format="mpii", root=os.path.dirname(ann), train_ann="test_mpii.json", val_ann="test_mpii.json",
                     keypoints="mpii")
    r = heldout_keypoint_error(model, cfg, batch_size=8)
    assert r["decode_kernel"] == 9 and r["instances"] == 5


def test_trained_model_records_what_it_was_trained_on(tmp_path):
    from rsn_tf.data.synth import make_synthetic_dataset
    from rsn_tf.provenance import describe_model
    from rsn_tf.training.config import load_experiment
    from rsn_tf.training.trainer import experiment_metadata

    make_synthetic_dataset(str(tmp_path / "synth"), 2, 0, size=(64, 64))
    exp = load_experiment("synthetic_rsn18", [f"data.root={tmp_path / 'synth'}"])
    meta = experiment_metadata(exp)
    assert meta["trained_on"]["synthetic"] is True
    card = describe_model(meta)
    assert card.synthetic and "never seen a real person" in card.caveat and "mmpose/rsn18-coco" in card.caveat
    assert describe_model({"weights": "mmpose", "source": "x.pth", "keypoints": "coco"}).caveat is None
    assert "untrained" in describe_model({"weights": "random (untrained)"}).caveat


# ------------------------------------------------------------------------------------ output
def test_complexity_all_prints_each_row_as_it_is_counted(monkeypatch, capsys):
    import rsn_tf.complexity as cx
    seen = []

    def fake(name, input_size=None):
        seen.append(capsys.readouterr().out)  # what the user has seen when the next network starts building
        return cx.Complexity(name, "256x192", 1_000_000, 2_000_000_000, None)
    monkeypatch.setattr(cx, "preset_complexity", fake)
    assert main(["complexity", "--all"]) == 0
    assert "| preset |" in seen[0] and "| rsn18 |" in seen[1] and len(seen) == len(cx.all_presets())
    assert "MACs count" in capsys.readouterr().out


def test_model_summary_is_not_cut_at_80_columns():
    from rsn_tf.complexity import summary_text
    text = summary_text(build_rsn(TINY))
    assert "Param #" in text and "Connected to" in text and max(map(len, text.splitlines())) > 80


def test_start_up_is_quiet_and_errors_are_one_line(tmp_path):
    """A command prints the project's own output: no TensorFlow/absl/oneDNN lines on stderr."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TF_CPP")}
    env["PYTHONPATH"] = REPO
    r = subprocess.run([sys.executable, "-m", "rsn_tf", "complexity", "--preset", "res18", "--input", "64x64"],
                       capture_output=True, text=True, env=env, cwd=str(tmp_path), timeout=600)
    assert r.returncode == 0 and "| res18 | 64x64 |" in r.stdout
    assert r.stderr == "", r.stderr
    from rsn_tf.cli import _error_line
    assert "pip install -e '.[export]'" in _error_line(ModuleNotFoundError("No module named 'ai_edge_litert'",
                                                                           name="ai_edge_litert"))


def test_sizes_are_spelled_hxw_in_every_command_and_no_default_points_into_shared():
    from rsn_tf.commands.common import parse_hw
    assert parse_hw("256x192") == parse_hw("256X192") == parse_hw("256×192") == (256, 192)
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    sizes = 0
    for name, p in sub.choices.items():
        for action in p._actions:
            if action.option_strings and action.dest in ("input", "image_size"):  # not rsn video's INPUT
                assert "HxW" in action.help, (name, action.dest)
                sizes += 1
            assert "shared" not in str(action.default), (name, action.dest, action.default)
    assert sizes >= 5  # complexity, convert-mmpose, export, bench --input; synth --image-size


def test_infer_command_does_not_import_the_eval_command():
    from helpers.import_graph import import_graph

    imports = import_graph()["rsn_tf.commands.infer"]
    assert "rsn_tf.commands.eval" not in imports and "rsn_tf.commands.common" in imports


def test_readme_tells_a_newcomer_how_to_run_rsn_and_what_to_expect():
    text = open(os.path.join(REPO, "README.md")).read()
    assert "source .venv/bin/activate" in text and ".venv/bin/rsn" in text
    assert "test suite takes" in text
    assert "rsn infer --weights mmpose/rsn18-coco" in text and "synthetic" in text
