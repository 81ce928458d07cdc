"""Pose estimation on plain image files: boxes from a named source -> poses.json + overlay PNGs."""
from __future__ import annotations

import logging
import os
from typing import Sequence

import cv2

from rsn_tf import io_utils
from rsn_tf.inference.boxes import (box_source_kind, full_image_boxes, image_box_file, resolve_auto_boxes,
                                    sanitize_boxes)
from rsn_tf.inference.estimator import PoseEstimator

log = logging.getLogger("rsn_tf.inference")

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp")


def list_images(paths: Sequence[str]) -> list[str]:
    """Files as given, folders expanded to their image files (sorted)."""
    out = []
    for p in paths:
        if os.path.isdir(p):
            out.extend(os.path.join(p, f) for f in sorted(os.listdir(p)) if f.lower().endswith(IMAGE_EXTENSIONS))
        else:
            out.append(p)
    return out


def infer_images(estimator: PoseEstimator, paths: Sequence[str], out_dir: str, boxes: str = "full-image",
                 det_threshold: float = 0.5, draw: bool = True) -> dict:
    """Run ``estimator`` on image files and write ``out_dir/poses.json`` and ``out_dir/<name>.png`` overlays.

    boxes: ``"auto"`` (the detector when installed, else ``"full-image"`` with a note), ``"full-image"``,
    ``"detector"`` or a JSON file ``{file name: [[x, y, w, h(, score)], ...]}``.
    poses.json: ``{"box_source", "settings", "keypoint_names", "images": [{"file", "width", "height",
    "poses": [{"keypoints" [K, 2] px, "keypoint_scores" [K], "box", "box_score", "score"}]}], "skipped": [...]}``;
    ``settings`` holds the test recipe used and why (:meth:`PoseEstimator.settings`), ``note`` any advice
    about the boxes. Unreadable files are listed under ``skipped`` with a warning.
    Returns ``{"poses", "overlays", "skipped", "note"}``.
    """
    from rsn_tf.visualize import draw_poses

    files = list_images(paths)
    if not files:
        raise FileNotFoundError(f"no image files in {list(paths)}")
    kind = box_source_kind(boxes)
    note = None
    if kind == "auto":
        kind, note = resolve_auto_boxes()
        boxes = kind
    detector = None
    given = None
    if kind == "detector":
        from rsn_tf.inference.boxes import SSDLiteDetector
        detector = SSDLiteDetector(det_threshold)
    elif kind == "file":
        given = image_box_file(boxes)
    elif kind != "full-image":
        raise ValueError(f"rsn infer box source must be 'auto', 'full-image', 'detector' or a box JSON file "
                         f"(got {boxes!r})")

    skipped, loaded = [], {}

    def items():
        for path in files:
            image = cv2.imread(path, cv2.IMREAD_COLOR) if os.path.isfile(path) else None
            if image is None:
                skipped.append(path)
                log.warning("%s: not a readable image; skipped", path)
                continue
            h, w = image.shape[:2]
            if detector is not None:
                person_boxes = detector.detect(image)
            elif given is not None:
                person_boxes = given.get(os.path.basename(path), given.get(path, []))
            else:
                person_boxes = full_image_boxes({0: (h, w)})[0]
            kept, _, dropped = sanitize_boxes(person_boxes, w, h)
            if dropped:
                log.warning("%s: %d boxes outside the image or of zero size dropped", path, dropped)
            loaded[path] = image
            yield path, image, kept, None

    entries, overlays = [], []
    for path, poses in estimator.predict_many(items()):
        image = loaded.pop(path)
        entries.append({"file": path, "height": int(image.shape[0]), "width": int(image.shape[1]),
                        "poses": [p.to_dict() for p in poses]})
        if draw:
            name = os.path.splitext(os.path.basename(path))[0] + ".png"
            with io_utils.atomic_path(os.path.join(out_dir, name)) as tmp:
                cv2.imwrite(tmp, draw_poses(image, poses, estimator.spec))
            overlays.append(os.path.join(out_dir, name))
    record = {"box_source": boxes, "settings": estimator.settings(), "keypoint_names": list(estimator.spec.names),
              "images": entries, "skipped": skipped}
    if note:
        record["note"] = note
    poses_path = io_utils.write_json(os.path.join(out_dir, "poses.json"), record)
    return {"poses": poses_path, "overlays": overlays, "skipped": skipped, "note": note}
