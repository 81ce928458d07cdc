"""Evaluation known answers (no network): GT as predictions, oracle heatmaps through the real decode
and inverse affine (directly and through PoseEstimator), PCKh, OKS-NMS, score rules, bad input."""
import json
import logging
import os

import numpy as np
import pytest
from conftest import shared_path
from oracle import OracleModel, coordinate_image, oracle_config

from rsn_tf import geometry
from rsn_tf.codec import MegviiHeatmapCodec
from rsn_tf.evaluation import mpii as mpii_eval
from rsn_tf.evaluation.coco import CocoKeypointEvaluator, dataset_sigmas, format_table, load_coco
from rsn_tf.evaluation.runner import evaluate_coco, evaluate_mpii
from rsn_tf.inference.boxes import PersonBox, clip_box, detection_file_boxes, gt_boxes, sanitize_boxes
from rsn_tf.inference.estimator import PoseEstimator, pose_score, resolve_keypoint_spec
from rsn_tf.inference.nms import oks_iou, oks_nms
from rsn_tf.keypoints import COCO, MPII
from rsn_tf.recipes import AUTHORS_BOX_PADDING


def coco_sample():
    return shared_path("data", "coco_sample", "test_coco.json"), shared_path("data", "coco_sample")


def labelled_persons(data):
    return [a for a in data["annotations"] if not a.get("iscrowd") and a.get("num_keypoints", 0) > 0]


# ------------------------------------------------------------------------------------ known answers
def test_gt_keypoints_as_predictions_give_ap_1():
    ann, _ = coco_sample()
    data, _ = load_coco(ann)
    ev = CocoKeypointEvaluator(ann)
    ev.update_state([{"image_id": a["image_id"], "category_id": 1, "keypoints": a["keypoints"], "score": 1.0}
                     for a in labelled_persons(data)])
    r = ev.result()
    assert r["AP"] == pytest.approx(1.0) and r["AR"] == pytest.approx(1.0)
    # sensitivity: 8 px noise must cost a lot (the evaluation is not trivially 1)
    rng = np.random.default_rng(0)
    noisy = []
    for a in labelled_persons(data):
        k = np.asarray(a["keypoints"], np.float64).reshape(-1, 3)
        k[:, :2] += rng.normal(0, 8, size=(len(k), 2))
        noisy.append({"image_id": a["image_id"], "keypoints": k.reshape(-1).tolist(), "score": 1.0})
    ev.reset_state()
    ev.update_state(noisy)
    assert ev.result()["AP"] < 0.6


@pytest.mark.parametrize("mode", ["authors", "mmpose"])
def test_oracle_heatmaps_decode_and_inverse_affine(mode):
    """Encode GT per crop (the estimator's crop geometry), run the real decode and inverse affine."""
    ann, _ = coco_sample()
    data, _ = load_coco(ann)
    codec = MegviiHeatmapCodec((256, 192), decode_kernel=5, decode_mode=mode)
    results = []
    for a in labelled_persons(data):
        k = np.asarray(a["keypoints"], np.float32).reshape(-1, 3)
        c, s = geometry.box_to_center_scale(a["bbox"], 192 / 256, AUTHORS_BOX_PADDING)
        crop_pts = geometry.transform_points(k[:, :2], geometry.get_affine_transform(c, s, 0.0, (192, 256)))
        maps, _ = codec.encode(crop_pts, k[:, 2], kernel=5)
        pts, scores = codec.decode(maps)
        img_pts = geometry.crop_to_image(pts, c, s, (192, 256))
        kp = np.concatenate([img_pts, scores[:, None]], 1)
        results.append({"image_id": a["image_id"], "keypoints": kp.reshape(-1).tolist(), "score": 1.0})
    ev = CocoKeypointEvaluator(data)
    ev.update_state(results)
    assert ev.result()["AP"] >= 0.98


def _coordinate_reader(data, images_dir, oracle):
    """image_reader for evaluate_coco: coordinate images, and the oracle's persons per image tag."""
    tags = {}
    for tag, im in enumerate(data["images"], 1):
        tags[os.path.join(images_dir, im["file_name"])] = (tag, im)
        persons = []
        for a in labelled_persons(data):
            if a["image_id"] == im["id"]:
                k = np.asarray(a["keypoints"], np.float32).reshape(-1, 3)
                x, y, w, h = geometry.box_to_center_scale(a["bbox"], 0.75)[0].tolist() + [0, 0]
                persons.append((np.array([x, y]), k[:, :2], k[:, 2]))
        oracle.persons[tag] = persons

    def read(path):
        if path not in tags or not os.path.isfile(path):
            return None
        tag, im = tags[path]
        return coordinate_image(im["height"], im["width"], tag)
    return read


@pytest.mark.parametrize("recipe,flip", [("authors", True), ("mmpose", True), ("authors", False)])
def test_oracle_through_pose_estimator(recipe, flip, tmp_path):
    """The real PoseEstimator path: crops, batching across images, flip test + flip back, decode,
    inverse affine, results JSON and pycocotools; the 'model' answers with GT heatmaps."""
    ann, images = coco_sample()
    data, _ = load_coco(ann)
    cfg = oracle_config(17)
    oracle = OracleModel(cfg, COCO.flip_permutation())
    est = PoseEstimator(oracle, config=cfg, recipe=recipe, flip_test=flip, batch_size=5)
    m = evaluate_coco(est, ann, images, boxes="gt", out_dir=str(tmp_path), verbose=False,
                      image_reader=_coordinate_reader(data, images, oracle))
    assert m["AP"] >= 0.98, m
    n = len(labelled_persons(data))
    assert sum(oracle.calls) == n * (2 if flip else 1)
    assert max(oracle.calls) <= 2 * 5 if flip else max(oracle.calls) <= 5
    results = json.load(open(tmp_path / "results.json"))
    assert len(results) == n and len(results[0]["keypoints"]) == 51
    assert json.load(open(tmp_path / "metrics.json"))["AP"] == pytest.approx(m["AP"])


def test_oracle_flip_channels_matter():
    """An oracle whose mirrored answer is NOT channel-swapped must lose AP with flip test (the flip
    back really swaps pairs)."""
    ann, images = coco_sample()
    data, _ = load_coco(ann)
    cfg = oracle_config(17)
    oracle = OracleModel(cfg, np.arange(17))  # no swap
    est = PoseEstimator(oracle, config=cfg, flip_test=True)
    m = evaluate_coco(est, ann, images, boxes="gt", verbose=False, image_reader=_coordinate_reader(data, images, oracle))
    assert m["AP"] < 0.9


# ------------------------------------------------------------------------------------ PCKh
def test_pckh_hand_computed():
    gt = np.zeros((2, 16, 2))
    pred = gt.copy()
    pred[0, 9] = [4, 0]     # head: error 4, head 10 -> 0.4 <= 0.5 hit; > 0.1 miss
    pred[1, 9] = [6, 0]     # 0.6 -> miss
    pred[0, 12] = [0.5, 0]  # right shoulder 0.05 -> hit at both
    pred[1, 12] = [30, 0]
    vis = np.ones((2, 16), bool)
    vis[1, 0] = False        # right ankle unlabelled for person 1
    r = mpii_eval.pckh(pred, gt, vis, [10.0, 10.0])
    assert r["per_joint@0.5"][9] == 50.0 and r["PCKh@0.1"]["Head"] == 0.0
    assert r["PCKh@0.5"]["Shoulder"] == pytest.approx((50.0 + 100.0) / 2)
    assert r["PCKh@0.5"]["Ankle"] == 100.0 and r["count"][0] == 1
    # Mean: every joint except pelvis/thorax weighted by its labelled count: 2 misses out of 27.
    assert r["PCKh@0.5"]["Mean"] == pytest.approx(100.0 * (27 - 2) / 27)


def test_mpii_loader_head_size_fallback_and_oracle_pckh():
    ann = shared_path("data", "mpii_sample", "test_mpii.json")
    images = shared_path("data", "mpii_sample")
    entries = mpii_eval.load_mpii(ann)
    raw = json.load(open(ann))
    assert entries[0].head_size_source == "head_segment_fallback"
    j = np.asarray(raw[0]["joints"])
    assert entries[0].head_size == pytest.approx(np.linalg.norm(j[9] - j[8]), rel=1e-5)
    np.testing.assert_allclose(entries[0].joints, j - 1, atol=1e-4)  # 1-based -> 0-based
    # Oracle through PoseEstimator.predict_regions (flip test on), MPII 256x256, decode kernel 9.
    cfg = oracle_config(16, (256, 256))
    oracle = OracleModel(cfg, MPII.flip_permutation())
    tags = {}
    for tag, e in enumerate(entries, 1):
        tags[os.path.join(images, e.image)] = tag
        oracle.persons[tag] = [(e.center, e.joints, e.visible.astype(np.float32))]
    sizes = {os.path.join(images, e.image): __import__("cv2").imread(os.path.join(images, e.image)).shape[:2]
             for e in entries}

    def read(path):
        return coordinate_image(*sizes[path], tags[path]) if path in tags else None
    est = PoseEstimator(oracle, config=cfg)
    assert est.codec.decode_kernel == 9 and est.spec.name == "mpii"
    r = evaluate_mpii(est, ann, images, verbose=False, image_reader=read)
    assert r["PCKh@0.5"]["Mean"] >= 99.0, r
    assert r["input"]["persons_evaluated"] == 5


# ------------------------------------------------------------------------------------ NMS, scores
def test_oks_nms():
    base = np.random.default_rng(0).uniform(0, 100, (17, 2))
    kpts = np.stack([base, base + 0.5, base + 60.0])
    keep = oks_nms(kpts, [0.5, 0.9, 0.8], [5000, 5000, 5000], COCO.sigmas, 0.9)
    assert keep == [1, 2]  # 0 duplicates 1 (lower score) and is suppressed; 2 is far away
    o = oks_iou(base, kpts, 5000, np.full(3, 5000.0), COCO.sigmas)
    assert o[0] == pytest.approx(1.0) and o[2] < 0.1
    assert oks_nms(np.zeros((0, 17, 2)), [], [], COCO.sigmas) == []


def test_score_rules():
    s = np.array([0.1, 0.3, 0.5, 0.15])
    assert pose_score(s, 0.8, "authors") == pytest.approx(0.8 * s.mean())
    assert pose_score(s, 0.8, "mmpose") == pytest.approx(0.8 * 0.4)  # mean of 0.3 and 0.5 (> 0.2)
    assert pose_score([0.1, 0.2], 1.0, "mmpose") == 0.0  # none above the threshold
    with pytest.raises(ValueError):
        pose_score(s, 1.0, "best")


def test_keypoint_spec_resolution():
    assert resolve_keypoint_spec(17).name == "coco" and resolve_keypoint_spec(16).name == "mpii"
    assert resolve_keypoint_spec(16, {"keypoints": "mpii"}).name == "mpii"
    assert resolve_keypoint_spec(17, {"keypoints": COCO.to_dict()}) == COCO
    with pytest.raises(ValueError, match="keypoint spec"):
        resolve_keypoint_spec(5)
    with pytest.raises(ValueError, match="17"):
        resolve_keypoint_spec(16, override="coco")


def test_custom_keypoint_set_needs_sigmas():
    data = {"images": [], "annotations": [], "categories": [{"id": 1, "name": "hand", "keypoints": ["a", "b"]}]}
    with pytest.raises(ValueError, match="sigmas"):
        dataset_sigmas(data)
    assert dataset_sigmas(data, [0.05, 0.06]).tolist() == [0.05, 0.06]
    data["categories"][0]["sigmas"] = [0.1, 0.1]
    assert CocoKeypointEvaluator(data).sigmas.tolist() == [0.1, 0.1]


# ------------------------------------------------------------------------------------ bad input
def test_box_clipping_and_gt_filter():
    assert clip_box([-10, -10, 50, 50], 100, 100) == (0.0, 0.0, 40.0, 40.0)
    assert clip_box([200, 10, 50, 50], 100, 100) is None  # outside
    assert clip_box([10, 10, 0, 50], 100, 100) is None  # zero size
    assert clip_box([np.nan, 10, 5, 5], 100, 100) is None
    kept, clipped, dropped = sanitize_boxes([PersonBox((-5, 0, 20, 20)), PersonBox((500, 0, 5, 5)),
                                             PersonBox((10, 10, 20, 20), 0.7)], 100, 100)
    assert (len(kept), clipped, dropped) == (2, 1, 1) and kept[1].score == 0.7
    kept, clipped, dropped = sanitize_boxes([PersonBox((-5, 0, 20, 20)), PersonBox((500, 0, 5, 5))], 100, 100,
                                            clip=False)  # detections: kept as they are, unless outside
    assert (len(kept), clipped, dropped) == (1, 0, 1) and kept[0].xywh == (-5, 0, 20, 20)
    ann, _ = coco_sample()
    data, _ = load_coco(ann)
    boxes = gt_boxes(data)
    assert sum(len(v) for v in boxes.values()) == len(labelled_persons(data)) == 12
    assert set(boxes) == {im["id"] for im in data["images"]}


def test_detection_file_errors_name_file_and_field(tmp_path):
    p = tmp_path / "dets.json"
    p.write_text(json.dumps([{"image_id": 1, "score": 0.5}]))
    with pytest.raises(ValueError, match=r"dets.json.*\[0\].*'bbox'"):
        detection_file_boxes(str(p))
    p.write_text(json.dumps({"image_id": 1}))
    with pytest.raises(ValueError, match="JSON list"):
        detection_file_boxes(str(p))
    with pytest.raises(FileNotFoundError, match="nope.json"):
        detection_file_boxes(str(tmp_path / "nope.json"))
    p.write_text(json.dumps([{"image_id": 1, "bbox": [0, 0, 5, 5], "score": 0.5, "category_id": 1},
                             {"image_id": 1, "bbox": [0, 0, 5, 5], "score": 0.1, "category_id": 1},
                             {"image_id": 1, "bbox": [0, 0, 5, 5], "score": 0.9, "category_id": 2},
                             {"image_id": 7, "bbox": [0, 0, 5, 5], "score": 0.9}]))
    b = detection_file_boxes(str(p), image_ids=[1, 2], score_threshold=0.3)
    assert len(b[1]) == 1 and b[2] == [] and 7 not in b


def test_bad_inputs_still_write_valid_results(tmp_path, caplog):
    """Missing images, detections for unknown ids, boxes outside the image / of zero size: warnings,
    and results + metrics for everything valid; an empty detection file: valid empty output."""
    ann, images = coco_sample()
    data, _ = load_coco(ann)
    data = json.loads(json.dumps(data))
    data["images"].append({"id": 999, "file_name": "missing.jpg", "height": 100, "width": 100})
    data["annotations"].append({"id": 9999, "image_id": 999, "category_id": 1, "iscrowd": 0, "num_keypoints": 1,
                                "bbox": [10, 10, 50, 50], "area": 2500, "keypoints": [20, 20, 2] + [0] * 48})
    ann2 = tmp_path / "ann.json"
    ann2.write_text(json.dumps(data))
    first = labelled_persons(data)[0]
    dets = [{"image_id": first["image_id"], "category_id": 1, "bbox": first["bbox"], "score": 0.9},
            {"image_id": first["image_id"], "category_id": 1, "bbox": [5000, 5000, 10, 10], "score": 0.9},
            {"image_id": first["image_id"], "category_id": 1, "bbox": [10, 10, 0, 0], "score": 0.9},
            {"image_id": 123456, "category_id": 1, "bbox": [0, 0, 10, 10], "score": 0.9}]
    det_file = tmp_path / "dets.json"
    det_file.write_text(json.dumps(dets))
    cfg = oracle_config(17)
    oracle = OracleModel(cfg, COCO.flip_permutation())
    est = PoseEstimator(oracle, config=cfg)
    reader = _coordinate_reader(data, images, oracle)
    out = tmp_path / "out"
    with caplog.at_level(logging.WARNING):
        m = evaluate_coco(est, str(ann2), images, boxes=str(det_file), out_dir=str(out), verbose=False,
                          image_reader=reader)
    text = caplog.text
    assert "missing.jpg" in text and "123456" in text and "dropped" in text
    assert m["input"]["images_missing"] == ["missing.jpg"] and m["input"]["dropped"] == 2
    results = json.load(open(out / "results.json"))
    assert len(results) == 1 and results[0]["image_id"] == first["image_id"]
    assert 0.0 <= m["AP"] <= 1.0

    # an empty detection file, or one whose boxes all fall below the threshold, is an error before any work
    empty = tmp_path / "empty.json"
    empty.write_text("[]")
    with pytest.raises(ValueError, match="empty.json: the detection file is empty"):
        evaluate_coco(est, ann, images, boxes=str(empty), out_dir=str(tmp_path / "e"), verbose=False,
                      image_reader=_coordinate_reader(load_coco(ann)[0], images, oracle))
    with pytest.raises(ValueError, match=r"dets.json: no detection .* score >= 0.95"):
        evaluate_coco(est, str(ann2), images, boxes=str(det_file), score_threshold=0.95, verbose=False,
                      image_reader=reader)
    assert not (tmp_path / "e").exists()
    # no results at all (e.g. every image unreadable) still gives a valid, labelled table
    evaluator = CocoKeypointEvaluator(ann)
    m = evaluator.result()
    assert m["AP"] == 0.0 and "no detections" in m["note"]
    assert "| AP |" in format_table(m)


def test_draw_poses_shows_confidence_and_skips_low_boxes():
    from types import SimpleNamespace

    from rsn_tf.visualize import draw_poses
    img = np.zeros((120, 160, 3), np.uint8)
    k = np.tile([[20.0, 20.0]], (17, 1))
    k[5], k[7] = [100, 40], [100, 100]  # left shoulder -> left elbow: a limb
    scores = np.full(17, 0.5)  # confidence 0 -> faint, no limbs
    scores[[5, 7]] = 1.5       # confidence 1
    pose = SimpleNamespace(keypoints=k, keypoint_scores=scores, box=(10, 10, 120, 100), box_score=0.9, score=0.8)
    out = draw_poses(img, [pose], COCO)
    assert out[70, 100].any()  # the limb between the two confident keypoints
    assert out[40, 100].max() > out[20, 20].max()  # a confident dot is brighter than a faint one
    assert img.max() == 0  # the input is not modified
    pose.box_score = 0.1
    assert draw_poses(img, [pose], COCO, min_box_score=0.3).max() == 0


def test_custom_keypoint_set_end_to_end_with_oracle():
    """A 5-keypoint COCO-format set with its own sigmas: the oracle through PoseEstimator still gives
    AP >= 0.98 (K, flip pairs and sigmas all come from the dataset/spec, nothing assumes 17)."""
    from rsn_tf.keypoints import spec_from_coco_category
    ann, images = coco_sample()
    data, _ = load_coco(ann)
    data = json.loads(json.dumps(data))
    keep = [0, 5, 6, 11, 12]  # nose, shoulders, hips
    cat = data["categories"][0]
    cat["keypoints"] = [cat["keypoints"][i] for i in keep]
    cat["skeleton"] = [[2, 3], [4, 5], [2, 4], [3, 5]]
    cat["sigmas"] = [COCO.sigmas[i] for i in keep]
    for a in data["annotations"]:
        k = np.asarray(a["keypoints"]).reshape(-1, 3)[keep]
        a["keypoints"] = k.reshape(-1).tolist()
        a["num_keypoints"] = int((k[:, 2] > 0).sum())
    spec = spec_from_coco_category(cat, sigmas=cat["sigmas"])
    assert spec.flip_pairs == ((1, 2), (3, 4))
    cfg = oracle_config(5)
    oracle = OracleModel(cfg, spec.flip_permutation())
    est = PoseEstimator(oracle, config=cfg, keypoints=spec)
    m = evaluate_coco(est, data, images, verbose=False, image_reader=_coordinate_reader(data, images, oracle))
    assert m["AP"] >= 0.98 and m["num_results"] == len(labelled_persons(data))
