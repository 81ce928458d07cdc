"""Pose estimation on plain image files: boxes from a named source -> poses.json + overlay PNGs.

Images are read by :func:`rsn_tf.data.images.read_image`; by default with their EXIF orientation applied
(``orientation="exif"``: a phone photo is processed upright, as viewers show it, and its keypoints are in
that upright frame); ``orientation="stored"`` keeps the stored pixels (the frame dataset annotations use).
Each overlay gets a unique name (:func:`rsn_tf.visualize.overlay_names`), recorded in ``poses.json``.
"""
from __future__ import annotations

import dataclasses
import logging
import os
from typing import Sequence

import cv2

from rsn_tf import io_utils
from rsn_tf.data.images import EXIF_ORIENTATIONS, check_image_file, exif_orientation, try_read_image
from rsn_tf.inference.boxes import (box_source_kind, full_image_boxes, image_box_file, resolve_auto_boxes,
                                    sanitize_boxes)
from rsn_tf.inference.estimator import PoseEstimator

log = logging.getLogger("rsn_tf.inference")

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp")


def list_images(paths: Sequence[str]) -> list[str]:
    """Files as given, folders expanded to their image files (sorted); a file named twice is kept once."""
    out, seen = [], set()
    for p in paths:
        if os.path.isdir(p):
            found = [os.path.join(p, f) for f in sorted(os.listdir(p)) if f.lower().endswith(IMAGE_EXTENSIONS)]
            if not found:
                log.warning("%s: a folder with no image files (%s)", p, ", ".join(IMAGE_EXTENSIONS))
        else:
            found = [p]
        for f in found:
            key = os.path.realpath(f)
            if key in seen:
                log.warning("%s: given more than once; processed once", f)
                continue
            seen.add(key)
            out.append(f)
    return out


def _check_box_file(path: str, given: dict, files: Sequence[str]) -> None:
    """Box-file names against the images, before any work: none matching is an error; names that match
    no image, and images without an entry (no poses for them), are warnings that list them."""
    matched = {k for f in files for k in (os.path.basename(f), f) if k in given}
    if given and not matched:
        raise ValueError(f"{path}: none of its {len(given)} names (e.g. {sorted(given)[:3]}) is one of the "
                         f"{len(files)} images (e.g. {[os.path.basename(f) for f in files[:3]]}); keys are file "
                         "names or the paths as given")
    unused = sorted(set(given) - matched)
    if unused:
        log.warning("%s: %d names match no given image and are unused: %s", path, len(unused), unused[:10])
    without = [f for f in files if os.path.basename(f) not in given and f not in given]
    if without:
        log.warning("%s: no boxes for %d of %d images (no poses for them): %s", path, len(without), len(files),
                    without[:10])


@dataclasses.dataclass
class InferInputs:
    """``rsn infer``'s inputs, listed and checked before a model is loaded (:func:`check_infer_inputs`):
    the image files (folders expanded, duplicates dropped), those that cannot be images (path -> why),
    the box source (``auto`` resolved), for a box file its boxes by file name, and any advice about the
    boxes (``note``, e.g. that no detector is installed)."""

    files: list
    unreadable: dict
    boxes: str
    given: dict | None
    note: str | None = None


def check_infer_inputs(paths: Sequence[str], boxes: str = "auto") -> InferInputs:
    """List the images, check each file's header and the box source, before any work.

    No image file at all, none readable, an unknown box source, a malformed box file or one whose names
    match none of the images: ``ValueError``/``FileNotFoundError`` naming it. Some unreadable files, box
    names that match no image and images without boxes: warnings that list them. ``boxes="auto"`` becomes
    ``"detector"`` when the detector extra is installed, else ``"full-image"`` with a note.
    """
    files = list_images(paths)
    if not files:
        raise FileNotFoundError(f"no image files in {list(paths)}")
    unreadable = {f: why for f in files if (why := check_image_file(f)) is not None}
    if len(unreadable) == len(files):
        f = files[0]
        raise ValueError(f"none of the {len(files)} given files is a readable image (e.g. {f}: {unreadable[f]})")
    for f, why in unreadable.items():
        log.warning("%s: %s; skipped", f, why)
    kind = box_source_kind(boxes)
    note = None
    if kind == "auto":
        kind, note = resolve_auto_boxes()
        boxes = kind
    given = None
    if kind == "file":
        given = image_box_file(boxes)
        _check_box_file(boxes, given, [f for f in files if f not in unreadable])
    elif kind not in ("full-image", "detector"):
        raise ValueError(f"rsn infer box source must be 'auto', 'full-image', 'detector' or a box JSON file "
                         f"(got {boxes!r})")
    return InferInputs(files, unreadable, boxes, given, note)


def infer_images(estimator: PoseEstimator, paths: Sequence[str] | InferInputs, out_dir: str, boxes: str = "auto",
                 det_threshold: float = 0.5, draw: bool = True, orientation: str = "exif") -> dict:
    """Run ``estimator`` on image files and write ``out_dir/poses.json`` and one overlay PNG per image.

    paths: files and folders, or their :class:`InferInputs` (:func:`check_infer_inputs`; then ``boxes`` is
    taken from it).
    boxes: ``"auto"`` (the detector when installed, else ``"full-image"`` with a note), ``"full-image"``,
    ``"detector"`` or a JSON file ``{file name: [[x, y, w, h(, score)], ...]}`` (boxes in the frame the image
    is processed in, see ``orientation``).
    orientation: ``"exif"`` (default: apply the EXIF tag, as viewers do) or ``"stored"``.
    poses.json: ``{"box_source", "settings", "keypoint_names", "orientation", "images": [{"file", "overlay",
    "width", "height", "orientation", "poses": [{"keypoints" [K, 2] px, "keypoint_scores" [K], "box",
    "box_score", "score"}]}], "skipped": [{"file", "reason"}]}``; width/height/keypoints are in the frame
    the image was processed in; ``settings`` holds the test recipe used and why
    (:meth:`PoseEstimator.settings`), ``note`` any advice about the boxes. Unreadable files are listed under
    ``skipped`` with a warning.
    Returns {"poses": path, "overlays": [paths], "skipped": [...], "replaced": [paths of an earlier run],
    "note": str or None}.
    """
    from rsn_tf.visualize import draw_poses, overlay_names, with_legend

    if orientation not in ("exif", "stored"):
        raise ValueError(f"orientation must be 'exif' or 'stored' (got {orientation!r})")
    inputs = paths if isinstance(paths, InferInputs) else check_infer_inputs(paths, boxes)
    files, boxes, given = inputs.files, inputs.boxes, inputs.given
    names = dict(zip(files, overlay_names(files)))
    detector = None
    if box_source_kind(boxes) == "detector":
        from rsn_tf.inference.boxes import SSDLiteDetector
        detector = SSDLiteDetector(det_threshold)

    skipped, loaded = [{"file": f, "reason": why} for f, why in inputs.unreadable.items()], {}

    def items():
        for path in files:
            if path in inputs.unreadable:
                continue
            image, why = try_read_image(path, orientation)
            if image is None:
                skipped.append({"file": path, "reason": why})
                log.warning("%s: %s; skipped", path, why)
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

    entries, overlays, replaced = [], [], []
    for path, poses in estimator.predict_many(items()):
        image = loaded.pop(path)
        tag = exif_orientation(path)
        frame = "stored" if tag == 1 else (f"exif {tag} applied ({EXIF_ORIENTATIONS[tag]})" if orientation == "exif"
                                           else f"stored (exif {tag}, {EXIF_ORIENTATIONS[tag]}, not applied)")
        entry = {"file": path, "height": int(image.shape[0]), "width": int(image.shape[1]), "orientation": frame,
                 "poses": [p.to_dict() for p in poses]}
        if draw:
            out_png = os.path.join(out_dir, names[path])
            if os.path.exists(out_png):
                replaced.append(out_png)
            with io_utils.atomic_path(out_png) as tmp:
                cv2.imwrite(tmp, with_legend(draw_poses(image, poses, estimator.spec)))
            overlays.append(out_png)
            entry["overlay"] = names[path]
        entries.append(entry)
    poses_file = os.path.join(out_dir, "poses.json")
    if os.path.exists(poses_file):
        replaced.append(poses_file)
    record = {"box_source": boxes, "settings": estimator.settings(), "keypoint_names": list(estimator.spec.names),
              "orientation": orientation, "images": entries, "skipped": skipped}
    if inputs.note:
        record["note"] = inputs.note
    poses_path = io_utils.write_json(poses_file, record)
    return {"poses": poses_path, "overlays": overlays, "skipped": skipped, "replaced": replaced, "note": inputs.note}
