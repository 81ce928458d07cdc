"""``topdown`` fixtures: mmpose's ``inference_topdown`` on real images and boxes, compared end to end.

The fixture's weights are converted (:func:`rsn_tf.weights.load_model`, which records the mmpose
recipe), and the real :class:`rsn_tf.inference.PoseEstimator` runs on the same images and boxes
(its default recipe, which must be mmpose's; the flip test as the manifest's ``test_cfg`` says).
Compared with mmpose, per box:

============================ ====================================== ===========================
check                        what                                   tolerance
============================ ====================================== ===========================
``flip_indices``             the model's flip pairs vs mmpose's      equal
``boxes.from_files``         boxes rsn_tf reads from the box files   1e-3 px (when named)
``bbox_center/scale``        the crop region (padding, aspect fix)   1e-3 px
``heatmaps``                 flip-averaged heatmaps (when stored)    1e-4 abs
``keypoints``                image px, keypoints not flagged fragile 0.01 px
``keypoint_scores``          keypoints not flagged fragile           1e-4
``keypoints.fragile``        fragile keypoints, in heatmap pixels    1 heatmap px
============================ ====================================== ===========================

"Fragile" keypoints (the fixture flags them) are those where mmpose's own decode is decided by a
near-tie: the two highest blurred values, or a neighbour difference whose sign picks the quarter
step, within 1e-4 relative; float32 noise of the order of the network's may flip them.

Manifest fields read: ``weights`` (a file name: the forward fixture's state dict, found beside this
fixture or in ``data_dir``), ``images`` (``[{"file", "id"}, ...]`` in ``image_index`` order),
``test_cfg``, ``dataset_meta.flip_indices``, optional ``input_size`` ([H, W]; default 256x192),
``data_dir`` (relative to the fixture) and ``boxes`` (``per_box`` with ``source``/``ann_id``;
``det_file`` + ``det_score_threshold``; ``gt_file``). Arrays: ``bbox_xywh`` [N, 4] (the boxes given
to mmpose), ``image_index`` [N], ``bbox_center``/``bbox_scale`` [N, 2], ``keypoints`` [N, K, 2],
``keypoint_scores`` [N, K], ``fragile`` [N, K]; optional ``heatmaps`` [N, K, h, w], ``source`` [N].
"""
from __future__ import annotations

import os
import re

import numpy as np

from rsn_tf.parity.core import Check, Fixture

CENTER_SCALE_TOL = 1e-3  # px
KEYPOINT_TOL = 0.01  # px
SCORE_TOL = 1e-4
FRAGILE_TOL = 1.0  # heatmap pixels
HEATMAP_TOL = 1e-4  # absolute: the forward fixture's suggested atol for a float32 port
BOX_TOL = 1e-3  # px
DEFAULT_INPUT_SIZE = (256, 192)
#: Where the shared COCO sample lies relative to a fixture in ``shared/fixtures``.
DEFAULT_DATA = os.path.join("..", "data", "coco_sample")


def check(fixture: Fixture, data_dir: str | None = None) -> list[Check]:
    from rsn_tf.data.images import read_image
    from rsn_tf.inference.estimator import PoseEstimator

    man = fixture.manifest
    data_dir = _data_dir(fixture, data_dir)
    weights = _weights_path(fixture, data_dir)
    images = man.get("images")
    if not isinstance(images, list) or not images:
        raise ValueError(f"{fixture.json_path}: field 'images' must list the images ([{{'file', 'id'}}, ...])")
    paths = [os.path.join(data_dir, im["file"]) for im in images]
    missing = [p for p in paths if not os.path.isfile(p)]
    if missing:
        raise FileNotFoundError(f"{len(missing)} of the fixture's {len(paths)} images are not in {data_dir} "
                                f"(first: {os.path.basename(missing[0])}); pass --data DIR with the images the "
                                "manifest names")
    boxes = fixture.get("bbox_xywh").astype(np.float32)
    index = fixture.get("image_index").astype(np.int64)
    ref = {k: fixture.get(k) for k in ("bbox_center", "bbox_scale", "keypoints", "keypoint_scores", "fragile")}
    n = len(boxes)
    if len(index) != n or any(len(v) != n for v in ref.values()):
        raise ValueError(f"{fixture.npz_path}: bbox_xywh, image_index and the outputs must have one row per box")
    if index.min() < 0 or index.max() >= len(images):
        raise ValueError(f"{fixture.npz_path}: image_index outside 0..{len(images) - 1}")
    test_cfg = man.get("test_cfg") or {}
    if test_cfg.get("shift_heatmap"):
        raise ValueError(f"{fixture.json_path}: test_cfg.shift_heatmap=True is not a recipe rsn_tf has")
    if test_cfg.get("flip_mode", "heatmap") != "heatmap":
        raise ValueError(f"{fixture.json_path}: test_cfg.flip_mode {test_cfg['flip_mode']!r}; only 'heatmap' exists here")

    from rsn_tf.weights import load_model
    model = load_model(weights, input_size=_input_size(fixture))
    est = PoseEstimator(model, flip_test=bool(test_cfg.get("flip_test", True)))
    checks = [_recipe_check(est)]
    checks.append(_flip_check(est, man))
    checks.extend(_box_file_checks(fixture, data_dir, boxes, index, images))

    centers = np.zeros((n, 2), np.float32)
    scales = np.zeros((n, 2), np.float32)
    kpts = np.zeros_like(ref["keypoints"], np.float32)
    scores = np.zeros_like(ref["keypoint_scores"], np.float32)
    stored_hm = fixture.get("heatmaps") if fixture.has("heatmaps") else None
    heatmap_diff = 0.0
    heatmap_scale = 0.0
    for i, path in enumerate(paths):
        rows = np.flatnonzero(index == i)
        if not rows.size:
            continue
        # mmpose's LoadImage decodes with cv2.IMREAD_COLOR, which applies an EXIF orientation tag
        image = read_image(path, "exif")
        poses = est.predict(image, boxes[rows])
        for r, pose in zip(rows, poses):
            centers[r], scales[r] = pose.center, pose.scale
            kpts[r], scores[r] = pose.keypoints, pose.keypoint_scores
        if stored_hm is not None:
            hm = est.heatmaps(est.crops(image, centers[rows], scales[rows]))
            theirs = stored_hm[rows].transpose(0, 2, 3, 1)
            heatmap_diff = max(heatmap_diff, float(np.abs(hm - theirs).max()))
            heatmap_scale = max(heatmap_scale, float(np.abs(theirs).max()))

    checks.append(_worst("bbox_center", np.abs(centers - ref["bbox_center"]).max(axis=1), CENTER_SCALE_TOL, "px",
                         boxes, index, images))
    checks.append(_worst("bbox_scale", np.abs(scales - ref["bbox_scale"]).max(axis=1), CENTER_SCALE_TOL, "px",
                         boxes, index, images))
    if stored_hm is not None:
        checks.append(Check("heatmaps", heatmap_diff, HEATMAP_TOL, unit="abs", source="float32 port atol",
                            detail=f"max|mmpose| {heatmap_scale:.3g}"))
    fragile = ref["fragile"].astype(bool)
    dist = np.linalg.norm(kpts.astype(np.float64) - ref["keypoints"], axis=-1)  # [N, K] image px
    sdiff = np.abs(scores.astype(np.float64) - ref["keypoint_scores"])
    names = list(est.spec.names)
    checks.append(_worst_kp("keypoints", np.where(fragile, 0.0, dist), KEYPOINT_TOL, "px", names, images, index,
                            f"{(~fragile).sum()} keypoints not flagged fragile"))
    checks.append(_worst_kp("keypoint_scores", np.where(fragile, 0.0, sdiff), SCORE_TOL, "", names, images, index,
                            f"{(~fragile).sum()} keypoints not flagged fragile"))
    h, w = est.config.input_size
    cell = (scales[:, :1] / w * est.codec.stride[0]).astype(np.float64)  # one heatmap pixel in image px, per box
    hm_px = np.where(fragile, dist / cell, 0.0)
    if fragile.any():
        exact = int((dist[fragile] <= KEYPOINT_TOL).sum())
        checks.append(_worst_kp("keypoints.fragile", hm_px, FRAGILE_TOL, "heatmap px", names, images, index,
                                f"{fragile.sum()} fragile keypoints, {exact} of them also within {KEYPOINT_TOL} px; "
                                f"their scores differ by <= {sdiff[fragile].max():.2g}"))
    return checks


# ------------------------------------------------------------------------------------------ inputs
def _data_dir(fixture: Fixture, data_dir: str | None) -> str:
    base = os.path.dirname(os.path.abspath(fixture.json_path))
    if data_dir is None:
        named = fixture.manifest.get("data_dir")
        data_dir = os.path.join(base, named) if named else os.path.join(base, DEFAULT_DATA)
    if not os.path.isdir(data_dir):
        raise FileNotFoundError(f"data folder not found: {data_dir} (pass --data DIR: the folder with the images "
                                f"and box files {os.path.basename(fixture.json_path)} names)")
    return data_dir


def _weights_path(fixture: Fixture, data_dir: str) -> str:
    """The file the manifest's ``weights`` names, beside the fixture or in the data folder."""
    field = fixture.manifest.get("weights")
    name = None
    if isinstance(field, dict):
        name = field.get("file")
    elif isinstance(field, str):
        m = re.search(r"[^\s(),]+\.(?:npz|pth|keras)", field)
        name = m.group(0) if m else None
    if not name:
        raise ValueError(f"{fixture.json_path}: field 'weights' must name the weights file (an mmpose state dict "
                         f".npz/.pth, e.g. the forward fixture's); got {field!r}")
    base = os.path.dirname(os.path.abspath(fixture.json_path))
    candidates = [name] if os.path.isabs(name) else [os.path.join(base, name), os.path.join(data_dir, name)]
    for c in candidates:
        if os.path.isfile(c):
            return c
    raise FileNotFoundError(f"{fixture.json_path}: the weights it names ({name}) are neither beside the fixture "
                            f"({base}) nor in the data folder ({data_dir}); put that file there")


def _input_size(fixture: Fixture) -> tuple[int, int]:
    size = fixture.manifest.get("input_size")
    if size:
        return int(size[0]), int(size[1])
    m = re.search(r"input_size=\((\d+),\s*(\d+)\)", str(fixture.manifest.get("pipeline", "")))
    return (int(m.group(2)), int(m.group(1))) if m else DEFAULT_INPUT_SIZE  # mmpose writes (W, H)


# ------------------------------------------------------------------------------------------ checks
def _recipe_check(est) -> Check:
    ok = est.recipe.name == "mmpose"
    return Check("recipe", 0.0 if ok else 1.0, 0.0, passed=ok, unit="",
                 detail=f"PoseEstimator's default for the converted weights: {est.recipe.name} ({est.recipe_source})")


def _flip_check(est, man: dict) -> Check:
    theirs = (man.get("dataset_meta") or {}).get("flip_indices")
    ours = est.spec.flip_permutation().tolist()
    if theirs is None:
        return Check("flip_indices", 0.0, 0.0, passed=True, detail="the manifest has no dataset_meta.flip_indices")
    bad = sum(a != b for a, b in zip(ours, theirs)) + abs(len(ours) - len(theirs))
    return Check("flip_indices", float(bad), 0.0, unit="mismatches", detail=f"{est.spec.name} flip pairs vs mmpose's")


def _box_file_checks(fixture, data_dir, boxes, index, images) -> list[Check]:
    """The boxes rsn_tf reads from the box files the manifest names equal the boxes mmpose was given."""
    from rsn_tf.inference.boxes import detection_file_boxes
    from rsn_tf.io_utils import read_json

    spec = fixture.manifest.get("boxes") or {}
    per_box = spec.get("per_box") or []
    source = fixture.get("source") if fixture.has("source") else None
    kinds = [b.get("source") for b in per_box] if len(per_box) == len(boxes) else \
        (["gt" if s == 0 else "det" for s in source] if source is not None else [])
    if not kinds:
        return []
    worst, counted, notes = 0.0, 0, []
    ids = [int(im["id"]) for im in images]
    det_file = spec.get("det_file")
    det_rows = [i for i, k in enumerate(kinds) if k == "det"]
    if det_file and det_rows:
        path = os.path.join(data_dir, det_file)
        found = detection_file_boxes(path, ids, float(spec.get("det_score_threshold", 0.0)))
        ours = [b.xywh for i in ids for b in found.get(i, [])]
        theirs = [boxes[r] for r in sorted(det_rows, key=lambda r: (index[r], r))]  # image order, then file order
        if len(ours) != len(theirs):
            return [Check("boxes.from_files", float("inf"), BOX_TOL, passed=False, unit="px",
                          detail=f"{det_file}: rsn_tf reads {len(ours)} boxes, mmpose was given {len(theirs)}")]
        if ours:
            worst = max(worst, float(np.abs(np.asarray(ours, np.float64) - np.asarray(theirs, np.float64)).max()))
        counted += len(ours)
        notes.append(f"{len(ours)} from {det_file} (score >= {spec.get('det_score_threshold', 0.0)})")
    gt_rows = [i for i, k in enumerate(kinds) if k == "gt"]
    gt_file = spec.get("gt_file") or _find_annotation_file(data_dir, ids)
    if gt_rows and gt_file and len(per_box) == len(boxes) and all("ann_id" in per_box[r] for r in gt_rows):
        anns = {int(a["id"]): a for a in read_json(os.path.join(data_dir, gt_file), "annotation file")["annotations"]}
        try:
            ours = np.asarray([anns[int(per_box[r]["ann_id"])]["bbox"] for r in gt_rows], np.float64)
        except KeyError as e:
            raise ValueError(f"{gt_file}: annotation id {e} of the fixture is not in it") from None
        worst = max(worst, float(np.abs(ours - boxes[gt_rows].astype(np.float64)).max()))
        counted += len(gt_rows)
        notes.append(f"{len(gt_rows)} GT boxes from {gt_file} (as given, not clipped)")
    if not counted:
        return []
    return [Check("boxes.from_files", worst, BOX_TOL, unit="px", source="float32 box values",
                  detail="; ".join(notes))]


def _find_annotation_file(data_dir: str, ids: list[int]) -> str | None:
    """The COCO-format annotation file in ``data_dir`` whose images include all of ``ids``."""
    import json
    for name in sorted(os.listdir(data_dir)):
        if not name.endswith(".json"):
            continue
        try:
            with open(os.path.join(data_dir, name)) as f:
                data = json.load(f)
        except (OSError, ValueError):
            continue
        if isinstance(data, dict) and "annotations" in data and \
                set(ids) <= {int(im["id"]) for im in data.get("images", [])}:
            return name
    return None


def _worst(name, per_box, tol, unit, boxes, index, images) -> Check:
    i = int(np.argmax(per_box))
    return Check(name, float(per_box[i]), tol, unit=unit,
                 detail=f"over {len(per_box)} boxes; worst box {i} ({images[index[i]]['file']})")


def _worst_kp(name, values, tol, unit, names, images, index, what) -> Check:
    i, j = np.unravel_index(int(np.argmax(values)), values.shape)
    return Check(name, float(values[i, j]), tol, unit=unit,
                 detail=f"{what}; worst: box {i} ({images[index[i]]['file']}), {names[j]}")
