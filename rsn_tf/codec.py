"""The heatmap codec: keypoints <-> heatmaps, "Megvii" style (CPN/MSPN/RSN; spec sections 4 and 5).

One object, used by training targets, inference, evaluation and the benchmark alike.

Encoding puts a 1 at ``floor(keypoint / stride)`` on an (H/4, W/4) map, blurs it with
``cv2.GaussianBlur(k x k, sigma=0)`` and rescales the peak to 255. Coarse-to-fine supervision uses
one kernel per level: 15/11/9/7 for non-final stages, 11/9/7/5 for the final stage.

Decoding (authors' recipe, ``mode="authors"``): blur the (flip-averaged) map (10-px zero border,
k x k, k=5 for COCO, 9 for MPII), argmax, step 0.25 px toward the second maximum, clip, map to
crop pixels ``stride*x + stride/2``; score = raw map at the rounded peak / 255 + 0.5.
``mode="mmpose"`` is mmpose's ``MegviiHeatmap.decode``: blur renormalised to the original max,
argmax, +0.25*sign(gradient)+0.5 per axis where the peak is interior, times stride;
score = max / 255 + 0.5.
"""
from __future__ import annotations

import dataclasses
from typing import Literal, Sequence

import cv2
import numpy as np

PEAK = 255.0
FINAL_STAGE_KERNELS = (11, 9, 7, 5)
EARLY_STAGE_KERNELS = (15, 11, 9, 7)


def level_kernels(num_stages: int) -> tuple[int, ...]:
    """Gaussian kernel of every head, in model output order (stage, unit coarse -> fine)."""
    return EARLY_STAGE_KERNELS * (num_stages - 1) + FINAL_STAGE_KERNELS


@dataclasses.dataclass(frozen=True)
class MegviiHeatmapCodec:
    """Keypoints in crop pixels <-> heatmaps.

    Attributes:
      input_size: crop (H, W), e.g. (256, 192).
      heatmap_size: map (h, w); default input_size / 4.
      decode_kernel: blur kernel at decode (5 for COCO, 9 for MPII).
      decode_mode: "authors" or "mmpose" (see module docstring).
    """

    input_size: tuple[int, int] = (256, 192)
    heatmap_size: tuple[int, int] | None = None
    decode_kernel: int = 5
    decode_mode: Literal["authors", "mmpose"] = "authors"

    def __post_init__(self):
        if self.heatmap_size is None:
            object.__setattr__(self, "heatmap_size", (self.input_size[0] // 4, self.input_size[1] // 4))
        if self.decode_kernel % 2 != 1:
            raise ValueError(f"decode_kernel must be odd (got {self.decode_kernel})")
        if self.decode_mode not in ("authors", "mmpose"):
            raise ValueError(f"decode_mode must be 'authors' or 'mmpose' (got {self.decode_mode!r})")

    @property
    def stride(self) -> tuple[float, float]:
        """(x, y) crop pixels per heatmap pixel."""
        return self.input_size[1] / self.heatmap_size[1], self.input_size[0] / self.heatmap_size[0]

    # ----------------------------------------------------------------------------------- encode
    def encode(self, keypoints, visible, kernel: int) -> tuple[np.ndarray, np.ndarray]:
        """One level's target.

        keypoints: [K, 2] crop pixels; visible: [K] (> 0 means labelled).
        Returns heatmaps [h, w, K] float32 (peak 255, zeros for unlabelled/outside joints) and
        weights [K] float32 (1 where a Gaussian was drawn).
        """
        kpts = np.asarray(keypoints, np.float32)
        vis = np.asarray(visible)
        k = kpts.shape[0]
        h, w = self.heatmap_size
        sx, sy = self.stride
        maps = np.zeros((h, w, k), np.float32)
        weights = np.zeros((k,), np.float32)
        with np.errstate(invalid="ignore"):
            xs = np.floor(kpts[:, 0] / sx)
            ys = np.floor(kpts[:, 1] / sy)
        ok = (vis > 0) & np.isfinite(xs) & np.isfinite(ys) & (xs >= 0) & (xs < w) & (ys >= 0) & (ys < h)
        if not ok.any():
            return maps, weights
        j = np.flatnonzero(ok)
        xi, yi = xs[j].astype(np.int64), ys[j].astype(np.int64)
        maps[yi, xi, j] = 1.0
        # One call blurs every channel independently (same result as a blur per joint, ~10x faster).
        maps = cv2.GaussianBlur(maps, (kernel, kernel), 0)
        if maps.ndim == 2:  # OpenCV drops a trailing channel axis of size 1
            maps = maps[:, :, None]
        peaks = maps[yi, xi, j]
        scale = np.zeros((k,), np.float32)
        scale[j] = PEAK / peaks
        weights[j] = 1.0
        return (maps * scale).astype(np.float32), weights

    def encode_levels(self, keypoints, visible, kernels: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
        """Targets for several heads: [L, h, w, K] and weights [K] (the same for every level)."""
        maps, weights = [], None
        for kernel in kernels:
            m, weights = self.encode(keypoints, visible, kernel)
            maps.append(m)
        return np.stack(maps), weights

    # ----------------------------------------------------------------------------------- decode
    def decode(self, heatmaps) -> tuple[np.ndarray, np.ndarray]:
        """heatmaps [N, h, w, K] (or [h, w, K]) -> keypoints [N, K, 2] crop pixels, scores [N, K]."""
        hm = np.asarray(heatmaps, np.float32)
        single = hm.ndim == 3
        if single:
            hm = hm[None]
        n, h, w, k = hm.shape
        kpts = np.zeros((n, k, 2), np.float32)
        scores = np.zeros((n, k), np.float32)
        decode_one = self._decode_authors if self.decode_mode == "authors" else self._decode_mmpose
        for i in range(n):
            for j in range(k):
                kpts[i, j], scores[i, j] = decode_one(hm[i, :, :, j])
        if single:
            return kpts[0], scores[0]
        return kpts, scores

    def _decode_authors(self, raw: np.ndarray):
        h, w = raw.shape
        border = 10
        dr = np.zeros((h + 2 * border, w + 2 * border), np.float32)
        dr[border:-border, border:-border] = raw
        dr = cv2.GaussianBlur(dr, (self.decode_kernel, self.decode_kernel), 0)
        y, x = np.unravel_index(int(dr.argmax()), dr.shape)
        dr[y, x] = 0
        py, px = np.unravel_index(int(dr.argmax()), dr.shape)
        dx, dy = float(px - x), float(py - y)
        fx, fy = float(x - border), float(y - border)
        ln = (dx * dx + dy * dy) ** 0.5
        if ln > 1e-3:
            fx += 0.25 * dx / ln
            fy += 0.25 * dy / ln
        fx = min(max(fx, 0.0), w - 1.0)
        fy = min(max(fy, 0.0), h - 1.0)
        score = raw[int(round(fy)), int(round(fx))] / PEAK + 0.5
        sx, sy = self.stride
        return (fx * sx + sx / 2, fy * sy + sy / 2), score

    def _decode_mmpose(self, raw: np.ndarray):
        h, w = raw.shape
        kernel = self.decode_kernel
        border = (kernel - 1) // 2
        dr = np.zeros((h + 2 * border, w + 2 * border), np.float32)
        dr[border:-border, border:-border] = raw
        blurred = cv2.GaussianBlur(dr, (kernel, kernel), 0)[border:-border, border:-border]
        peak = blurred.max()
        if peak != 0:
            blurred = blurred * (raw.max() / peak)
        y, x = np.unravel_index(int(blurred.argmax()), blurred.shape)
        val = blurred[y, x]
        fx, fy = float(x), float(y)
        if val <= 0:
            fx = fy = -1.0
        elif 1 < x < w - 1 and 1 < y < h - 1:
            fx += np.sign(blurred[y, x + 1] - blurred[y, x - 1]) * 0.25 + 0.5
            fy += np.sign(blurred[y + 1, x] - blurred[y - 1, x]) * 0.25 + 0.5
        sx, sy = self.stride
        return (fx * sx, fy * sy), val / PEAK + 0.5
