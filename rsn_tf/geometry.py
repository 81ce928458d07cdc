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


def box_to_center_scale(box_xywh, aspect_ratio: float, padding: float | Sequence[float] = 1.0,
                        construction: str = "authors"):
    """COCO box [x, y, w, h] -> (center [2], scale [2]) with padding (w, h factors) and the aspect fix.

    The authors' test setting is ``padding=(1.09, 1.135)``; mmpose uses ``1.25``. ``construction``
    picks the float arithmetic of a reference (the results differ by float32 rounding only):
    ``"authors"`` computes ``x + w/2`` in float64; ``"mmpose"`` is mmpose's ``bbox_xywh2xyxy`` +
    ``bbox_xyxy2cs`` in float32 (``x2 = x + w``, centre ``(x1 + x2) / 2``, scale ``(x2 - x1) * padding``).
    """
    if construction == "mmpose":
        b = np.asarray(box_xywh, np.float32).reshape(4)
        return corners_to_center_scale(np.concatenate([b[:2], b[:2] + b[2:]]), aspect_ratio, padding)
    if construction != "authors":
        raise ValueError(f"construction must be 'authors' or 'mmpose' (got {construction!r})")
    pad = np.broadcast_to(np.asarray(padding, np.float32), (2,))
    x, y, w, h = (float(v) for v in box_xywh)
    center = np.array([x + w * 0.5, y + h * 0.5], np.float32)
    scale = fix_aspect_ratio(np.array([w * pad[0], h * pad[1]], np.float32), aspect_ratio)
    return center, scale


def corners_to_center_scale(box_xyxy, aspect_ratio: float | None, padding: float | Sequence[float] = 1.25):
    """Box corners [x1, y1, x2, y2] -> (center [2], scale [2]) float32 as mmpose computes them:
    ``bbox_xyxy2cs`` (``center = (x1 + x2) * 0.5``, ``scale = (x2 - x1, y2 - y1) * padding``) and, unless
    ``aspect_ratio`` is None (training applies it after the half-body step), the aspect fix of
    ``TopdownAffine``; all in float32."""
    xyxy = np.asarray(box_xyxy, np.float32).reshape(4)
    pad = np.broadcast_to(np.asarray(padding, np.float32), (2,))
    center = (xyxy[2:] + xyxy[:2]) * np.float32(0.5)
    scale = (xyxy[2:] - xyxy[:2]) * pad
    return center.astype(np.float32), scale if aspect_ratio is None else fix_aspect_ratio(scale, aspect_ratio)


def get_affine_transform(center, scale, rot_deg: float, output_size, inv: bool = False,
                         construction: str = "authors") -> np.ndarray:
    """[2, 3] affine from image to crop (or crop to image with ``inv``).

    center, scale: region in image pixels; rot_deg: counter-clockwise rotation of the region
    (degrees); output_size: crop (W, H). The matrix comes from three point pairs, built as the
    references build them: ``construction="authors"`` (HRNet's / the authors' ``get_affine_transform``:
    the second point above the centre) or ``"mmpose"`` (mmpose 1.x ``get_warp_matrix``: the second
    point left of the centre). Both are the same map; their float32 points make the matrices differ
    in the 7th digit, which moves some bilinear samples of ``cv2.warpAffine`` by one grey level, so
    each recipe uses its reference's construction.
    """
    if construction == "mmpose":
        return _mmpose_warp_matrix(center, scale, rot_deg, output_size, inv)
    if construction != "authors":
        raise ValueError(f"construction must be 'authors' or 'mmpose' (got {construction!r})")
    center = np.asarray(center, np.float32)
    src_w = float(np.asarray(scale, np.float32)[0])
    dst_w, dst_h = float(output_size[0]), float(output_size[1])
    rot = np.deg2rad(rot_deg)
    sn, cs = np.sin(rot), np.cos(rot)
    src_dir = np.array([0.0, -0.5 * src_w], np.float32)
    src_dir = np.array([src_dir[0] * cs - src_dir[1] * sn, src_dir[0] * sn + src_dir[1] * cs], np.float32)
    dst_dir = np.array([0.0, -0.5 * dst_w], np.float32)

    src = np.zeros((3, 2), np.float32)
    dst = np.zeros((3, 2), np.float32)
    src[0], src[1] = center, center + src_dir
    dst[0] = [dst_w * 0.5, dst_h * 0.5]
    dst[1] = dst[0] + dst_dir
    src[2] = _third_point(src[0], src[1])
    dst[2] = _third_point(dst[0], dst[1])
    if inv:
        return cv2.getAffineTransform(dst, src)
    return cv2.getAffineTransform(src, dst)


def _mmpose_warp_matrix(center, scale, rot_deg, output_size, inv):
    """mmpose 1.x ``get_warp_matrix(center, scale, rot, output_size)`` (no shift, fixed aspect), bit for bit."""
    center = np.asarray(center, np.float32)
    src_w = np.asarray(scale, np.float32)[0]
    dst_w, dst_h = output_size[0], output_size[1]
    rot = np.deg2rad(rot_deg)
    sn, cs = np.sin(rot), np.cos(rot)
    src_dir = np.array([[cs, -sn], [sn, cs]]) @ np.array([float(src_w) * -0.5, 0.0])  # float64, as mmpose
    dst_dir = np.array([dst_w * -0.5, 0.0])
    src = np.zeros((3, 2), np.float32)
    dst = np.zeros((3, 2), np.float32)
    src[0] = center
    src[1] = center + src_dir  # float64 sum, stored as float32
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


def warp_to_crop(image: np.ndarray, center, scale, rot_deg: float, output_size,
                 construction: str = "authors") -> np.ndarray:
    """Crop ``image`` [H, W, C] to ``output_size`` (W, H) with bilinear interpolation (cv2.warpAffine);
    ``construction``: whose matrix (see :func:`get_affine_transform`)."""
    m = get_affine_transform(center, scale, rot_deg, output_size, construction=construction)
    return cv2.warpAffine(image, m, (int(output_size[0]), int(output_size[1])), flags=cv2.INTER_LINEAR)


def crop_to_image(points, center, scale, output_size, rot_deg: float = 0.0,
                  construction: str = "authors") -> np.ndarray:
    """Map crop-space points [..., 2] back to image pixels with the inverse of the crop's affine
    (``construction``: whose matrix, see :func:`get_affine_transform`)."""
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
    return np.take(h[..., ::-1, :], flip_permutation(h.shape[-1], flip_pairs), axis=-1)  # 3x faster than h[..., perm]



def crop_to_image_batch(points, centers, scales, output_size) -> np.ndarray:
    """Map crop-space points of many unrotated crops back to image pixels, all at once.

    points: [N, K, 2] crop px; centers, scales: [N, 2] image px; output_size: crop (W, H).
    Returns [N, K, 2] float32: ``p / output_size * scale + center - scale / 2`` in float64 (mmpose's
    ``TopdownPoseEstimator`` formula, bit for bit; the same map as :func:`crop_to_image` with rotation 0,
    whose three-point matrix differs only by float rounding).
    """
    p = np.asarray(points, np.float32).astype(np.float64)
    c = np.asarray(centers, np.float32).astype(np.float64)[:, None, :]
    s = np.asarray(scales, np.float32).astype(np.float64)[:, None, :]
    size = np.asarray(output_size, np.float64)
    return (p / size * s + c - 0.5 * s).astype(np.float32)
