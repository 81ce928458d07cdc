"""COCO and MPII readers on the real samples in ../shared/data, and the data configs."""
import json

import numpy as np
import pytest
from conftest import shared_path

from rsn_tf.config import ConfigError
from rsn_tf.data.coco import load_coco
from rsn_tf.data.config import AugmentConfig, DataConfig, RECIPE_DEFAULTS, mpii_data_config
from rsn_tf.data.mpii import load_mpii
from rsn_tf.keypoints import COCO, MPII


def test_coco_sample_counts_and_values():
    ann = shared_path("data", "coco_sample", "test_coco.json")
    data = json.load(open(ann))
    inst = load_coco(ann, shared_path("data", "coco_sample"))
    # expected from the JSON itself: non-crowd annotations with at least one labelled keypoint
    keep = [a for a in data["annotations"] if not a["iscrowd"] and max(a["keypoints"][2::3]) > 0]
    assert len(keep) < len(data["annotations"])  # the sample has instances to skip
    assert len(inst) == len(keep)
    assert inst.spec is COCO
    assert sorted(inst.ann_ids.tolist()) == sorted(a["id"] for a in keep)
    by_id = {a["id"]: a for a in keep}
    images = {i["id"]: i for i in data["images"]}
    for r in range(len(inst)):
        a = by_id[int(inst.ann_ids[r])]
        kp = np.array(a["keypoints"], np.float32).reshape(17, 3)
        np.testing.assert_allclose(inst.keypoints[r], kp[:, :2])
        np.testing.assert_array_equal(inst.visible[r], kp[:, 2])
        assert inst.image_ids[r] == a["image_id"]
        assert inst.image_paths[r].endswith(images[a["image_id"]]["file_name"])
        x, y, w, h = inst.boxes[r]
        assert w > 0 and h > 0 and x >= 0 and y >= 0
        assert x + w <= images[a["image_id"]]["width"] and y + h <= images[a["image_id"]]["height"]
        assert inst.areas[r] == pytest.approx(a["area"])
    assert int((inst.visible > 0).sum()) == sum(a["num_keypoints"] for a in keep)


def test_mpii_sample():
    """The file is 1-based (MATLAB): the reader gives 0-based joints and region centres."""
    ann = shared_path("data", "mpii_sample", "test_mpii.json")
    data = json.load(open(ann))
    inst = load_mpii(ann, shared_path("data", "mpii_sample"))
    assert len(inst) == len(data) and inst.spec is MPII
    for r, e in enumerate(data):
        side = e["scale"] * 200 * 1.25
        cx, cy = e["center"][0] - 1, e["center"][1] + 15 * e["scale"] - 1
        np.testing.assert_allclose(inst.boxes[r], [cx - side / 2, cy - side / 2, side, side], rtol=1e-5)
        np.testing.assert_allclose(inst.keypoints[r], np.array(e["joints"], np.float32) - 1)
        np.testing.assert_array_equal(inst.visible[r], np.where(np.array(e["joints_vis"]) > 0, 2, 0))
        assert inst.image_ids[r] == int(e["image"].split(".")[0])
    assert int((inst.visible > 0).sum()) == sum(sum(1 for v in e["joints_vis"] if v > 0) for e in data)


def test_one_mpii_reader_for_training_and_pckh():
    """Training targets and PCKh ground truth from one file are the same points and regions (one reader,
    1-based -> 0-based once): they used to sit 1 px apart."""
    from rsn_tf.evaluation import mpii as mpii_eval

    ann = shared_path("data", "mpii_sample", "test_mpii.json")
    inst = load_mpii(ann, shared_path("data", "mpii_sample"))
    entries = mpii_eval.load_mpii(ann)
    assert mpii_eval.read_mpii is __import__("rsn_tf.data.mpii", fromlist=["read_mpii"]).read_mpii
    for r, e in enumerate(entries):
        np.testing.assert_array_equal(inst.keypoints[r], e.joints)
        np.testing.assert_allclose(inst.boxes[r, :2] + inst.boxes[r, 2:] / 2, e.center, atol=1e-4)
        np.testing.assert_allclose(inst.boxes[r, 2:], e.scale, rtol=1e-6)


def test_data_config_from_dict_and_recipes():
    cfg = DataConfig.from_dict({"format": "coco", "train_ann": "a.json", "augment": {"recipe": "mmpose"}})
    assert cfg.augment.resolved().rotation_max == RECIPE_DEFAULTS["mmpose"]["rotation_max"] == 80.0
    assert AugmentConfig().resolved().rotation_max == 45.0
    assert AugmentConfig(rotation_max=30.0).resolved().rotation_max == 30.0
    with pytest.raises(ConfigError, match="augment.*flip"):
        DataConfig.from_dict({"augment": {"flip": 0.5}})
    with pytest.raises(ConfigError, match="probability"):
        AugmentConfig(flip_prob=2.0)
    assert DataConfig(root="/r", train_ann="x.json").split_paths("train") == ("/r/x.json", "/r")
    assert mpii_data_config().augment.resolved().rotation_max == 60.0
    assert DataConfig.from_dict(cfg.to_dict()) == cfg
