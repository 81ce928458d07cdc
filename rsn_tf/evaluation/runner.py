"""End-to-end evaluation: annotation file + images + box source -> results JSON, metrics JSON/markdown, overlays.

- :func:`evaluate_coco`: COCO-format keypoint set (any K), boxes ``"gt"`` or a detection file.
- :func:`evaluate_mpii`: mmpose list-format MPII JSON, PCKh@0.5/0.1.
- :func:`evaluate_and_draw`: the demo's step (metrics table + overlay pictures).

Every input is checked before the network runs, and a fault is one ``ValueError``/``FileNotFoundError``
naming the file and field: the annotation file through the same validation ``rsn train`` uses
(:func:`rsn_tf.data.coco.check_coco`, :func:`rsn_tf.data.mpii.read_mpii`); the model's keypoint count
against the file's; the OKS sigmas; a detection file none of whose image ids (or, after the score
threshold, none of whose boxes) belong to the annotations; an image folder that holds none of the images.
Partial faults are reported and the valid rest is evaluated: images that cannot be read are skipped and
listed, detections for unknown image ids are skipped (how many, which ids), boxes are clipped to the image
(empty ones dropped); every count is in the metrics JSON under ``"input"``.

Images are read in their stored orientation (:func:`rsn_tf.data.images.read_image`): annotations are.
"""
from __future__ import annotations

import dataclasses
import logging
import os
import time
from typing import Sequence

import cv2
import numpy as np

from rsn_tf import io_utils
from rsn_tf.data.images import check_image_file, try_read_image
from rsn_tf.evaluation import coco as coco_eval
from rsn_tf.evaluation import mpii as mpii_eval
from rsn_tf.inference.boxes import box_source_kind, detection_file_boxes, gt_boxes, sanitize_boxes
from rsn_tf.inference.estimator import PoseEstimator
from rsn_tf.inference.nms import oks_nms

log = logging.getLogger("rsn_tf.evaluation")

#: Overlays leave out persons from detections below this score (evaluation itself keeps them all).
OVERLAY_MIN_BOX_SCORE = 0.3


def read_image(path: str):
    """[H, W, 3] uint8 BGR in the stored orientation (the annotations'), or None when it cannot be read."""
    return try_read_image(path)[0]


def annotation_format(path: str) -> str:
    """``"coco"`` (an object with images/annotations) or ``"mpii"`` (mmpose's list format)."""
    data = io_utils.read_json(path, "annotation file")
    if isinstance(data, dict) and "annotations" in data:
        return "coco"
    if isinstance(data, list) and (not data or (isinstance(data[0], dict) and "joints" in data[0])):
        return "mpii"
    raise ValueError(f"{path}: neither COCO keypoint format (an object with 'annotations') nor MPII list format "
                     "(a list of entries with 'joints')")


def _estimator_settings(est: PoseEstimator) -> dict:
    return est.settings()  # the test recipe used, why it was chosen, and every setting


def check_model_fits(estimator: PoseEstimator, num_keypoints: int, source: str, names=None) -> None:
    """Raise ``ValueError`` naming both keypoint counts and ``source`` when the model cannot be scored on it;
    warn when the counts agree but the keypoint names differ."""
    spec = estimator.spec
    if spec.num_keypoints != num_keypoints:
        raise ValueError(
            f"{source}: the annotations have {num_keypoints} keypoints per person but the model outputs "
            f"{spec.num_keypoints} (layout {spec.name!r}); evaluate it on a file of its own keypoint layout")
    if names is not None and tuple(names) != tuple(spec.names):
        diff = [f"{a}/{b}" for a, b in zip(names, spec.names) if a != b]
        log.warning("%s: keypoint names differ from the model's layout %r (%d of %d, e.g. %s); scoring by "
                    "position in the list", source, spec.name, len(diff), num_keypoints, diff[:3])


def _check_detection_ids(path: str, dets, images: dict, source: str) -> list[int]:
    """Compare a detection file's image ids with the annotations' before any work: none matching (or an
    empty file) is an error; some not matching is a warning that says how many and which. Returns the
    unknown ids."""
    if not isinstance(dets, list):
        return []  # detection_file_boxes names the problem
    if not dets:
        raise ValueError(f"{path}: the detection file is empty: no person boxes to evaluate")
    det_ids: dict[int, int] = {}
    for i, d in enumerate(dets):
        if not isinstance(d, dict) or "image_id" not in d:
            continue  # detection_file_boxes names these
        try:
            img_id = int(d["image_id"])
        except (TypeError, ValueError):
            raise ValueError(f"{path}: entry [{i}] field 'image_id' must be an integer image id, "
                             f"got {d['image_id']!r}") from None
        det_ids[img_id] = det_ids.get(img_id, 0) + 1
    known = set(images)
    unknown = sorted(set(det_ids) - known)
    if det_ids and not set(det_ids) & known:
        raise ValueError(
            f"{path}: none of its {len(dets)} detections is for an image of {source} (detection image ids "
            f"e.g. {sorted(det_ids)[:5]}, annotation image ids e.g. {sorted(known)[:5]}): a detection file of "
            "another dataset or split?")
    if unknown:
        n = sum(det_ids[i] for i in unknown)
        log.warning("%s: %d of %d detections are for %d image ids not in %s and are skipped: %s%s", path, n,
                    len(dets), len(unknown), source, unknown[:10], " ..." if len(unknown) > 10 else "")
    return unknown


def _check_detection_coverage(path: str, images: dict, box_map: dict, score_threshold: float,
                              with_people: set) -> int:
    """After the score threshold: no box left is an error; images with annotated people but no box are a
    warning (those people count as missed). Returns how many such images there are."""
    if sum(len(v) for v in box_map.values()) == 0:
        raise ValueError(f"{path}: no detection for the annotated images has score >= {score_threshold:g} "
                         "(--det-threshold); nothing to evaluate")
    without = sorted(i for i in with_people if not box_map.get(i))
    if without:
        names = [images[i].get("file_name", str(i)) for i in without]
        log.warning("%s: %d of %d images with annotated people have no detection (those people count as missed): "
                    "%s%s", path, len(without), len(with_people), names[:10], " ..." if len(names) > 10 else "")
    return len(without)


def _check_image_folder(images: dict, images_dir: str, source: str) -> dict[int, str]:
    """Header check of every image before any work: {image id: why unreadable}. None readable -> error."""
    if not os.path.isdir(images_dir):
        raise FileNotFoundError(f"image folder not found: {images_dir} (the images of {source})")
    bad = {}
    for img_id, im in images.items():
        problem = check_image_file(os.path.join(images_dir, im.get("file_name", "")))
        if problem is not None:
            bad[img_id] = problem
    if images and len(bad) == len(images):
        first = next(iter(images.values())).get("file_name", "")
        raise FileNotFoundError(f"none of the {len(images)} images of {source} can be read in {images_dir} "
                                f"(e.g. {os.path.join(images_dir, first)}: {bad[next(iter(images))]}); "
                                "is --images the folder that holds them?")
    return bad


@dataclasses.dataclass
class CocoInputs:
    """A COCO-format evaluation's inputs, read and checked (:func:`check_coco_inputs`) before a model is
    loaded: the annotation dict and its name, the OKS sigmas, the images by id, person boxes by image id,
    images whose file cannot be read (id -> why) and the detection-file counts."""

    data: dict
    source: str
    sigmas: np.ndarray
    images: dict
    boxes: str
    box_map: dict
    unreadable: dict
    det_counts: dict
    names: tuple
    score_threshold: float = 0.0


def check_coco_inputs(ann: str | dict, images_dir: str | None, boxes: str = "gt", score_threshold: float = 0.0,
                      sigmas: Sequence[float] | None = None) -> CocoInputs:
    """Read and check everything a COCO-format evaluation needs except the model, before any work.

    The annotation file goes through the validation ``rsn train`` uses (:func:`rsn_tf.data.coco.check_coco`:
    errors name the file, the annotation id and the field); then the OKS sigmas, the box source (a
    detection file none of whose image ids is annotated, or whose boxes all fall below
    ``score_threshold``, is an error; partial mismatches are warnings with counts and ids) and, unless
    ``images_dir`` is None, every image's header (none readable is an error; some is a warning).
    """
    from rsn_tf.data.coco import check_coco, check_coco_top_level, load_coco_json

    if isinstance(ann, str):
        data, source = load_coco_json(ann), ann
    else:
        data, source = ann, "<annotations>"
        check_coco_top_level(data, source)
    category = coco_eval.keypoint_category(data, source)
    names = tuple(category["keypoints"])
    check_coco(data, source, len(names))
    sig = coco_eval.dataset_sigmas(data, sigmas, source)
    category_id = int(category["id"])
    images = {int(im["id"]): im for im in data["images"]}

    kind = box_source_kind(boxes)
    det_counts: dict = {}
    if kind == "gt":
        box_map = gt_boxes(data, source)
        if not any(box_map.values()):
            raise ValueError(f"{source}: no person with a labelled keypoint (and a box) in 'annotations': "
                             "nothing to evaluate with --boxes gt")
    elif kind == "file":
        if not os.path.exists(boxes):
            raise FileNotFoundError(f"--boxes {boxes!r}: neither 'gt' nor an existing detection file")
        unknown = _check_detection_ids(boxes, io_utils.read_json(boxes, "detection file"), images, source)
        found = detection_file_boxes(boxes, None, score_threshold, category_id)
        box_map = {i: found.get(i, []) for i in images}
        with_people = {i for i, b in gt_boxes(data, source).items() if b}
        det_counts = {"detections_unknown_image_ids": len(unknown),
                      "images_without_detections": _check_detection_coverage(boxes, images, box_map,
                                                                             score_threshold, with_people)}
    else:
        raise ValueError(f"evaluation box source must be 'gt' or a detection file (got {boxes!r})")
    unreadable = {} if images_dir is None else _check_image_folder(images, images_dir, source)
    if unreadable:
        log.warning("%s: %d of %d images cannot be read from %s and are left out of the metric: %s%s", source,
                    len(unreadable), len(images), images_dir,
                    [f"{images[i].get('file_name')} ({why})" for i, why in list(unreadable.items())[:5]],
                    " ..." if len(unreadable) > 5 else "")
    return CocoInputs(data, source, sig, images, boxes, box_map, unreadable, det_counts, names, float(score_threshold))


def evaluate_coco(estimator: PoseEstimator, ann: str | dict | CocoInputs, images_dir: str, boxes: str = "gt",
                  score_threshold: float = 0.0, out_dir: str | None = None, use_nms: bool = False,
                  nms_threshold: float = 0.9, sigmas: Sequence[float] | None = None,
                  num_overlays: int = 0, verbose: bool = True, image_reader=None) -> dict:
    """Run top-down inference on a COCO-format set and score it with pycocotools.

    Args:
      estimator: a :class:`PoseEstimator`.
      ann: annotation file (path or dict), or the :class:`CocoInputs` of :func:`check_coco_inputs` (then
        ``boxes``, ``score_threshold`` and ``sigmas`` are taken from it). images_dir: folder of the
        ``file_name`` images.
      boxes: ``"gt"`` or a detection file (COCO results format); ``score_threshold`` filters it.
      out_dir: if given, writes ``results.json`` (COCO results), ``metrics.json``, ``metrics.md`` and
        ``overlays/*.png`` + the grid ``overlays.png`` for the first ``num_overlays`` images (predictions
        over the ground truth, with a legend).
      use_nms: OKS-NMS per image (off by default, as the references).
      image_reader: path -> image or None (tests substitute synthetic images); default :func:`read_image`,
        after a header check of every image.
    Returns the metrics dict (the 10 COCO stats, counts, settings).

    Everything is checked before the network runs (:func:`check_coco_inputs`, then the model's keypoint
    count against the file's, :func:`check_model_fits`).
    """
    inputs = ann if isinstance(ann, CocoInputs) else check_coco_inputs(
        ann, images_dir if image_reader is None else None, boxes, score_threshold, sigmas)
    data, source, images, box_map, boxes = inputs.data, inputs.source, inputs.images, inputs.box_map, inputs.boxes
    score_threshold = inputs.score_threshold
    kind = box_source_kind(boxes)
    det_counts = inputs.det_counts
    check_model_fits(estimator, len(inputs.names), source, inputs.names)
    evaluator = coco_eval.CocoKeypointEvaluator(data, inputs.sigmas)
    evaluator.source = source
    category_id = int(evaluator.category["id"])

    unreadable = dict(inputs.unreadable)
    image_reader = image_reader or read_image
    missing = [images[i].get("file_name", str(i)) for i in unreadable]
    stats = {"clipped": 0, "dropped": 0, "boxes": 0}
    spec = estimator.spec

    def items():
        for img_id, im in images.items():
            if img_id in unreadable:
                continue
            path = os.path.join(images_dir, im.get("file_name", ""))
            image = image_reader(path)
            if image is None:
                log.warning("%s: cannot decode %s; left out of the metric", source, path)
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

    if stats["clipped"] or stats["dropped"]:
        # Clipping is routine (HRNet clips GT boxes too); dropping a box is worth a warning.
        (log.warning if stats["dropped"] else log.info)(
            "%s: %d boxes outside the image or of zero size dropped, %d clipped to their image",
            boxes if kind == "file" else source, stats["dropped"], stats["clipped"])

    evaluator.update_state(results)
    missing_set = set(missing)
    read_ids = [i for i, im in images.items() if im.get("file_name", str(i)) not in missing_set]
    metrics = evaluator.result(image_ids=read_ids if missing else None)
    metrics.update({
        "dataset": source, "boxes": boxes, "score_threshold": score_threshold, "oks_nms": use_nms,
        "settings": _estimator_settings(estimator),
        "input": {"images": len(images), "images_missing": missing, "images_evaluated": len(read_ids), **stats,
                  **det_counts},
        "seconds": round(seconds, 3),
    })
    table = coco_eval.format_table(metrics)
    if verbose:
        print(table, flush=True)
    if out_dir:
        io_utils.write_json(os.path.join(out_dir, "results.json"), results, indent=None)
        if overlays:
            gt = _ground_truth_by_image(data, spec.num_keypoints, evaluator.category["id"])
            metrics["overlays"] = write_overlays(overlays, images, images_dir, spec, out_dir, gt)
        io_utils.write_json(os.path.join(out_dir, "metrics.json"), metrics)
        io_utils.write_text(os.path.join(out_dir, "metrics.md"), metrics_markdown(metrics, table))
    return metrics


def metrics_markdown(metrics: dict, table: str) -> str:
    """``metrics.md``: what was evaluated, how, and the table."""
    s = metrics.get("settings", {})
    inp = metrics.get("input", {})
    lines = [f"# Evaluation of {metrics.get('dataset')}", "",
             f"Boxes: {metrics.get('boxes', 'the file regions')}; flip test {'on' if s.get('flip_test') else 'off'}, "
             f"decode {s.get('decode_mode')}, score {s.get('score_mode')}, decode kernel {s.get('decode_kernel')}, "
             f"box padding {s.get('box_padding')}, input {s.get('input_size')}, keypoints {s.get('keypoints')}.", ""]
    if "images" in inp:
        lines += [f"Images: {inp.get('images_evaluated')} of {inp.get('images')} evaluated"
                  + (f" ({len(inp['images_missing'])} unreadable: {inp['images_missing'][:10]})"
                     if inp.get("images_missing") else "") + ".", ""]
    elif "persons" in inp:
        lines += [f"Persons: {inp.get('persons_evaluated')} of {inp.get('persons')} evaluated.", ""]
    lines += [table, ""]
    return "\n".join(lines)


def _ground_truth_by_image(data: dict, k: int, category_id) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """{image id: (keypoints [N, K, 2], visibility [N, K])} of the non-crowd annotations with keypoints."""
    out: dict[int, list] = {}
    for ann in data["annotations"]:
        if ann.get("iscrowd", 0) or ann.get("category_id", category_id) != category_id:
            continue
        kp = np.asarray(ann["keypoints"], np.float32).reshape(k, 3)
        if kp[:, 2].max() <= 0:
            continue
        out.setdefault(int(ann["image_id"]), []).append(kp)
    return {i: (np.stack(v)[..., :2], np.stack(v)[..., 2]) for i, v in out.items()}


def write_overlays(overlays, images: dict, images_dir: str, spec, out_dir: str, ground_truth: dict | None = None
                   ) -> list[str]:
    """Draw [(image_id, poses)] into ``out_dir/overlays/<name>.png`` and a grid ``out_dir/overlays.png``.

    ground_truth: {image id: (keypoints [N, K, 2], visibility [N, K])} drawn under the predictions
    (rings and thin limbs); every picture carries a legend strip (the grid one, underneath).
    """
    from rsn_tf.visualize import draw_ground_truth, draw_poses, legend, overlay_names, tile_images, with_legend

    ground_truth = ground_truth or {}
    names = overlay_names([images[i]["file_name"] for i, _ in overlays])
    paths, pictures = [], []
    for (img_id, poses), name in zip(overlays, names):
        image = read_image(os.path.join(images_dir, images[img_id]["file_name"]))
        if image is None:
            continue
        if img_id in ground_truth:
            image = draw_ground_truth(image, *ground_truth[img_id], spec)
        pic = draw_poses(image, poses, spec, min_box_score=OVERLAY_MIN_BOX_SCORE)
        path = os.path.join(out_dir, "overlays", name)
        with io_utils.atomic_path(path) as tmp:
            cv2.imwrite(tmp, with_legend(pic, ground_truth=bool(ground_truth)))
        paths.append(path)
        pictures.append(pic)
    if pictures:
        grid = tile_images(pictures, cols=4)
        grid = np.concatenate([grid, legend(grid.shape[1], ground_truth=bool(ground_truth))], axis=0)
        path = os.path.join(out_dir, "overlays.png")
        with io_utils.atomic_path(path) as tmp:
            cv2.imwrite(tmp, grid)
        paths.append(path)
    return paths


@dataclasses.dataclass
class MpiiInputs:
    """An MPII evaluation's inputs, read and checked before a model is loaded (:func:`check_mpii_inputs`)."""

    source: str
    entries: list
    unreadable: set


def check_mpii_inputs(ann: str, images_dir: str | None) -> MpiiInputs:
    """Read an MPII list-format file with the one MPII reader (the validation training uses) and, unless
    ``images_dir`` is None, check every image's header (none readable is an error, some a warning)."""
    entries = mpii_eval.load_mpii(ann)
    unreadable: set = set()
    if images_dir is not None:
        names = list(dict.fromkeys(e.image for e in entries))
        bad = _check_image_folder({i: {"file_name": n} for i, n in enumerate(names)}, images_dir, ann)
        unreadable = {names[i] for i in bad}
        if unreadable:
            log.warning("%s: %d of %d images cannot be read from %s and are left out: %s", ann, len(unreadable),
                        len(names), images_dir, sorted(unreadable)[:10])
    return MpiiInputs(ann, entries, unreadable)


def evaluate_mpii(estimator: PoseEstimator, ann: str | MpiiInputs, images_dir: str, out_dir: str | None = None,
                  verbose: bool = True, image_reader=None, num_overlays: int = 0) -> dict:
    """PCKh@0.5 and @0.1 of ``estimator`` on an MPII list-format file with its own regions
    (center/scale, the references' test crops). Writes ``results.json`` (per person: image, joints
    [16, 2] 0-based px, scores), ``metrics.json``, ``metrics.md`` and, for the first ``num_overlays``
    persons, overlays over the ground truth, when ``out_dir`` is given.

    ann: the file, or its :class:`MpiiInputs` (:func:`check_mpii_inputs`). The file is read by the one MPII
    reader (:func:`rsn_tf.data.mpii.read_mpii`, as training reads it) and the model's keypoint count is
    checked against it before any image is read."""
    from rsn_tf.geometry import fix_aspect_ratio
    from rsn_tf.keypoints import MPII

    inputs = ann if isinstance(ann, MpiiInputs) else check_mpii_inputs(ann, images_dir if image_reader is None
                                                                       else None)
    ann, entries, unreadable = inputs.source, inputs.entries, inputs.unreadable
    check_model_fits(estimator, MPII.num_keypoints, ann)
    h, w = estimator.config.input_size
    missing: list[str] = []
    image_reader = image_reader or read_image

    preds, used, overlays = {}, [], []
    for i, e in enumerate(entries):
        if e.image in unreadable:
            missing.append(e.image)
            continue
        image = image_reader(os.path.join(images_dir, e.image))
        if image is None:
            missing.append(e.image)
            continue
        pose = estimator.predict_regions(image, e.center[None], fix_aspect_ratio(e.scale, w / h)[None])[0]
        preds[i] = pose
        used.append(i)
        if out_dir and len(overlays) < num_overlays:
            overlays.append((i, [pose]))
    if missing and len(missing) > len(unreadable):
        log.warning("%s: %d images could not be decoded from %s and were skipped: %s", ann,
                    len(missing) - len(unreadable), images_dir, [m for m in missing if m not in unreadable][:10])
    gt = np.stack([entries[i].joints for i in used]) if used else np.zeros((0, 16, 2))
    vis = np.stack([entries[i].visible for i in used]) if used else np.zeros((0, 16), bool)
    hs = np.array([entries[i].head_size for i in used])
    pr = np.stack([preds[i].keypoints for i in used]) if used else np.zeros((0, 16, 2))
    metrics = mpii_eval.pckh(pr, gt, vis, hs)
    sources = sorted({entries[i].head_size_source for i in used})
    metrics.update({"dataset": ann, "head_size_source": sources, "settings": _estimator_settings(estimator),
                    "input": {"persons": len(entries), "images_missing": missing, "persons_evaluated": len(used)}})
    table = mpii_eval.format_table(metrics)
    note = ("head size: ||head_top - upper_neck|| fallback (no headboxes in the file)"
            if "head_segment_fallback" in sources else "")
    if verbose:
        print(table, flush=True)
        if note:
            print(note, flush=True)
    if out_dir:
        results = [{"image": entries[i].image, "joints": np.round(preds[i].keypoints, 2).tolist(),
                    "scores": np.round(preds[i].keypoint_scores, 4).tolist()} for i in used]
        io_utils.write_json(os.path.join(out_dir, "results.json"), results, indent=None)
        if overlays:
            images = {i: {"file_name": entries[i].image} for i, _ in overlays}
            gt_map = {i: (entries[i].joints[None], np.where(entries[i].visible, 2.0, 0.0)[None]) for i, _ in overlays}
            metrics["overlays"] = write_overlays(overlays, images, images_dir, estimator.spec, out_dir, gt_map)
        io_utils.write_json(os.path.join(out_dir, "metrics.json"), metrics)
        io_utils.write_text(os.path.join(out_dir, "metrics.md"),
                            metrics_markdown(metrics, table + (f"\n\n{note}" if note else "")))
    return metrics


def evaluate_and_draw(model_path, ann: str, images_dir: str, out_dir: str, num_overlays: int = 8,
                      boxes: str = "gt", **estimator_kwargs) -> dict:
    """The demo's evaluation step: evaluate ``model_path`` (a .keras file or a model) on a COCO-format
    set, write results/metrics JSON, ``metrics.md`` (the table), ``overlays/*.png`` for the
    first ``num_overlays`` images and their grid ``overlays.png``. Returns the metrics dict
    (``metrics["overlays"]``: the PNG paths, the grid last)."""
    estimator = PoseEstimator(model_path, **estimator_kwargs)
    return evaluate_coco(estimator, ann, images_dir, boxes=boxes, out_dir=out_dir, num_overlays=num_overlays)
