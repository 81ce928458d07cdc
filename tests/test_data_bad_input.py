"""Bad input gives errors naming the file and field (or a logged skip), before or without crashing deep in tf.data."""
import json
import logging
import os

import cv2
import numpy as np
import pytest

from rsn_tf.data.coco import load_coco
from rsn_tf.data.config import DataConfig
from rsn_tf.data.mpii import load_mpii
from rsn_tf.data.pipeline import SampleMaker, load_instances
from rsn_tf.data.synth import coco_category
from rsn_tf.model.config import preset_config


def _person(ann_id, image_id, bbox=(10, 10, 40, 60)):
    kp = []
    for j in range(17):
        kp += [20 + j, 15 + 3 * j, 2]
    return dict(id=ann_id, image_id=image_id, category_id=1, iscrowd=0, num_keypoints=17, keypoints=kp,
                bbox=list(bbox), area=float(bbox[2] * bbox[3]))


def _write(tmp_path, anns=None, drop=None, images=("a.jpg", "b.jpg")):
    for name in images:
        cv2.imwrite(str(tmp_path / name), np.full((80, 64, 3), 128, np.uint8))
    data = dict(images=[dict(id=i + 1, file_name=n, width=64, height=80) for i, n in enumerate(images)],
                annotations=anns if anns is not None else [_person(1, 1), _person(2, 2)],
                categories=[coco_category()])
    if drop:
        del data[drop]
    path = tmp_path / "ann.json"
    path.write_text(json.dumps(data))
    return str(path)


def test_json_missing_annotations_names_file_and_field(tmp_path):
    ann = _write(tmp_path, drop="annotations")
    with pytest.raises(ValueError, match=r"ann\.json.*'annotations'"):
        load_coco(ann, str(tmp_path))


def test_not_json_and_missing_json(tmp_path):
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(ValueError, match="bad.json.*not valid JSON"):
        load_coco(str(tmp_path / "bad.json"), str(tmp_path))
    with pytest.raises(FileNotFoundError, match="nope.json"):
        load_coco(str(tmp_path / "nope.json"), str(tmp_path))


def test_keypoints_of_wrong_length_names_file_id_field(tmp_path):
    bad = _person(77, 1)
    bad["keypoints"] = bad["keypoints"][:-3]
    ann = _write(tmp_path, [_person(1, 1), bad])
    with pytest.raises(ValueError, match=r"ann\.json: annotation id 77: field 'keypoints' has 48 values, expected"):
        load_coco(ann, str(tmp_path))


def test_zero_area_box_is_a_logged_skip(tmp_path, caplog):
    ann = _write(tmp_path, [_person(1, 1), _person(5, 2, bbox=(10, 10, 0, 30))])
    with caplog.at_level(logging.WARNING):
        inst = load_coco(ann, str(tmp_path))
    assert inst.ann_ids.tolist() == [1]
    assert "annotation id 5" in caplog.text and "zero-area" in caplog.text


def test_missing_image_names_the_file_or_is_skipped(tmp_path, caplog):
    ann = _write(tmp_path)
    os.remove(tmp_path / "b.jpg")
    with pytest.raises(FileNotFoundError, match=r"b\.jpg: file not found.*file_name"):
        load_coco(ann, str(tmp_path))
    with caplog.at_level(logging.WARNING):
        inst = load_coco(ann, str(tmp_path), skip_bad_images=True)
    assert len(inst) == 1 and "skipped 1 instance" in caplog.text


def test_non_image_file_is_caught_at_load(tmp_path):
    ann = _write(tmp_path)
    (tmp_path / "b.jpg").write_bytes(b"hello, not a jpeg")
    with pytest.raises(ValueError, match=r"b\.jpg: not a JPEG"):
        load_coco(ann, str(tmp_path))


def test_corrupt_image_body_names_the_file_when_decoded(tmp_path, caplog):
    ann = _write(tmp_path)
    (tmp_path / "b.jpg").write_bytes(b"\xff\xd8\xff\xe0" + bytes(range(256)) * 4)  # JPEG header, garbage body
    model = preset_config("rsn18")
    cfg = DataConfig(root=str(tmp_path), train_ann="ann.json", val_ann="ann.json")
    inst = load_instances(cfg, "val")  # the header passes the cheap load-time check
    maker = SampleMaker(inst, cfg, model, train=False, seed=0)
    with pytest.raises(ValueError, match=r"b\.jpg: cannot decode image.*annotation id 2"):
        maker(1, 0)
    skipping = SampleMaker(inst, cfg.replace(skip_bad_images=True), model, train=False, seed=0)
    with caplog.at_level(logging.WARNING):
        out = skipping(1, 0)
    assert not out[-1] and skipping.skipped == 1 and "b.jpg" in caplog.text


def test_corrupt_image_through_tf_data_names_the_file(tmp_path):
    import tensorflow as tf

    from rsn_tf.data.pipeline import build_dataset

    ann = _write(tmp_path)
    (tmp_path / "b.jpg").write_bytes(b"\xff\xd8\xff\xe0" + bytes(255 - i for i in range(256)) * 4)
    model = preset_config("rsn18")
    cfg = DataConfig(root=str(tmp_path), train_ann=ann, val_ann=ann)
    with pytest.raises(tf.errors.OpError, match=r"b\.jpg: cannot decode image"):
        list(build_dataset(cfg, model, "val", batch_size=2))
    batches = list(build_dataset(cfg.replace(skip_bad_images=True), model, "val", batch_size=2))
    assert [int(b[0].shape[0]) for b in batches] == [1]


def test_mpii_bad_entries(tmp_path, caplog):
    cv2.imwrite(str(tmp_path / "m.jpg"), np.zeros((50, 50, 3), np.uint8))
    good = dict(image="m.jpg", joints=[[10, 10]] * 16, joints_vis=[1] * 16, center=[25, 25], scale=0.2)
    path = tmp_path / "mpii.json"
    path.write_text(json.dumps([good, {k: v for k, v in good.items() if k != "center"}]))
    with pytest.raises(ValueError, match=r"mpii\.json: entry 1: missing field 'center'"):
        load_mpii(str(path), str(tmp_path))
    path.write_text(json.dumps([good, dict(good, joints=[[1, 1]] * 15)]))
    with pytest.raises(ValueError, match=r"entry 1: field 'joints' has shape \(15, 2\)"):
        load_mpii(str(path), str(tmp_path))
    path.write_text(json.dumps([good, dict(good, scale=0)]))
    with caplog.at_level(logging.WARNING):
        assert len(load_mpii(str(path), str(tmp_path))) == 1
    assert "entry 1" in caplog.text and "zero-area" in caplog.text
