"""Oracle "models" for evaluation tests: heatmaps encoded from ground truth, fed through the real
PoseEstimator code path (crop geometry, flip test, flip back, decode, inverse affine).

The trick: the image given to the estimator is a *coordinate image* (channel 0 = x, channel 1 = y of
each pixel, float32) and the model config's preprocessing is the identity (BGR, mean 0, std 1).
The affine crop of a linear function is exact, so every crop pixel holds its own image coordinates;
the oracle fits the crop->image affine from them, finds the ground-truth person whose box centre
maps to the crop centre, and encodes that person's keypoints into heatmaps with the real codec
(a mirrored crop shows up as a negative determinant: the channels are swapped like a network's).
"""
from __future__ import annotations

import numpy as np

from rsn_tf.codec import MegviiHeatmapCodec
from rsn_tf.model.config import ModelConfig, Preprocessing

IDENTITY = Preprocessing(color_order="bgr", mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0))


def oracle_config(num_keypoints: int, input_size=(256, 192)) -> ModelConfig:
    return ModelConfig(num_keypoints=num_keypoints, input_size=tuple(input_size), preprocessing=IDENTITY)


def coordinate_image(height: int, width: int, tag: int) -> np.ndarray:
    """[H, W, 3] float32: x, y, and a constant ``tag`` >= 1 naming the image (outside a crop: 0)."""
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    return np.stack([xs, ys, np.full_like(xs, float(tag))], axis=-1)


class OracleModel:
    """callable crops [N, H, W, 3] (coordinate crops) -> heatmaps [N, H/4, W/4, K] of ``persons``.

    persons: {image tag: [(box centre [2], keypoints [K, 2] image px, visible [K]), ...]}; flip_perm: the layout's flip permutation; kernel: encode kernel.
    """

    def __init__(self, config: ModelConfig, flip_perm, kernel: int = 5):
        self.codec = MegviiHeatmapCodec(config.input_size, config.heatmap_size)
        self.flip_perm = np.asarray(flip_perm)
        self.kernel = kernel
        self.persons = {}
        self.calls = []

    @staticmethod
    def rank(person, crop_centre) -> float:
        """Which person a crop shows: the lowest rank (default: box centre nearest the crop centre)."""
        return float(np.linalg.norm(person[0] - crop_centre))

    def __call__(self, crops):
        crops = np.asarray(crops, np.float32)
        self.calls.append(crops.shape[0])
        n, h, w, _ = crops.shape
        out = []
        vv, uu = np.mgrid[0:h, 0:w]
        for c in crops:
            X, Y = c[..., 0], c[..., 1]
            # Interior pixels only (the border of a crop that leaves the image is blended with zeros).
            tag = np.round(np.median(c[h // 2 - 2:h // 2 + 3, w // 2 - 2:w // 2 + 3, 2]))
            ok = np.abs(c[..., 2] - tag) < 1e-3
            ok[:2], ok[-2:], ok[:, :2], ok[:, -2:] = False, False, False, False
            ok &= np.roll(ok, 2, 0) & np.roll(ok, -2, 0) & np.roll(ok, 2, 1) & np.roll(ok, -2, 1)
            A = np.stack([uu[ok], vv[ok], np.ones(ok.sum())], axis=1).astype(np.float64)
            m, *_ = np.linalg.lstsq(A, np.stack([X[ok], Y[ok]], 1).astype(np.float64), rcond=None)
            crop_to_img = m.T  # [2, 3]
            lin = crop_to_img[:, :2]
            img_to_crop_lin = np.linalg.inv(lin)
            centre_img = crop_to_img @ np.array([w / 2, h / 2, 1.0])
            best = min(self.persons[int(tag)], key=lambda p: self.rank(p, centre_img))
            _, kpts, vis = best
            crop_pts = (kpts - crop_to_img[:, 2]) @ img_to_crop_lin.T
            if np.linalg.det(lin) < 0:  # mirrored crop: a network would answer with swapped channels
                crop_pts, vis = crop_pts[self.flip_perm], np.asarray(vis)[self.flip_perm]
            maps, _ = self.codec.encode(crop_pts, vis, self.kernel)
            out.append(maps)
        return np.stack(out) if out else np.zeros((0, h // 4, w // 4, len(self.flip_perm)), np.float32)
