"""Pose pictures with OpenCV, in one palette for every picture the project draws.

- :func:`draw_poses`: predictions: thick limbs, filled keypoint dots whose size and opacity show
  confidence, the instance score above the box.
- :func:`draw_ground_truth`: annotations: thin limbs and rings (thick ring: visible, thin: occluded),
  used by evaluation overlays (under the predictions) and by dataset contact sheets.
- :func:`with_legend`: a strip under a picture saying what the colours and marks mean.

Colours (BGR) by body side, from the keypoint names of the KeypointSpec: ``left_*`` orange, ``right_*``
blue, the rest (nose, head, neck, pelvis...) green; a limb joining two sides is green. The skeleton
comes from the KeypointSpec too.

Confidence shown = ``clip(keypoint_score - 0.5, 0, 1)``: both decoders report ``peak / 255 + 0.5``,
so this is the heatmap peak as a fraction of the training target's 255.
"""
from __future__ import annotations

import os
from typing import Sequence

import cv2
import numpy as np

from rsn_tf.keypoints import KeypointSpec

# BGR
LEFT, RIGHT, CENTRE = (0, 140, 255), (255, 120, 0), (80, 200, 60)
BOX = (200, 200, 200)
OUTLINE = (30, 30, 30)


def side_colour(name: str) -> tuple[int, int, int]:
    """The palette colour of a keypoint by its name: left orange, right blue, otherwise green."""
    if name.startswith(("left", "l_")):
        return LEFT
    if name.startswith(("right", "r_")):
        return RIGHT
    return CENTRE


_side = side_colour


def limb_colour(spec: KeypointSpec, a: int, b: int) -> tuple[int, int, int]:
    """A limb's colour: its side's when both ends are on one side, else the centre colour."""
    ca, cb = side_colour(spec.names[a]), side_colour(spec.names[b])
    return ca if ca == cb else CENTRE


def _unit(image) -> int:
    return max(1, int(round(max(image.shape[:2]) / 640)))


def keypoint_confidence(scores) -> np.ndarray:
    """Decoder keypoint scores (peak/255 + 0.5) -> display confidence in [0, 1]."""
    return np.clip(np.asarray(scores, np.float32) - 0.5, 0.0, 1.0)


def draw_poses(image, poses: Sequence, spec: KeypointSpec, limb_threshold: float = 0.0,
               draw_boxes: bool = True, min_box_score: float = 0.0) -> np.ndarray:
    """Draw ``poses`` (objects with keypoints [K, 2], keypoint_scores [K], box, score) on a copy of
    ``image`` (BGR uint8). Limbs are drawn when both ends' confidence >= ``limb_threshold`` (default:
    all); every keypoint is drawn, radius and opacity growing with its confidence. Poses whose ``box_score`` is
    below ``min_box_score`` are left out (low-score detections clutter a picture)."""
    img = np.ascontiguousarray(image, dtype=np.uint8).copy()
    h, w = img.shape[:2]
    unit = _unit(img)
    for pose in poses:
        if getattr(pose, "box_score", 1.0) < min_box_score:
            continue
        kpts = np.asarray(pose.keypoints, np.float32)
        conf = keypoint_confidence(pose.keypoint_scores)
        if draw_boxes and pose.box is not None:
            x, y, bw, bh = (int(round(v)) for v in pose.box)
            cv2.rectangle(img, (x, y), (x + bw, y + bh), BOX, 1, cv2.LINE_AA)
            label = f"{pose.score:.2f}"
            (tw, th), _ = cv2.getTextSize(label, cv2.FONT_HERSHEY_SIMPLEX, 0.4 * unit, unit)
            ty = max(y - 3, th + 2)
            cv2.rectangle(img, (x, ty - th - 2), (x + tw + 2, ty + 2), (40, 40, 40), -1)
            cv2.putText(img, label, (x + 1, ty), cv2.FONT_HERSHEY_SIMPLEX, 0.4 * unit, (255, 255, 255), unit,
                        cv2.LINE_AA)
        layer = img.copy()
        for a, b in spec.skeleton:
            if min(conf[a], conf[b]) < limb_threshold:
                continue
            colour = limb_colour(spec, a, b)
            cv2.line(layer, tuple(int(v) for v in kpts[a]), tuple(int(v) for v in kpts[b]), colour, 2 * unit,
                     cv2.LINE_AA)
        img = cv2.addWeighted(layer, 0.8, img, 0.2, 0)
        for j in np.argsort(conf):  # most confident on top
            if not np.all(np.isfinite(kpts[j])):
                continue
            radius = int(round(unit * (2 + 3 * conf[j])))
            cx, cy = (int(v) for v in kpts[j])
            # Blend only the dot's square (a whole-image blend per keypoint is slow on big pictures).
            x0, y0 = max(cx - radius - 2, 0), max(cy - radius - 2, 0)
            x1, y1 = min(cx + radius + 3, w), min(cy + radius + 3, h)
            if x0 >= x1 or y0 >= y1:
                continue
            roi = img[y0:y1, x0:x1]
            layer = roi.copy()
            centre = (cx - x0, cy - y0)
            cv2.circle(layer, centre, radius, _side(spec.names[j]), -1, cv2.LINE_AA)
            cv2.circle(layer, centre, radius, (255, 255, 255), 1, cv2.LINE_AA)
            alpha = 0.45 + 0.55 * float(conf[j])
            img[y0:y1, x0:x1] = cv2.addWeighted(layer, alpha, roi, 1 - alpha, 0)
    return img


def draw_ground_truth(image, keypoints, visible, spec: KeypointSpec, boxes=None, thickness: int | None = None
                      ) -> np.ndarray:
    """Draw annotated people on a copy of ``image`` (BGR uint8): thin limbs between labelled joints and a
    ring per labelled joint (thick ring: visible, v=2; thin ring: occluded, v=1), in the side colours.

    keypoints: [N, K, 2] px; visible: [N, K] COCO visibility (0 = not labelled, not drawn);
    boxes: optional [N, 4] (x, y, w, h) drawn in the box colour; thickness: limb width (default 1 unit).
    """
    img = np.ascontiguousarray(image, dtype=np.uint8).copy()
    unit = _unit(img)
    width = thickness or unit
    kps = np.asarray(keypoints, np.float32).reshape(-1, spec.num_keypoints, 2)
    vis = np.asarray(visible, np.float32).reshape(-1, spec.num_keypoints)
    if boxes is not None:
        for box in np.asarray(boxes, np.float32).reshape(-1, 4):
            x, y, bw, bh = (int(round(v)) for v in box)
            cv2.rectangle(img, (x, y), (x + bw, y + bh), BOX, 1, cv2.LINE_AA)
    for kp, v in zip(kps, vis):
        for a, b in spec.skeleton:
            if v[a] > 0 and v[b] > 0:
                pa, pb = tuple(int(round(c)) for c in kp[a]), tuple(int(round(c)) for c in kp[b])
                cv2.line(img, pa, pb, OUTLINE, width + 2, cv2.LINE_AA)
                cv2.line(img, pa, pb, limb_colour(spec, a, b), width, cv2.LINE_AA)
        for j in range(spec.num_keypoints):
            if v[j] <= 0 or not np.all(np.isfinite(kp[j])):
                continue
            centre = tuple(int(round(c)) for c in kp[j])
            ring = (2 if v[j] > 1 else 1) * unit
            radius = 2 * unit + width
            cv2.circle(img, centre, radius, OUTLINE, ring + 2, cv2.LINE_AA)
            cv2.circle(img, centre, radius, side_colour(spec.names[j]), ring, cv2.LINE_AA)
    return img


def legend(width: int, ground_truth: bool = False, unit: int = 1, prediction: bool = True) -> np.ndarray:
    """A white strip [h, width, 3] uint8 that explains the palette and the marks of predictions
    (``prediction``) and annotations (``ground_truth``)."""
    scale, thick = 0.4 * unit, unit
    line_h = 18 * unit
    items: list[tuple[str, str, tuple[int, int, int]]] = [
        ("dot", "left", LEFT), ("dot", "right", RIGHT), ("dot", "centre", CENTRE)]
    if prediction:
        items.append(("pred", "prediction (dot size = confidence)", (90, 90, 90)))
    if ground_truth:
        items.append(("gt", "ground truth (thin ring: occluded)", (90, 90, 90)))
    # lay the items out left to right, wrapping to new rows
    rows: list[list[tuple[str, str, tuple[int, int, int], int]]] = [[]]
    x = 6 * unit
    for kind, text, colour in items:
        (tw, _), _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, thick)
        need = 26 * unit + tw + 12 * unit
        if rows[-1] and x + need > width:
            rows.append([])
            x = 6 * unit
        rows[-1].append((kind, text, colour, x))
        x += need
    strip = np.full((line_h * len(rows) + 4 * unit, width, 3), 255, np.uint8)
    for r, row in enumerate(rows):
        cy = 2 * unit + r * line_h + line_h // 2
        for kind, text, colour, x0 in row:
            if kind == "dot":
                cv2.circle(strip, (x0 + 8 * unit, cy), 5 * unit, colour, -1, cv2.LINE_AA)
            elif kind == "pred":
                cv2.line(strip, (x0, cy), (x0 + 14 * unit, cy), colour, 2 * unit, cv2.LINE_AA)
                cv2.circle(strip, (x0 + 18 * unit, cy), 4 * unit, colour, -1, cv2.LINE_AA)
            else:
                cv2.line(strip, (x0, cy), (x0 + 12 * unit, cy), colour, unit, cv2.LINE_AA)
                cv2.circle(strip, (x0 + 18 * unit, cy), 4 * unit, colour, 2 * unit, cv2.LINE_AA)
            cv2.putText(strip, text, (x0 + 26 * unit, cy + 4 * unit), cv2.FONT_HERSHEY_SIMPLEX, scale, (40, 40, 40),
                        thick, cv2.LINE_AA)
    return strip


def with_legend(image, ground_truth: bool = False) -> np.ndarray:
    """``image`` with a :func:`legend` strip appended underneath (the picture itself is not covered)."""
    img = np.ascontiguousarray(image, dtype=np.uint8)
    return np.concatenate([img, legend(img.shape[1], ground_truth, _unit(img))], axis=0)


def tile_images(images: Sequence[np.ndarray], cols: int = 4, cell: tuple[int, int] | None = None,
                gap: int = 4) -> np.ndarray:
    """A grid picture of ``images`` (BGR), each letterboxed into ``cell`` (w, h; default the first image's size)."""
    if not images:
        raise ValueError("tile_images: no images")
    cw, ch = cell or (images[0].shape[1], images[0].shape[0])
    rows = (len(images) + cols - 1) // cols
    ncols = min(cols, len(images))
    sheet = np.full((rows * ch + (rows + 1) * gap, ncols * cw + (ncols + 1) * gap, 3), 255, np.uint8)
    for i, im in enumerate(images):
        f = min(cw / im.shape[1], ch / im.shape[0])
        small = cv2.resize(im, (max(1, int(im.shape[1] * f)), max(1, int(im.shape[0] * f))),
                           interpolation=cv2.INTER_AREA)
        r, c = divmod(i, cols)
        y = gap + r * (ch + gap) + (ch - small.shape[0]) // 2
        x = gap + c * (cw + gap) + (cw - small.shape[1]) // 2
        sheet[y:y + small.shape[0], x:x + small.shape[1]] = small
    return sheet


def overlay_names(file_names: Sequence[str]) -> list[str]:
    """Unique PNG names for image files, in order, so no picture overwrites another.

    ``<stem>.png``; where stems collide (``a/x.jpg``, ``b/x.png``), ``<stem>_<ext>.png``; where that still
    collides (``a/x.jpg``, ``b/x.jpg``), ``<parent>_<stem>_<ext>.png``; then a counter as a last resort.
    """
    def clashing(names):
        return {n for n in names if names.count(n) > 1}

    names = [os.path.splitext(os.path.basename(f))[0] or "image" for f in file_names]
    dup = clashing(names)
    names = [f"{n}_{os.path.splitext(f)[1].lstrip('.').lower()}" if n in dup and os.path.splitext(f)[1] else n
             for n, f in zip(names, file_names)]
    dup = clashing(names)
    names = [f"{os.path.basename(os.path.dirname(os.path.abspath(f)))}_{n}" if n in dup else n
             for n, f in zip(names, file_names)]
    used: set[str] = set()
    out = []
    for n in names:
        name, k = n, 1
        while name in used:
            k += 1
            name = f"{n}_{k}"
        used.add(name)
        out.append(name + ".png")
    return out
