"""End-to-end evaluation: annotation file + images + box source -> results JSON, metrics JSON, overlays.

- :func:`evaluate_coco`: COCO-format keypoint set (any K), boxes ``"gt"`` or a detection file.
- :func:`evaluate_mpii`: mmpose list-format MPII JSON, PCKh@0.5/0.1.
- :func:`evaluate_and_draw`: the demo's step (metrics table + overlay pictures).

Bad input never stops the run: unreadable images are skipped and listed, detections for unknown
image ids are skipped, boxes are clipped to the image (empty ones dropped); every count is in the
metrics JSON under ``"input"``.
"""
from __future__ import annotations

import logging
import os
import time
from typing import Sequence

import cv2
import numpy as np

from rsn_tf import io_utils
from rsn_tf.evaluation import coco as coco_eval
from rsn_tf.evaluation import mpii as mpii_eval
from rsn_tf.inference.boxes import box_source_kind, detection_file_boxes, gt_boxes, sanitize_boxes
from rsn_tf.inference.estimator import PoseEstimator
from rsn_tf.inference.nms import oks_nms

log = logging.getLogger("rsn_tf.evaluation")

#: Overlays leave out persons from detections below this score (evaluation itself keeps them all).
OVERLAY_MIN_BOX_SCORE = 0.3


def read_image(path: str):
    """BGR uint8 image or None (cv2 returns None for missing/unreadable files)."""
    return cv2.imread(path, cv2.IMREAD_COLOR) if os.path.isfile(path) else None


def annotation_format(path: str) -> str:
    """``"coco"`` (an object with images/annotations) or ``"mpii"`` (mmpose's list format)."""
    data = io_utils.read_json(path, "annotation file")
    if isinstance(data, dict) and "annotations" in data:
        return "coco"
    if isinstance(data, list) and (not data or "joints" in data[0]):
        return "mpii"
    raise ValueError(f"{path}: neither COCO keypoint format (an object with 'annotations') nor MPII list format "
                     "(a list of entries with 'joints')")


def _estimator_settings(est: PoseEstimator) -> dict:
    return est.settings()  # the test recipe used, why it was chosen, and every setting


def evaluate_coco(estimator: PoseEstimator, ann: str | dict, images_dir: str, boxes: str = "gt",
                  score_threshold: float = 0.0, out_dir: str | None = None, use_nms: bool = False,
                  nms_threshold: float = 0.9, sigmas: Sequence[float] | None = None,
                  num_overlays: int = 0, verbose: bool = True, image_reader=read_image) -> dict:
    """Run top-down inference on a COCO-format set and score it with pycocotools.

    Args:
      estimator: a :class:`PoseEstimator`.
      ann: annotation file (path or dict). images_dir: folder of the ``file_name`` images.
      boxes: ``"gt"`` or a detection file (COCO results format); ``score_threshold`` filters it.
      out_dir: if given, writes ``results.json`` (COCO results), ``metrics.json`` and
        ``overlays/*.png`` + the grid ``overlays.png`` for the first ``num_overlays`` images.
      use_nms: OKS-NMS per image (off by default, as the references).
      image_reader: path -> image or None (tests substitute synthetic images).
    Returns the metrics dict (the 10 COCO stats, counts, settings).
    """
    data, source = coco_eval.load_coco(ann)
    evaluator = coco_eval.CocoKeypointEvaluator(data, sigmas)
    evaluator.source = source
    category_id = int(evaluator.category["id"])
    images = {int(im["id"]): im for im in data["images"]}

    kind = box_source_kind(boxes)
    if kind == "gt":
        box_map = gt_boxes(data, source)
    elif kind == "file":
        box_map = detection_file_boxes(boxes, images.keys(), score_threshold, category_id)
    else:
        raise ValueError(f"evaluation box source must be 'gt' or a detection file (got {boxes!r})")

    missing, stats = [], {"clipped": 0, "dropped": 0, "boxes": 0}
    spec = estimator.spec

    def items():
        for img_id, im in images.items():
            path = os.path.join(images_dir, im.get("file_name", ""))
            image = image_reader(path)
            if image is None:
                missing.append(im.get("file_name", str(img_id)))
                continue
            kept, clipped, dropped = sanitize_boxes(box_map.get(img_id, []), image.shape[1], image.shape[0],
                                                    clip=kind == "gt")
            stats["clipped"] += clipped
            stats["dropped"] += dropped
            stats["boxes"] += len(kept)
            yield img_id, image, kept, None

    results, overlays = [], []
    t0 = time.perf_counter()
    for img_id, poses in estimator.predict_many(items()):
        if use_nms and poses and spec.sigmas is not None:
            keep = oks_nms([p.keypoints for p in poses], [p.score for p in poses], [p.area for p in poses],
                           evaluator.sigmas, nms_threshold, [p.keypoint_scores for p in poses], 0.2)
            poses = [poses[k] for k in keep]
        results.extend(p.to_coco(img_id, category_id) for p in poses)
        if out_dir and len(overlays) < num_overlays:
            overlays.append((img_id, poses))
    seconds = time.perf_counter() - t0

    if missing:
        log.warning("%s: %d of %d images could not be read from %s and were skipped: %s%s", source, len(missing),
                    len(images), images_dir, missing[:10], " ..." if len(missing) > 10 else "")
    if stats["clipped"] or stats["dropped"]:
        # Clipping is routine (HRNet clips GT boxes too); dropping a box is worth a warning.
        (log.warning if stats["dropped"] else log.info)(
            "%s: %d boxes outside the image or of zero size dropped, %d clipped to their image",
            boxes if kind == "file" else source, stats["dropped"], stats["clipped"])

    evaluator.update_state(results)
    read_ids = [i for i, im in images.items() if im.get("file_name", str(i)) not in set(missing)]
    metrics = evaluator.result(image_ids=read_ids if missing else None)
    metrics.update({
        "dataset": source, "boxes": boxes, "score_threshold": score_threshold, "oks_nms": use_nms,
        "settings": _estimator_settings(estimator),
        "input": {"images": len(images), "images_missing": missing, "images_evaluated": len(read_ids), **stats},
        "seconds": round(seconds, 3),
    })
    if verbose:
        print(coco_eval.format_table(metrics), flush=True)
    if out_dir:
        io_utils.write_json(os.path.join(out_dir, "results.json"), results, indent=None)
        if overlays:
            metrics["overlays"] = write_overlays(overlays, images, images_dir, spec, out_dir)
        io_utils.write_json(os.path.join(out_dir, "metrics.json"), metrics)
    return metrics


def write_overlays(overlays, images: dict, images_dir: str, spec, out_dir: str) -> list[str]:
    """Draw [(image_id, poses)] into ``out_dir/overlays/<name>.png`` and a grid ``out_dir/overlays.png``."""
    from rsn_tf.visualize import draw_poses, tile_images

    paths, pictures = [], []
    for img_id, poses in overlays:
        im = images[img_id]
        image = read_image(os.path.join(images_dir, im["file_name"]))
        if image is None:
            continue
        pic = draw_poses(image, poses, spec, min_box_score=OVERLAY_MIN_BOX_SCORE)
        name = os.path.splitext(os.path.basename(im["file_name"]))[0]
        path = os.path.join(out_dir, "overlays", f"{name}.png")
        with io_utils.atomic_path(path) as tmp:
            cv2.imwrite(tmp, pic)
        paths.append(path)
        pictures.append(pic)
    if pictures:
        path = os.path.join(out_dir, "overlays.png")
        with io_utils.atomic_path(path) as tmp:
            cv2.imwrite(tmp, tile_images(pictures, cols=4))
        paths.append(path)
    return paths


def evaluate_mpii(estimator: PoseEstimator, ann: str, images_dir: str, out_dir: str | None = None,
                  verbose: bool = True, image_reader=read_image) -> dict:
    """PCKh@0.5 and @0.1 of ``estimator`` on an MPII list-format file with its own regions
    (center/scale, the references' test crops). Writes ``results.json`` (per person: image, joints
    [16, 2] 0-based px, scores) and ``metrics.json`` when ``out_dir`` is given."""
    entries = mpii_eval.load_mpii(ann)
    if estimator.spec.num_keypoints != 16:
        raise ValueError(f"{ann}: MPII has 16 joints but the model outputs {estimator.spec.num_keypoints}")
    from rsn_tf.geometry import fix_aspect_ratio

    h, w = estimator.config.input_size
    missing = []

    def items():
        for i, e in enumerate(entries):
            image = image_reader(os.path.join(images_dir, e.image))
            if image is None:
                missing.append(e.image)
                continue
            yield i, image, e

    preds, used = {}, []
    for i, image, e in items():
        pose = estimator.predict_regions(image, e.center[None], fix_aspect_ratio(e.scale, w / h)[None])[0]
        preds[i] = pose
        used.append(i)
    if missing:
        log.warning("%s: %d images could not be read from %s and were skipped: %s", ann, len(missing), images_dir,
                    missing[:10])
    gt = np.stack([entries[i].joints for i in used]) if used else np.zeros((0, 16, 2))
    vis = np.stack([entries[i].visible for i in used]) if used else np.zeros((0, 16), bool)
    hs = np.array([entries[i].head_size for i in used])
    pr = np.stack([preds[i].keypoints for i in used]) if used else np.zeros((0, 16, 2))
    metrics = mpii_eval.pckh(pr, gt, vis, hs)
    sources = sorted({entries[i].head_size_source for i in used})
    metrics.update({"dataset": ann, "head_size_source": sources, "settings": _estimator_settings(estimator),
                    "input": {"persons": len(entries), "images_missing": missing, "persons_evaluated": len(used)}})
    if verbose:
        print(mpii_eval.format_table(metrics), flush=True)
        if "head_segment_fallback" in sources:
            print("head size: ||head_top - upper_neck|| fallback (no headboxes in the file)", flush=True)
    if out_dir:
        results = [{"image": entries[i].image, "joints": np.round(preds[i].keypoints, 2).tolist(),
                    "scores": np.round(preds[i].keypoint_scores, 4).tolist()} for i in used]
        io_utils.write_json(os.path.join(out_dir, "results.json"), results, indent=None)
        io_utils.write_json(os.path.join(out_dir, "metrics.json"), metrics)
    return metrics


def evaluate_and_draw(model_path, ann: str, images_dir: str, out_dir: str, num_overlays: int = 8,
                      boxes: str = "gt", **estimator_kwargs) -> dict:
    """The demo's evaluation step: evaluate ``model_path`` (a .keras file or a model) on a COCO-format
    set, write results/metrics JSON, ``metrics.md`` (the table), ``overlays/*.png`` for the
    first ``num_overlays`` images and their grid ``overlays.png``. Returns the metrics dict
    (``metrics["overlays"]``: the PNG paths, the grid last)."""
    estimator = PoseEstimator(model_path, **estimator_kwargs)
    metrics = evaluate_coco(estimator, ann, images_dir, boxes=boxes, out_dir=out_dir, num_overlays=num_overlays)
    io_utils.write_text(os.path.join(out_dir, "metrics.md"), coco_eval.format_table(metrics) + "\n")
    return metrics
