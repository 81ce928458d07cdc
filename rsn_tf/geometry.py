"""All top-down geometry, shared by training, inference, evaluation and export.

Conventions:
- A person region is ``center`` (x, y) and ``scale`` (w, h), both in image pixels. (The authors'
  code divides scale by 200 ("pixel std"); it is only a unit, dropped here.)
- A crop is ``output_size`` = (W, H) pixels, e.g. (192, 256). The affine maps ``center`` to the crop
  centre (W/2, H/2) and ``scale`` w to W pixels (HRNet's ``get_affine_transform``), optionally rotated.
- Points are [..., 2] float arrays of (x, y).
"""
from __future__ import annotations

from typing import Sequence

import cv2
import numpy as np

from rsn_tf.keypoints import flip_permutation


def fix_aspect_ratio(scale_wh, aspect_ratio: float) -> np.ndarray:
    """Enlarge the short side so that w / h == aspect_ratio. scale_wh: [..., 2] -> [..., 2]."""
    s = np.array(scale_wh, dtype=np.float32)
    w, h = s[..., 0], s[..., 1]
    wider = w > aspect_ratio * h
    s[..., 1] = np.where(wider, w / aspect_ratio, h)
    s[..., 0] = np.where(wider, w, h * aspect_ratio)
    return s


def box_to_center_scale(box_xywh, aspect_ratio: float, padding: float | Sequence[float] = 1.0):
    """COCO box [x, y, w, h] -> (center [2], scale [2]) with padding (w, h factors) and the aspect fix.

    The authors' test setting is ``padding=(1.09, 1.135)``; mmpose uses ``1.25``.
    """
    x, y, w, h = (float(v) for v in box_xywh)
    pad = np.broadcast_to(np.asarray(padding, np.float32), (2,))
    center = np.array([x + w * 0.5, y + h * 0.5], np.float32)
    scale = fix_aspect_ratio(np.array([w * pad[0], h * pad[1]], np.float32), aspect_ratio)
    return center, scale


def get_affine_transform(center, scale, rot_deg: float, output_size, inv: bool = False,
                         construction: str = "hrnet") -> np.ndarray:
    """[2, 3] affine from image to crop (or crop to image with ``inv``).

    center, scale: region in image pixels; rot_deg: counter-clockwise rotation of the region
    (degrees); output_size: crop (W, H). The matrix comes from three point pairs (centre, a point
    half a width away, and a third at right angles) through ``cv2.getAffineTransform`` on float32
    points, as both references build it; ``construction`` picks which second point:
    ``"hrnet"`` (the authors / HRNet: half a width *above* the centre) or ``"mmpose"``
    (``get_warp_matrix``: half a width to the *left*). The two are the same transform up to float32
    rounding of the points (~1e-5 in the translation), which moves a few crop pixels by an
    intensity level; each reference's crops are reproduced bit-exactly by its own construction.
    """
    if construction not in ("hrnet", "mmpose"):
        raise ValueError(f"construction must be 'hrnet' or 'mmpose' (got {construction!r})")
    center = np.asarray(center, np.float32)
    src_w = float(np.asarray(scale, np.float32)[0])
    dst_w, dst_h = float(output_size[0]), float(output_size[1])
    rot = np.deg2rad(rot_deg)
    sn, cs = np.sin(rot), np.cos(rot)
    if construction == "hrnet":
        src_dir = np.array([0.0, -0.5 * src_w], np.float32)
        src_dir = np.array([src_dir[0] * cs - src_dir[1] * sn, src_dir[0] * sn + src_dir[1] * cs], np.float32)
        dst_dir = np.array([0.0, -0.5 * dst_w], np.float32)
    else:  # float64 direction, added to the float32 centre and stored as float32, as mmpose
        src_dir = np.array([-0.5 * src_w * cs, -0.5 * src_w * sn])
        dst_dir = np.array([-0.5 * dst_w, 0.0])

    src = np.zeros((3, 2), np.float32)
    dst = np.zeros((3, 2), np.float32)
    src[0], src[1] = center, center + src_dir
    dst[0] = [dst_w * 0.5, dst_h * 0.5]
    dst[1] = np.array([dst_w * 0.5, dst_h * 0.5]) + dst_dir
    src[2] = _third_point(src[0], src[1])
    dst[2] = _third_point(dst[0], dst[1])
    if inv:
        return cv2.getAffineTransform(dst, src)
    return cv2.getAffineTransform(src, dst)


def _third_point(a, b):
    d = a - b
    return b + np.array([-d[1], d[0]], np.float32)


def transform_points(points, matrix) -> np.ndarray:
    """Apply a [2, 3] affine to points [..., 2]."""
    p = np.asarray(points, np.float64)
    m = np.asarray(matrix, np.float64)
    return (p @ m[:, :2].T + m[:, 2]).astype(np.float32)


def warp_to_crop(image: np.ndarray, center, scale, rot_deg: float, output_size) -> np.ndarray:
    """Crop ``image`` [H, W, C] to ``output_size`` (W, H) with bilinear interpolation (cv2.warpAffine)."""
    m = get_affine_transform(center, scale, rot_deg, output_size)
    return cv2.warpAffine(image, m, (int(output_size[0]), int(output_size[1])), flags=cv2.INTER_LINEAR)


def crop_to_image(points, center, scale, output_size, rot_deg: float = 0.0, construction: str = "hrnet") -> np.ndarray:
    """Map crop-space points [..., 2] back to image pixels with the inverse of the crop's affine."""
    return transform_points(points, get_affine_transform(center, scale, rot_deg, output_size, inv=True,
                                                         construction=construction))


def flip_points(points, width: float, flip_pairs: Sequence[Sequence[int]], visible=None):
    """Mirror keypoints horizontally in an image of ``width`` px: x -> width - 1 - x, pairs swapped.

    points: [..., K, 2]; visible: optional [..., K] swapped the same way. Returns (points, visible).
    """
    p = np.array(points, np.float32, copy=True)
    p[..., 0] = width - 1 - p[..., 0]
    perm = flip_permutation(p.shape[-2], flip_pairs)
    p = p[..., perm, :]
    v = None if visible is None else np.asarray(visible)[..., perm]
    return p, v


def flip_back_heatmaps(heatmaps, flip_pairs: Sequence[Sequence[int]]) -> np.ndarray:
    """Heatmaps of a mirrored crop [..., h, w, K] -> the original crop's frame (reverse w, swap pairs)."""
    h = np.asarray(heatmaps)
    return h[..., ::-1, :][..., flip_permutation(h.shape[-1], flip_pairs)]

