"""Box + keypoints -> crop parameters (train: random augmentation; eval: fixed), and the crop itself.

A crop is fully described by :class:`CropParams` (center, scale in image pixels, rotation in degrees,
horizontal flip). :func:`apply_crop` warps the image and moves the keypoints with the same affine
(``rsn_tf.geometry``), so predictions map back with its inverse.

Recipes:
- "authors" (the RSN release, ``JointsDataset``): box x ``box_ext`` x (1 + U*random_ext), aspect fix;
  half body with prob p if > 3 labelled joints (upper chosen if ``randn() < 0.5``, the authors' normal
  draw); scale x U(scale_range); rotation U(+-max) with prob p; flip with prob p.
- "mmpose" (mmpose 1.x RSN configs): box x padding; RandomHalfBody (>= 9 joints, upper preferred with
  prob 0.7, padding 1.5); RandomBBoxTransform (shift, scale and rotation as truncated normals);
  aspect fix at the crop. mmpose flips before the half body; flipping last here gives the same
  distribution because every step is left/right symmetric.
- "none": the eval crop (test padding) on the training set.

The *data mode* (``DataConfig.mode``, "authors" or "mmpose") sets the rest of the arithmetic, each
reference's exactly: the person box from the annotation (:func:`person_box`), centre/scale
(:func:`box_center_scale`), the crop matrix construction and the keypoint bounds rule
(:func:`apply_crop`).
"""
from __future__ import annotations

import dataclasses

import cv2
import numpy as np

from rsn_tf.data.config import AugmentConfig
from rsn_tf.geometry import box_to_center_scale, corners_to_center_scale, fix_aspect_ratio, get_affine_transform, transform_points
from rsn_tf.keypoints import KeypointSpec
from rsn_tf.recipes import AUTHORS_BOX_PADDING

MODES = ("authors", "mmpose")


@dataclasses.dataclass(frozen=True)
class CropParams:
    """center [2], scale [2] (w, h; image pixels, aspect already fixed), rotation (degrees), flip."""

    center: np.ndarray
    scale: np.ndarray
    rotation: float = 0.0
    flip: bool = False


def person_box(box, raw_box=None, image_size=None, mode: str = "authors") -> np.ndarray:
    """The person box a reference crops around, in that reference's own form.

    box: the reader's box (x, y, w, h) (HRNet/authors' rule: ``x1 = max(0, x)``,
    ``x2 = min(W-1, x1 + w - 1)``, as :func:`rsn_tf.data.coco.load_coco` stores it); raw_box: the
    annotation's ``bbox`` as written (or None, e.g. detections); image_size: (width, height) from the
    annotation (0/None = unknown).

    ``mode="authors"`` returns ``box`` (x, y, w, h). ``"mmpose"`` returns float32 corners
    (x1, y1, x2, y2) by ``parse_data_info``'s rule on the raw box, ``x1 = clip(x, 0, W-1)``,
    ``x2 = clip(x + w, 0, W-1)`` (unclipped ``x + w`` without a raw box or image size, as mmpose's
    inference on given boxes). Corners, because mmpose computes centre and scale from them in float32.
    """
    if mode == "authors":
        return np.asarray(box, np.float32)
    x, y, w, h = (float(v) for v in (box if raw_box is None else raw_box))
    x1, y1, x2, y2 = x, y, x + w, y + h
    if raw_box is not None and image_size is not None and min(image_size) > 0:
        iw, ih = float(image_size[0]), float(image_size[1])
        x1, x2 = (min(max(v, 0.0), iw - 1) for v in (x1, x2))
        y1, y2 = (min(max(v, 0.0), ih - 1) for v in (y1, y2))
    return np.array([x1, y1, x2, y2], np.float32)


def box_center_scale(box, aspect_ratio: float, padding, mode: str = "authors"):
    """(center [2], scale [2]) float32 of a :func:`person_box` with ``padding`` (w, h factors), aspect fixed.

    ``"authors"`` (box x, y, w, h): :func:`rsn_tf.geometry.box_to_center_scale`. ``"mmpose"`` (corners):
    ``GetBBoxCenterScale`` + ``TopdownAffine._fix_aspect_ratio`` in float32, ``center = (x1 + x2) * 0.5``,
    ``scale = (x2 - x1, y2 - y1) * padding``.
    """
    if mode == "authors":
        return box_to_center_scale(box, aspect_ratio, padding)
    return corners_to_center_scale(box, aspect_ratio, padding)


def eval_params(box, aspect_ratio: float, padding=AUTHORS_BOX_PADDING, mode: str = "authors") -> CropParams:
    """The test crop: box (:func:`person_box` of ``mode``; (x, y, w, h) by default) extended by
    ``padding`` (w, h), aspect fixed; no rotation, no flip."""
    center, scale = box_center_scale(box, aspect_ratio, padding, mode)
    return CropParams(center, scale)


def train_params(rng: np.random.Generator, box, keypoints, visible, spec: KeypointSpec, aug: AugmentConfig,
                 aspect_ratio: float, test_padding=AUTHORS_BOX_PADDING, mode: str = "authors") -> CropParams:
    """Random crop parameters for one training instance.

    box: :func:`person_box` of ``mode``; keypoints [K, 2] image pixels; visible [K]
    (> 0 = labelled); aug: resolved or not (resolved here); aspect_ratio: crop W / H.
    """
    a = aug.resolved()
    if a.recipe == "none":
        return eval_params(box, aspect_ratio, test_padding, mode)
    if a.recipe == "authors":
        if mode == "mmpose":  # corners -> (x, y, w, h)
            b = np.asarray(box, np.float32)
            box = np.concatenate([b[:2], b[2:] - b[:2]])
        return _authors(rng, box, keypoints, visible, spec, a, aspect_ratio)
    return _mmpose(rng, box, keypoints, visible, spec, a, aspect_ratio, mode)


def _authors(rng, box, keypoints, visible, spec, a: AugmentConfig, aspect_ratio):
    ext = (a.box_ext * (1 + rng.random() * a.random_ext[0]), a.box_ext * (1 + rng.random() * a.random_ext[1]))
    center, scale = box_to_center_scale(box, aspect_ratio, ext)
    if np.sum(np.asarray(visible) > 0) >= a.half_body_min_joints and rng.random() < a.half_body_prob:
        half = half_body_authors(rng, keypoints, visible, spec, a.half_body_ext, aspect_ratio)
        if half is not None:
            center, scale = half
    scale = scale * rng.uniform(*a.scale_range)
    rotation = rng.uniform(-a.rotation_max, a.rotation_max) if rng.random() < a.rotation_prob else 0.0
    flip = bool(rng.random() < a.flip_prob)
    return CropParams(np.asarray(center, np.float32), np.asarray(scale, np.float32), float(rotation), flip)


def half_body_authors(rng, keypoints, visible, spec: KeypointSpec, ext, aspect_ratio):
    """The authors' ``half_body_transform``: (center, scale) around the upper or lower labelled joints, or None.

    Upper is chosen if ``rng.standard_normal() < 0.5`` (sic, a normal draw) and it has > 3 joints, else
    lower if it has > 3, else upper; fewer than 3 selected joints -> None. Centre = joints' mean.
    """
    upper, lower = _split_half(keypoints, visible, spec)
    if rng.standard_normal() < 0.5 and len(upper) > 3:
        selected = upper
    else:
        selected = lower if len(lower) > 3 else upper
    if len(selected) < 3:
        return None
    pts = np.asarray(selected, np.float32)
    w, h = pts.max(0) - pts.min(0)
    w *= 1 + rng.random() * ext[0]
    h *= 1 + rng.random() * ext[1]
    return pts.mean(0), fix_aspect_ratio(np.array([w, h], np.float32), aspect_ratio)


def _split_half(keypoints, visible, spec):
    upper_ids = set(spec.upper_body)
    upper, lower = [], []
    for j, (p, v) in enumerate(zip(np.asarray(keypoints), np.asarray(visible))):
        if v > 0:
            (upper if j in upper_ids else lower).append(p)
    return upper, lower


def _truncnorm(rng, size=None):
    """Standard normal truncated to [-1, 1] (scipy's ``truncnorm(-1, 1)``), by rejection."""
    out = rng.standard_normal(size)
    bad = np.abs(out) > 1
    while np.any(bad):
        out = np.where(bad, rng.standard_normal(size), out)
        bad = np.abs(out) > 1
    return out


def _mmpose(rng, box, keypoints, visible, spec, a: AugmentConfig, aspect_ratio, mode: str = "mmpose"):
    if mode == "mmpose":
        center, scale = corners_to_center_scale(box, None, a.padding)
    else:
        x, y, w, h = (float(v) for v in box)
        center = np.array([x + w / 2, y + h / 2], np.float32)
        scale = np.array([w, h], np.float32) * a.padding
    vis = np.asarray(visible)
    if np.sum(vis > 0) >= a.half_body_min_joints and rng.random() <= a.half_body_prob:
        upper, lower = _split_half(keypoints, visible, spec)
        prefer_upper = rng.random() < a.half_body_upper_prob
        # mmpose RandomHalfBody: min_upper_keypoints=2, min_lower_keypoints=3
        if len(upper) < 2 and len(lower) < 3:
            chosen = None
        elif len(lower) < 3:
            chosen = upper
        elif len(upper) < 2:
            chosen = lower
        else:
            chosen = upper if prefer_upper else lower
        if chosen:
            pts = np.asarray(chosen, np.float32)
            center = pts.mean(0)
            scale = fix_aspect_ratio(pts.max(0) - pts.min(0), aspect_ratio) * a.half_body_padding
    if rng.random() < a.shift_prob:
        center = center + _truncnorm(rng, 2).astype(np.float32) * a.shift_factor * scale
    lo, hi = a.scale_range
    scale = scale * float(_truncnorm(rng) * (hi - lo) / 2 + (hi + lo) / 2)
    rotation = float(_truncnorm(rng) * a.rotation_max) if rng.random() < a.rotation_prob else 0.0
    flip = bool(rng.random() < a.flip_prob)
    return CropParams(np.asarray(center, np.float32), fix_aspect_ratio(scale, aspect_ratio), rotation, flip)


def crop_affine(params: CropParams, image_width: int, output_size, mode: str = "authors") -> np.ndarray:
    """[2, 3] affine from the *original* image to the crop, the flip folded in.

    Both references flip the image (x -> W - 1 - x) and the centre, then crop; composing the flip into
    the affine gives the same crop without copying the image. ``mode`` picks the matrix construction.
    """
    center = np.array(params.center, np.float32)
    if params.flip:
        center[0] = image_width - 1 - center[0]
    m = get_affine_transform(center, params.scale, params.rotation, output_size, construction=mode)
    if params.flip:
        flip = np.array([[-1.0, 0.0, image_width - 1.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
        m = (np.vstack([m, [0.0, 0.0, 1.0]]) @ flip)[:2]
    return m.astype(np.float64)


def apply_crop(image, keypoints, visible, params: CropParams, output_size, flip_pairs, mode: str = "authors"):
    """Warp ``image`` and move keypoints with ``params``.

    image: [H, W, 3] uint8; keypoints [K, 2] image pixels; visible [K] COCO 0/1/2;
    output_size: crop (W, H). Returns crop [H', W', 3] uint8 (``cv2.warpAffine``, bilinear, zero
    border), keypoints [K, 2] crop pixels, visible [K] float32 (pairs swapped on flip).
    ``mode="authors"``: keypoints moved in float64, visible 0 for joints outside
    [0, W'-1] x [0, H'-1] (``JointsDataset``). ``"mmpose"``: keypoints moved by ``cv2.transform``
    (float32, as ``TopdownAffine``), visible unchanged (the encoder decides from the heatmap cell).
    """
    if mode not in MODES:
        raise ValueError(f"data mode must be one of {list(MODES)} (got {mode!r})")
    m = crop_affine(params, image.shape[1], output_size, mode)
    crop = cv2.warpAffine(image, m, (int(output_size[0]), int(output_size[1])), flags=cv2.INTER_LINEAR)
    if mode == "mmpose":
        kpts = cv2.transform(np.asarray(keypoints, np.float32).reshape(1, -1, 2), m).reshape(-1, 2)
    else:
        kpts = transform_points(keypoints, m)
    vis = np.asarray(visible, np.float32).copy()
    if params.flip:
        perm = np.arange(len(vis))
        for i, j in flip_pairs:
            perm[i], perm[j] = j, i
        kpts, vis = kpts[perm], vis[perm]
    if mode == "authors":
        w, h = output_size
        inside = (kpts[:, 0] >= 0) & (kpts[:, 0] <= w - 1) & (kpts[:, 1] >= 0) & (kpts[:, 1] <= h - 1)
        vis = np.where(inside, vis, 0.0).astype(np.float32)
    return crop, kpts.astype(np.float32), vis
