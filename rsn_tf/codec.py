"""The heatmap codec: keypoints <-> heatmaps, "Megvii" style (CPN/MSPN/RSN).

One object, used by training targets, inference, evaluation and the benchmark alike.

Encoding puts a 1 at the keypoint's heatmap cell, blurs it with ``cv2.GaussianBlur(k x k, sigma=0)``
(OpenCV's sigma ``0.3*((k-1)/2-1)+0.8``, border ``BORDER_REFLECT_101``) and rescales it to 255.
Coarse-to-fine supervision uses one kernel per level: 15/11/9/7 for non-final stages, 11/9/7/5 for
the final stage. ``encode_mode`` picks whose rules, each reproduced exactly:

``"mmpose"`` (``MegviiHeatmap.encode``)
  weight = visibility (a copy); a keypoint with visibility < 0.5 gets no map. The cell is
  ``(keypoint / stride).astype(int64)`` in float32: truncation toward zero, so x in (-4, 0) lands in
  column 0 and keeps its weight; a cell outside the grid sets the weight to 0. The map is divided by
  its value **at the cell** (x 255): next to the border the reflecting blur puts a higher value on
  the edge pixel, so the map can exceed 255 there (e.g. 272.5 for a cell 2 px from the edge, k=11).

``"authors"`` (the RSN release: ``JointsDataset.__getitem__`` + ``generate_heatmap``)
  a labelled keypoint (v > 0) outside ``[0, W-1] x [0, H-1]`` crop pixels becomes invalid (v = 0),
  so keypoints in (W-1, W) or (-4, 0) are dropped; a keypoint with v >= 1 gets a map at cell
  ``int(y * h / H), int(x * w / W)`` (float64), divided by the map's **maximum** (x 255: the peak is
  exactly 255, on the edge pixel where the blur reflects). weight = 1 where v > 0 after the bounds
  rule (the authors' OHKM mask ``valid > 0``).

Decoding (authors' recipe, ``decode_mode="authors"``): blur the (flip-averaged) map (10-px zero
border, k x k, k=5 for COCO, 9 for MPII), argmax, step 0.25 px toward the second maximum, clip, map
to crop pixels ``stride*x + stride/2``; score = raw map at the rounded peak / 255 + 0.5.
``decode_mode="mmpose"`` is mmpose's ``MegviiHeatmap.decode``: blur renormalised to the original max,
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
      encode_mode: "authors" or "mmpose": whose target rules :meth:`encode` follows (module docstring).
    """

    input_size: tuple[int, int] = (256, 192)
    heatmap_size: tuple[int, int] | None = None
    decode_kernel: int = 5
    decode_mode: Literal["authors", "mmpose"] = "authors"
    encode_mode: Literal["authors", "mmpose"] = "authors"

    def __post_init__(self):
        if self.heatmap_size is None:
            object.__setattr__(self, "heatmap_size", (self.input_size[0] // 4, self.input_size[1] // 4))
        if self.decode_kernel % 2 != 1:
            raise ValueError(f"decode_kernel must be odd (got {self.decode_kernel})")
        if self.decode_mode not in ("authors", "mmpose"):
            raise ValueError(f"decode_mode must be 'authors' or 'mmpose' (got {self.decode_mode!r})")
        if self.encode_mode not in ("authors", "mmpose"):
            raise ValueError(f"encode_mode must be 'authors' or 'mmpose' (got {self.encode_mode!r})")

    @property
    def stride(self) -> tuple[float, float]:
        """(x, y) crop pixels per heatmap pixel."""
        return self.input_size[1] / self.heatmap_size[1], self.input_size[0] / self.heatmap_size[0]

    # ----------------------------------------------------------------------------------- encode
    def encode(self, keypoints, visible, kernel: int) -> tuple[np.ndarray, np.ndarray]:
        """One level's target, by ``encode_mode``'s rules (module docstring).

        keypoints: [K, 2] crop pixels (x, y); visible: [K] (mmpose: 0..1 visibility; authors: COCO
        v 0/1/2; > 0 means labelled in both). Returns heatmaps [h, w, K] float32 (0..255, up to ~1.15x
        255 near the border in mmpose mode; all-zero channels where no Gaussian was drawn) and
        weights [K] float32.
        """
        maps, weights = self.encode_levels(keypoints, visible, (kernel,))
        return maps[0], weights

    def _cells(self, keypoints, visible):
        kpts = np.asarray(keypoints, np.float32).reshape(-1, 2)
        vis = np.asarray(visible, np.float32).reshape(-1)
        if kpts.shape[0] != vis.shape[0]:
            raise ValueError(f"encode: {kpts.shape[0]} keypoints but {vis.shape[0]} visibility values")
        if self.encode_mode == "mmpose":
            return self._cells_mmpose(kpts, vis)
        return self._cells_authors(kpts, vis)

    def _cells_mmpose(self, kpts, vis):
        """(cells [K, 2] int64 (x, y), draw [K] bool, weights [K]) by ``MegviiHeatmap.encode``'s rules."""
        h, w = self.heatmap_size
        stride = np.array([self.input_size[1] / w, self.input_size[0] / h]).astype(np.float32)
        with np.errstate(invalid="ignore"):
            q = kpts / stride
        finite = np.all(np.isfinite(q), axis=1)
        cells = np.where(finite[:, None], q, -1.0).astype(np.int64)  # astype truncates toward zero
        labelled = vis >= 0.5
        inside = finite & (cells[:, 0] >= 0) & (cells[:, 0] < w) & (cells[:, 1] >= 0) & (cells[:, 1] < h)
        weights = np.where(labelled & ~inside, 0.0, vis).astype(np.float32)
        return cells, labelled & inside, weights

    def _cells_authors(self, kpts, vis):
        """(cells, draw, weights) by the authors' bounds rule and ``generate_heatmap``."""
        h, w = self.heatmap_size
        in_h, in_w = self.input_size
        p = kpts.astype(np.float64)
        finite = np.all(np.isfinite(p), axis=1)
        with np.errstate(invalid="ignore"):
            inside = finite & (p[:, 0] >= 0) & (p[:, 0] <= in_w - 1) & (p[:, 1] >= 0) & (p[:, 1] <= in_h - 1)
        valid = np.where((vis > 0) & ~inside, 0.0, vis)
        draw = valid >= 1
        safe = np.where(finite[:, None], p, 0.0)
        cells = np.stack([safe[:, 0] * w / in_w, safe[:, 1] * h / in_h], axis=1).astype(np.int64)
        return cells, draw, (valid > 0).astype(np.float32)

    def encode_levels(self, keypoints, visible, kernels: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
        """Targets for several heads: [L, h, w, K] float32 and weights [K] (:meth:`encode` per kernel).

        The weights are the same for every level in both modes (the bounds rules do not depend on
        the kernel), so the cells are found once. Each level blurs all K channels in one
        ``cv2.GaussianBlur`` call (bit-identical to one call per keypoint) and is normalised per channel
        in float32 with the reference's operation order.
        """
        cells, draw, weights = self._cells(keypoints, visible)
        h, w = self.heatmap_size
        k = cells.shape[0]
        out = np.zeros((len(kernels), h, w, k), np.float32)
        j = np.flatnonzero(draw)
        if not len(j):
            return out, weights
        xi, yi = cells[j, 0], cells[j, 1]
        onehot = np.zeros((h, w, k), np.float32)
        onehot[yi, xi, j] = 1.0
        peak = np.float32(PEAK)
        for level, kernel in enumerate(kernels):
            maps = cv2.GaussianBlur(onehot, (kernel, kernel), 0)
            if maps.ndim == 2:  # OpenCV drops a trailing channel axis of size 1
                maps = maps[:, :, None]
            divisor = np.ones((k,), np.float32)  # undrawn channels are all zero; 0 / 1 stays 0
            if self.encode_mode == "mmpose":
                divisor[j] = maps[yi, xi, j]  # map / map[cell] * 255
                np.multiply(maps / divisor, peak, out=out[level])
            else:
                divisor[j] = maps.max(axis=(0, 1))[j] / peak  # map /= max(map) / 255
                np.divide(maps, divisor, out=out[level])
        return out, weights

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
