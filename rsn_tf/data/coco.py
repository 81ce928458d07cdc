"""COCO-format keypoint annotations -> :class:`Instances` (via pycocotools).

Any COCO-style JSON works: the keypoint layout comes from ``categories[i].keypoints``/``skeleton``
(or a built-in layout by name). Rules follow the reference loaders (HRNet/RSN ``COCODataset``):
crowd instances and instances with no labelled keypoint are skipped; the box is clipped to the
image; a box with no area is skipped with a logged warning. Malformed input raises ``ValueError``
naming the file, the annotation id and the field.
"""
from __future__ import annotations

import dataclasses
import logging
import os

import numpy as np

from rsn_tf.data.images import check_image_file
from rsn_tf.data.instances import Instances
from rsn_tf.io_utils import read_json
from rsn_tf.keypoints import KeypointSpec, get_spec, spec_from_coco_category

log = logging.getLogger(__name__)


def load_coco_json(ann_path: str) -> dict:
    """Read and check the top level of a COCO keypoint file (``images``, ``annotations``, ``categories``)."""
    data = read_json(ann_path, "COCO annotation file")
    check_coco_top_level(data, ann_path)
    return data


def check_coco_top_level(data, ann_path: str) -> None:
    """``data`` is an object with the three COCO lists; else ``ValueError`` naming ``ann_path`` and the field."""
    if not isinstance(data, dict):
        raise ValueError(f"{ann_path}: expected a JSON object with 'images', 'annotations', 'categories'")
    for field in ("images", "annotations", "categories"):
        if field not in data:
            raise ValueError(f"{ann_path}: missing field '{field}' (a COCO keypoint file needs images, "
                             "annotations and categories)")
        if not isinstance(data[field], list):
            raise ValueError(f"{ann_path}: field '{field}' must be a list, got {type(data[field]).__name__}")


def check_coco(data: dict, ann_path: str, num_keypoints: int) -> None:
    """Validate every image, annotation and category of a COCO keypoint dict before any work.

    The one validation path of every command that reads COCO-format annotations (``rsn train`` through
    :func:`load_coco`, ``rsn eval`` through :mod:`rsn_tf.evaluation.runner`). Raises ``ValueError`` naming
    ``ann_path``, the image or annotation id and the field: an image without ``id``/``file_name`` or a
    repeated image id; an annotation without ``id``/``image_id``, a repeated annotation id, an ``image_id``
    not in ``images``, a ``category_id`` not in ``categories``, ``keypoints`` that are not
    ``3 * num_keypoints`` finite numbers with visibility flags 0/1/2, a ``bbox`` that is not 4 numbers, a
    non-numeric ``area``.
    """
    check_coco_top_level(data, ann_path)
    for i, cat in enumerate(data["categories"]):
        if not isinstance(cat, dict) or "id" not in cat:
            raise ValueError(f"{ann_path}: categories[{i}] must be an object with an 'id'")
    keypoint_cats = {c["id"] for c in data["categories"] if c.get("keypoints")}
    category_ids = {c["id"] for c in data["categories"]}
    image_ids = set()
    for i, img in enumerate(data["images"]):
        if not isinstance(img, dict):
            raise ValueError(f"{ann_path}: images[{i}] must be an object, got {type(img).__name__}")
        if "id" not in img:
            raise ValueError(f"{ann_path}: images[{i}]: missing field 'id'")
        if "file_name" not in img or not isinstance(img["file_name"], str):
            raise ValueError(f"{ann_path}: image id {img['id']}: missing field 'file_name'")
        if img["id"] in image_ids:
            raise ValueError(f"{ann_path}: image id {img['id']} appears twice in 'images'")
        image_ids.add(img["id"])
    ann_ids = set()
    for i, ann in enumerate(data["annotations"]):
        if not isinstance(ann, dict):
            raise ValueError(f"{ann_path}: annotations[{i}] must be an object, got {type(ann).__name__}")
        for field in ("id", "image_id"):
            if field not in ann:
                raise ValueError(f"{ann_path}: annotations[{i}]: missing field '{field}'")
        where = f"{ann_path}: annotation id {ann['id']}"
        if ann["id"] in ann_ids:
            raise ValueError(f"{where} appears twice (annotation ids must be unique)")
        ann_ids.add(ann["id"])
        if ann["image_id"] not in image_ids:
            raise ValueError(f"{where}: field 'image_id' is {ann['image_id']!r}, which is not an id in 'images'")
        if "category_id" in ann and ann["category_id"] not in category_ids:
            raise ValueError(f"{where}: field 'category_id' is {ann['category_id']!r}, which is not an id in "
                             "'categories'")
        if "category_id" in ann and keypoint_cats and ann["category_id"] not in keypoint_cats:
            continue  # another category's annotation (no keypoints expected); never read
        _keypoints(ann, num_keypoints, ann_path)
        bbox = ann.get("bbox")
        if not isinstance(bbox, (list, tuple)) or len(bbox) != 4 or not all(_is_number(v) for v in bbox):
            raise ValueError(f"{where}: field 'bbox' must be [x, y, w, h] (4 numbers), got {bbox!r}")
        if "area" in ann and not _is_number(ann["area"]):
            raise ValueError(f"{where}: field 'area' must be a number, got {ann['area']!r}")


def _is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and np.isfinite(v)


def coco_spec(data: dict, ann_path: str, keypoints: str | None = None, sigmas=None, flip_pairs=None) -> KeypointSpec:
    """The keypoint layout: built-in ``keypoints`` by name, else from the first category with keypoint names."""
    cats = [c for c in data["categories"] if isinstance(c, dict) and c.get("keypoints")]
    if keypoints is not None:
        spec = get_spec(keypoints)
        if cats and len(cats[0]["keypoints"]) != spec.num_keypoints:
            raise ValueError(f"{ann_path}: categories[0].keypoints has {len(cats[0]['keypoints'])} names but layout "
                             f"{keypoints!r} has {spec.num_keypoints}")
        changes = {}
        if sigmas is not None:
            changes["sigmas"] = tuple(float(s) for s in sigmas)
        if flip_pairs is not None:
            changes["flip_pairs"] = tuple(tuple(int(v) for v in p) for p in flip_pairs)
        return dataclasses.replace(spec, **changes) if changes else spec
    if not cats:
        raise ValueError(f"{ann_path}: no category has a 'keypoints' name list; name a built-in layout "
                         "(data.keypoints in a training config, --keypoints coco|mpii for rsn eval)")
    return spec_from_coco_category(cats[0], sigmas=sigmas, flip_pairs=flip_pairs, source=ann_path)


def load_coco(ann_path: str, image_dir: str, keypoints: str | None = None, sigmas=None, flip_pairs=None,
              check_images: bool = True, skip_bad_images: bool = False) -> Instances:
    """Person instances of a COCO keypoint file, sorted by (image id, annotation id).

    ann_path: the JSON; image_dir: folder holding ``images[i].file_name``.
    check_images: check each image file exists and has an image header (missing -> FileNotFoundError,
    or a logged skip with ``skip_bad_images``).
    """
    from pycocotools.coco import COCO

    data = load_coco_json(ann_path)
    spec = coco_spec(data, ann_path, keypoints, sigmas, flip_pairs)
    k = spec.num_keypoints
    check_coco(data, ann_path, k)
    coco = COCO()  # index the dict we already validated instead of reading the file twice
    coco.dataset = data
    with _quiet():
        coco.createIndex()
    cat_ids = [c["id"] for c in data["categories"] if isinstance(c, dict) and c.get("keypoints")] or None

    rows = dict(path=[], image_id=[], box=[], kpts=[], vis=[], area=[], ann_id=[], raw_box=[], size=[])
    skipped = {"crowd": 0, "no_keypoints": 0, "zero_area": 0, "bad_image": 0}
    image_status: dict[str, str | None] = {}
    for image_id in sorted(coco.imgs):
        img = coco.imgs[image_id]
        width, height = img.get("width"), img.get("height")
        ann_ids = coco.getAnnIds(imgIds=[image_id], catIds=cat_ids or [], iscrowd=None)
        for ann in sorted(coco.loadAnns(ann_ids), key=lambda a: a.get("id", 0)):
            kp = _keypoints(ann, k, ann_path)
            if ann.get("iscrowd", 0):
                skipped["crowd"] += 1
                continue
            if kp[:, 2].max() <= 0:
                skipped["no_keypoints"] += 1
                continue
            box = _clean_box(ann, width, height, ann_path)
            if box is None:
                skipped["zero_area"] += 1
                log.warning("%s: annotation id %s: zero-area 'bbox' %s, skipped", ann_path, ann.get("id"),
                            ann.get("bbox"))
                continue
            path = os.path.join(image_dir, img["file_name"])
            if check_images:
                if path not in image_status:
                    image_status[path] = check_image_file(path)
                problem = image_status[path]
                if problem is not None:
                    if not skip_bad_images:
                        err = FileNotFoundError if problem == "file not found" else ValueError
                        raise err(f"{path}: {problem} (image id {image_id}, 'file_name' in {ann_path})")
                    skipped["bad_image"] += 1
                    continue
            rows["path"].append(path)
            rows["image_id"].append(image_id)
            rows["box"].append(box)
            rows["kpts"].append(kp[:, :2])
            rows["vis"].append(kp[:, 2])
            rows["area"].append(float(ann.get("area", box[2] * box[3])))
            rows["ann_id"].append(int(ann.get("id", -1)))
            rows["raw_box"].append([float(v) for v in ann["bbox"]])
            rows["size"].append([int(width or 0), int(height or 0)])
    bad = sorted({p for p, s in image_status.items() if s is not None})
    if bad:
        log.warning("%s: skipped %d instance(s) of %d unreadable image(s), e.g. %s", ann_path, skipped["bad_image"],
                    len(bad), bad[0])
    log.info("%s: %d instances; skipped %s", ann_path, len(rows["path"]), skipped)
    n = len(rows["path"])
    return Instances(
        image_paths=tuple(rows["path"]),
        image_ids=np.asarray(rows["image_id"], np.int64).reshape(n),
        boxes=np.asarray(rows["box"], np.float32).reshape(n, 4),
        keypoints=np.asarray(rows["kpts"], np.float32).reshape(n, k, 2),
        visible=np.asarray(rows["vis"], np.float32).reshape(n, k),
        areas=np.asarray(rows["area"], np.float32).reshape(n),
        scores=np.ones((n,), np.float32),
        ann_ids=np.asarray(rows["ann_id"], np.int64).reshape(n),
        spec=spec, source=ann_path, description=dataset_description(data),
        raw_boxes=np.asarray(rows["raw_box"], np.float64).reshape(n, 4),
        image_sizes=np.asarray(rows["size"], np.int64).reshape(n, 2))


def dataset_description(data: dict) -> str:
    """``info.description`` of a COCO-format dict, or ``""``."""
    info = data.get("info")
    return str(info.get("description", "")) if isinstance(info, dict) else ""


def _keypoints(ann: dict, k: int, ann_path: str) -> np.ndarray:
    """[K, 3] (x, y, v) of ``ann``, validated."""
    kp = ann.get("keypoints")
    if not isinstance(kp, list):
        raise ValueError(f"{ann_path}: annotation id {ann.get('id')}: field 'keypoints' missing or not a list")
    if len(kp) != 3 * k:
        raise ValueError(f"{ann_path}: annotation id {ann.get('id')}: field 'keypoints' has {len(kp)} values, "
                         f"expected 3 * {k} = {3 * k} (x, y, v per keypoint)")
    try:
        arr = np.asarray(kp, np.float32).reshape(k, 3)
    except (TypeError, ValueError):
        raise ValueError(f"{ann_path}: annotation id {ann.get('id')}: field 'keypoints' holds non-numbers") from None
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{ann_path}: annotation id {ann.get('id')}: field 'keypoints' holds NaN/inf")
    bad_v = sorted({float(v) for v in arr[:, 2] if v not in (0, 1, 2)})
    if bad_v:
        raise ValueError(f"{ann_path}: annotation id {ann.get('id')}: field 'keypoints' has visibility flag(s) "
                         f"{bad_v[:3]}; COCO's are 0 (not labelled), 1 (occluded), 2 (visible)")
    return arr


def _clean_box(ann: dict, width, height, ann_path: str):
    """HRNet/RSN box sanitising: clip to the image; ``None`` if nothing is left."""
    bbox = ann.get("bbox")
    if not isinstance(bbox, (list, tuple)) or len(bbox) != 4:
        raise ValueError(f"{ann_path}: annotation id {ann.get('id')}: field 'bbox' must be [x, y, w, h], got {bbox!r}")
    x, y, w, h = (float(v) for v in bbox)
    if not (w > 0 and h > 0):
        return None
    x1, y1 = max(0.0, x), max(0.0, y)
    x2, y2 = x1 + max(0.0, w - 1), y1 + max(0.0, h - 1)
    if width and height:
        x2, y2 = min(float(width) - 1, x2), min(float(height) - 1, y2)
    if ann.get("area", 1) <= 0 or x2 <= x1 or y2 <= y1:
        return None
    return [x1, y1, x2 - x1, y2 - y1]


class _quiet:
    """Silence pycocotools' prints ('creating index...')."""

    def __enter__(self):
        import contextlib
        import io
        self._ctx = contextlib.redirect_stdout(io.StringIO())
        self._ctx.__enter__()

    def __exit__(self, *exc):
        return self._ctx.__exit__(*exc)
