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

``decode`` is vectorised over all maps and gives the per-map reference loop's results
(``decode_reference``) bit for bit: it blurs, with OpenCV, only the rows that can hold the maxima,
each laid out as the reference lays it out (see ``_decode_fast``).
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
        """heatmaps [N, h, w, K] (or [h, w, K]) float32 -> keypoints [N, K, 2] crop pixels, scores [N, K].

        Vectorised over all N*K maps and bit-identical to :meth:`decode_reference` (the per-map
        loop that mirrors the references' code): the blur is OpenCV's on the references' own row
        layout, computed only on the rows that can hold the maxima (see :func:`_decode_fast`).
        """
        hm = np.asarray(heatmaps, np.float32)
        single = hm.ndim == 3
        if single:
            hm = hm[None]
        if hm.ndim != 4:
            raise ValueError(f"heatmaps must be [N, h, w, K] or [h, w, K] (got shape {hm.shape})")
        kpts, scores = _decode_fast(hm, self)
        if single:
            return kpts[0], scores[0]
        return kpts, scores

    def decode_reference(self, heatmaps) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`decode` as a loop over maps, one OpenCV blur per map exactly as the references do
        (the authors' ``exps/*/test.py`` post-processing; mmpose's ``MegviiHeatmap.decode``). Slow;
        the fast path falls back to it for maps it does not handle and the tests compare against it."""
        hm = np.asarray(heatmaps, np.float32)
        single = hm.ndim == 3
        if single:
            hm = hm[None]
        n, h, w, k = hm.shape
        kpts = np.zeros((n, k, 2), np.float32)
        scores = np.zeros((n, k), np.float32)
        for i in range(n):
            for j in range(k):
                kpts[i, j], scores[i, j] = self._decode_one(hm[i, :, :, j])
        if single:
            return kpts[0], scores[0]
        return kpts, scores

    def _decode_one(self, raw: np.ndarray):
        return self._decode_authors(raw) if self.decode_mode == "authors" else self._decode_mmpose(raw)

    def _decode_authors(self, raw: np.ndarray):
        h, w = raw.shape
        border = AUTHORS_DECODE_BORDER
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


# --------------------------------------------------------------------------------- fast decode
#: The authors' decode pads each map with this many zero pixels before blurring.
AUTHORS_DECODE_BORDER = 10
#: Boxes per chunk of the fast decode (bounds its scratch memory to some tens of MB).
_DECODE_CHUNK_MAPS = 4096
#: Rows blurred first around each map's likely peak; most maps need no more.
_FIRST_BAND = 5
#: Row-interval lengths of the maps the first band does not settle (one OpenCV call per length).
_DECODE_BUCKETS = (8, 12, 16, 24, 32)
#: Safety margin of the row bound, relative to the map's largest |value| (OpenCV's float32 blur
#: rounds within ~1e-6 of it).
_BOUND_MARGIN = 1e-4


def _decode_fast(hm: np.ndarray, codec: MegviiHeatmapCodec) -> tuple[np.ndarray, np.ndarray]:
    """Vectorised :meth:`MegviiHeatmapCodec.decode_reference`, bit for bit.

    hm: [N, h, w, K] float32. The reference blurs each map in a "frame" (the map zero-padded: the
    authors by 10 px, mmpose by (kernel-1)/2 px) with one ``cv2.GaussianBlur`` call. OpenCV's value
    at a pixel depends only on the frame rows around it and on where the pixel sits in its row, so
    rows of many frames, each laid out exactly as in the reference's frame and with the ``r`` rows
    above and below that feed them, are blurred in one call and give the reference's values bit for
    bit. Only rows that can hold the maximum (for the authors also the second maximum) are blurred:
    row ``y`` of the blurred map is at most ``U[y] = sum_d g[d] * max(0, max_x raw[y + d])``
    (``g``: the 1-D kernel, summing to 1), so once a few exact rows give a value ``T``, rows with
    ``U + margin < T`` cannot hold it. Maps with non-finite values, and the authors' decode with
    kernels > 11 (whose blur reaches the frame's edge), use the reference loop.
    """
    n, h, w, k = hm.shape
    kpts = np.zeros((n, k, 2), np.float32)
    scores = np.zeros((n, k), np.float32)
    if n * k == 0:
        return kpts, scores
    kernel = codec.decode_kernel
    r = kernel // 2
    authors = codec.decode_mode == "authors"
    if authors and 2 * r > AUTHORS_DECODE_BORDER:
        return codec.decode_reference(hm)
    g = cv2.getGaussianKernel(kernel, 0).astype(np.float64).ravel()
    flat_k = kpts.reshape(n * k, 2)
    flat_s = scores.reshape(n * k)
    per_chunk = max(1, _DECODE_CHUNK_MAPS // k)
    for i0 in range(0, n, per_chunk):
        sub = hm[i0:i0 + per_chunk]
        job = _Frames(sub, kernel, authors, g)
        out = slice(i0 * k, (i0 + len(sub)) * k)
        job.decode(flat_k[out], flat_s[out], codec)
    return kpts, scores


def _row_stats(sub: np.ndarray):
    """Each map's row maxima and each box's minimum. sub [B, h, w, K] -> ([B*K, h], [B]) float32.

    OpenCV reduces a K-channel image in one pass (numpy's reduction over a middle axis is ~4x
    slower). numpy's min propagates NaN, so a NaN anywhere in a box shows in its minimum.
    """
    b, h, w, k = sub.shape
    try:
        row_max = cv2.reduce(sub.reshape(b * h, w, k), 1, cv2.REDUCE_MAX).reshape(b, h, k)
    except cv2.error:  # more channels than OpenCV allows
        row_max = sub.max(axis=2)
    box_min = sub.reshape(b, -1).min(axis=1)
    return row_max.transpose(0, 2, 1).reshape(b * k, h), box_min


class _Frames:
    """The exact blurred rows of one chunk of maps (see :func:`_decode_fast`).

    Map ``m`` is box ``m // K``, keypoint ``m % K``. Rows are in map coordinates: data rows are
    ``0..h-1``; the active rows (where the blur can be nonzero and the reference looks) are
    ``-r..h+r-1`` for the authors and the data rows for mmpose. The columns of blurred rows are the
    active columns likewise: authors ``-r..w+r-1``, mmpose ``0..w-1``.
    """

    def __init__(self, sub: np.ndarray, kernel: int, authors: bool, g: np.ndarray):
        b, h, w, k = sub.shape
        r = kernel // 2
        self.sub, self.kernel, self.r, self.authors = sub, kernel, r, authors
        self.h, self.w, self.k = h, w, k
        self.pad = AUTHORS_DECODE_BORDER if authors else r  # the reference's frame padding
        self.lo, self.hi = (-r, h + r) if authors else (0, h)  # active rows
        self.col0 = self.pad - r if authors else r  # first active column in the frame
        self.ncols = w + 2 * r if authors else w
        self.channel_first = sub.transpose(0, 3, 1, 2)  # a view: [B, K, h, w]
        row_max, box_min = _row_stats(sub)
        self.finite = np.isfinite(row_max).all(axis=1) & np.repeat(np.isfinite(box_min), k)
        # Row bound over the active rows (float64): the 1-D kernel over max(0, row max), zero-extended.
        nrows = self.hi - self.lo
        ext = np.zeros((b * k, nrows + 2 * r), np.float64)
        ext[:, r - self.lo:r - self.lo + h] = np.maximum(row_max, 0.0)
        bound = np.zeros((b * k, nrows), np.float64)
        for d in range(kernel):
            bound += g[d] * ext[:, d:d + nrows]
        # The margin covers OpenCV's rounding, which is relative to the largest |value| (of the box).
        with np.errstate(invalid="ignore"):
            scale = np.maximum(np.abs(row_max).max(axis=1), np.repeat(np.abs(box_min), k)).astype(np.float64)
        self.bound = bound + (_BOUND_MARGIN * scale + 1e-30)[:, None]
        self.raw_max = row_max.max(axis=1)  # [M] float32, each map's max

    # ---------------------------------------------------------------------------------- rows
    def rows(self, maps: np.ndarray, starts: np.ndarray, length: int) -> np.ndarray:
        """Blurred rows ``starts .. starts+length-1`` of ``maps``: [len(maps), length, ncols] float32."""
        r, h, pad = self.r, self.h, self.pad
        span = length + 2 * r  # the output rows and the r rows above and below that feed them
        src = (starts[:, None] - r + np.arange(span)[None]).ravel()  # the map row at each frame row
        m = np.repeat(maps, span)
        # Gathering only these rows from the [N, h, w, K] maps costs less than transposing them all.
        stack = self.channel_first[m // self.k, m % self.k, np.clip(src, 0, h - 1)]
        stack[(src < 0) | (src >= h)] = 0  # the frame's zero rows
        frames = cv2.copyMakeBorder(stack, 0, 0, pad, pad, cv2.BORDER_CONSTANT, value=0)
        out = cv2.GaussianBlur(frames, (self.kernel, self.kernel), 0)
        return out.reshape(len(maps), span, -1)[:, r:r + length, self.col0:self.col0 + self.ncols]

    def band(self, maps: np.ndarray, length: int):
        """Blurred rows around each map's highest bound: (values [G, length, ncols], starts [G])."""
        length = min(length, self.hi - self.lo)
        top = self.bound[maps].argmax(axis=1) + self.lo
        starts = np.clip(top - length // 2, self.lo, self.hi - length)
        return self.rows(maps, starts, length), starts

    def intervals(self, maps: np.ndarray, threshold: np.ndarray, extra: int = 0):
        """First and last active row of each map whose bound reaches ``threshold``, widened by ``extra``."""
        cand = self.bound[maps] >= threshold[:, None]
        any_ = cand.any(axis=1)  # always true for a threshold the blur reaches; else all rows
        first = np.where(any_, cand.argmax(axis=1) - extra, 0) + self.lo
        last = np.where(any_, cand.shape[1] - 1 - cand[:, ::-1].argmax(axis=1) + extra, cand.shape[1] - 1) + self.lo
        return np.maximum(first, self.lo), np.minimum(last, self.hi - 1)

    def settle(self, maps, threshold, extra, band_vals, band_starts, finish):
        """Call ``finish(positions, values, starts)`` once per group so that every map's rows that can
        reach ``threshold`` (widened by ``extra``) are in ``values``: the first band where it covers them,
        else a longer interval blurred now."""
        first, last = self.intervals(maps, threshold, extra)
        length = band_vals.shape[1]
        inside = (first >= band_starts) & (last < band_starts + length)
        pick = np.flatnonzero(inside)
        if pick.size:
            finish(pick, band_vals[pick], band_starts[pick])
        rest = np.flatnonzero(~inside)
        total = self.hi - self.lo
        for size in [b for b in _DECODE_BUCKETS if length < b < total] + [total]:
            if not rest.size:
                break
            need = last[rest] - first[rest] + 1
            pick, rest = rest[need <= size], rest[need > size]
            if pick.size:
                starts = np.clip(first[pick], self.lo, self.hi - size)
                finish(pick, self.rows(maps[pick], starts, size), starts)

    # ---------------------------------------------------------------------------------- decode
    def decode(self, out_k: np.ndarray, out_s: np.ndarray, codec) -> None:
        """Write keypoints [M, 2] (crop px) and scores [M] of every map of the chunk."""
        for m in np.flatnonzero(~self.finite):  # NaN/inf: the reference's own semantics
            out_k[m], out_s[m] = codec._decode_one(self.channel_first[m // self.k, m % self.k])
        maps = np.flatnonzero(self.finite)
        if maps.size:
            (self._authors if self.authors else self._mmpose)(maps, out_k, out_s, codec)

    def _authors(self, maps, out_k, out_s, codec):
        """``MegviiHeatmapCodec._decode_authors`` for ``maps``."""
        h, w, r = self.h, self.w, self.r
        border = AUTHORS_DECODE_BORDER
        # Peak and second peak (map coordinates). Where no blurred value is > 0, the reference's argmax
        # is the padded frame's first (zero) pixel, (-border, -border); a map with no raw value > 0 has
        # no blurred value > 0 (a sum of products of positive weights and values <= 0).
        y1 = np.full(len(self.finite), -border, np.int64)
        x1, y2, x2 = y1.copy(), y1.copy(), y1.copy()
        pos = maps[self.raw_max[maps] > 0]
        if pos.size:
            vals, starts = self.band(pos, _FIRST_BAND)
            _, second = _top2(vals.reshape(len(pos), -1))

            def finish(pick, vals, starts):
                sel = pos[pick]
                flat = vals.reshape(len(sel), -1)  # a copy: the band may be reused
                at = np.arange(len(sel))
                i1 = flat.argmax(axis=1)
                v1 = flat[at, i1]
                flat[at, i1] = 0  # the reference zeroes the peak before looking for the second maximum
                i2 = flat.argmax(axis=1)
                v2 = flat[at, i2]
                has1 = v1 > 0
                has2 = has1 & (v2 > 0)
                y1[sel] = np.where(has1, starts + i1 // self.ncols, -border)
                x1[sel] = np.where(has1, i1 % self.ncols - r, -border)
                y2[sel] = np.where(has2, starts + i2 // self.ncols, -border)
                x2[sel] = np.where(has2, i2 % self.ncols - r, -border)

            # Rows whose bound is below max(second, 0) hold neither the maximum nor the second one.
            self.settle(pos, np.maximum(second.astype(np.float64), 0.0), 0, vals, starts, finish)
        y1, x1, y2, x2 = y1[maps], x1[maps], y2[maps], x2[maps]
        dx = (x2 - x1).astype(np.float64)
        dy = (y2 - y1).astype(np.float64)
        fx = x1.astype(np.float64)
        fy = y1.astype(np.float64)
        ln = np.power(dx * dx + dy * dy, 0.5)  # the reference's ``** 0.5`` (C pow, as np.power)
        step = ln > 1e-3
        safe = np.where(step, ln, 1.0)
        fx = np.where(step, fx + 0.25 * dx / safe, fx)
        fy = np.where(step, fy + 0.25 * dy / safe, fy)
        fx = np.minimum(np.maximum(fx, 0.0), w - 1.0)
        fy = np.minimum(np.maximum(fy, 0.0), h - 1.0)
        raw = self.sub[maps // self.k, np.round(fy).astype(np.int64), np.round(fx).astype(np.int64), maps % self.k]
        sx, sy = codec.stride
        out_s[maps] = raw / PEAK + 0.5  # float32 arithmetic, as the reference's numpy scalars
        out_k[maps, 0] = fx * sx + sx / 2
        out_k[maps, 1] = fy * sy + sy / 2

    def _mmpose(self, maps, out_k, out_s, codec):
        """``MegviiHeatmapCodec._decode_mmpose`` for ``maps``."""
        h, w = self.h, self.w
        sx, sy = codec.stride
        fallback = []
        vals, starts = self.band(maps, _FIRST_BAND + 2)

        def finish(pick, vals, starts):
            sel = maps[pick]
            flat = vals.reshape(len(sel), -1)
            peak = flat.max(axis=1)
            with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
                ratio = self.raw_max[sel] / peak  # float32, as the reference
            # Renormalising by a positive ratio keeps the order (up to ties, which argmax then breaks as
            # the reference does); the other cases (peak 0, a negative ratio) take the reference loop.
            good = (peak != 0) & np.isfinite(ratio) & (ratio > 0)
            fallback.extend(sel[~good].tolist())
            if not good.all():
                sel, vals, starts, ratio = sel[good], vals[good], starts[good], ratio[good]
            if not sel.size:
                return
            scaled = vals * ratio[:, None, None]
            flat = scaled.reshape(len(sel), -1)
            i = flat.argmax(axis=1)
            val = flat[np.arange(len(sel)), i]
            row, x = i // w, i % w  # row within the interval
            y = starts + row
            fx = x.astype(np.float64)
            fy = y.astype(np.float64)
            ii = np.flatnonzero((val > 0) & (x > 1) & (x < w - 1) & (y > 1) & (y < h - 1))
            if ii.size:
                ri, xi = row[ii], x[ii]
                fx[ii] += np.sign(scaled[ii, ri, xi + 1] - scaled[ii, ri, xi - 1]) * 0.25 + 0.5
                fy[ii] += np.sign(scaled[ii, ri + 1, xi] - scaled[ii, ri - 1, xi]) * 0.25 + 0.5
            fx = np.where(val > 0, fx, -1.0)
            fy = np.where(val > 0, fy, -1.0)
            out_s[sel] = val / PEAK + 0.5
            out_k[sel, 0] = fx * sx
            out_k[sel, 1] = fy * sy

        # Rows whose bound is below the band's maximum cannot hold the maximum; one more row on each
        # side gives the peak's neighbours.
        low = vals.reshape(len(maps), -1).max(axis=1).astype(np.float64)
        self.settle(maps, low, 1, vals, starts, finish)
        for m in fallback:
            out_k[m], out_s[m] = codec._decode_one(self.channel_first[m // self.k, m % self.k])


def _top2(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Largest and second-largest value (a tie counts twice) of each row of [G, P]."""
    if values.shape[1] < 2:
        return values[:, 0], np.full(values.shape[0], -np.inf, values.dtype)
    part = np.partition(values, values.shape[1] - 2, axis=1)
    return part[:, -1], part[:, -2]
