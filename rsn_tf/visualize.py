"""Pose overlays with OpenCV: coloured limbs, keypoint dots whose size and opacity show confidence,
the instance score above the box. The skeleton and left/right sides come from the KeypointSpec.

Confidence shown = ``clip(keypoint_score - 0.5, 0, 1)``: both decoders report ``peak / 255 + 0.5``,
so this is the heatmap peak as a fraction of the training target's 255.
"""
from __future__ import annotations

from typing import Sequence

import cv2
import numpy as np

from rsn_tf.keypoints import KeypointSpec

# BGR
LEFT, RIGHT, CENTRE = (0, 140, 255), (255, 120, 0), (80, 200, 60)
BOX = (200, 200, 200)


def _side(name: str) -> tuple[int, int, int]:
    if name.startswith(("left", "l_")):
        return LEFT
    if name.startswith(("right", "r_")):
        return RIGHT
    return CENTRE


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
    unit = max(1, int(round(max(h, w) / 640)))
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
            colour = _side(spec.names[a]) if _side(spec.names[a]) == _side(spec.names[b]) else CENTRE
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
