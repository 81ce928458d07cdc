"""A small in-memory dataset with the pipeline's exact structure, for tests and smoke runs.

Images are noise with a bright square at each person's keypoints so a network can learn something;
targets come from the real codec. Independent of the data pipeline's speed and files.
"""
from __future__ import annotations

import numpy as np
import tensorflow as tf

from rsn_tf.codec import MegviiHeatmapCodec, level_kernels


def fake_arrays(model_cfg, n: int, seed: int = 0):
    """numpy ``(images [n,H,W,3] float32, {"heatmaps" [n,L,h,w,K], "weights" [n,K], "visible" [n,K]})``."""
    rng = np.random.default_rng(seed)
    h, w = model_cfg.input_size
    k = model_cfg.num_keypoints
    codec = MegviiHeatmapCodec(input_size=(h, w))
    kernels = level_kernels(model_cfg.num_stages)
    images = rng.normal(0.0, 0.3, (n, h, w, 3)).astype(np.float32)
    heatmaps, weights, visible = [], [], []
    for i in range(n):
        kpts = rng.uniform([2, 2], [w - 3, h - 3], (k, 2)).astype(np.float32)
        vis = rng.choice([0, 1, 2], size=k, p=[0.15, 0.15, 0.7]).astype(np.float32)
        for j in range(k):
            if vis[j] > 0:
                x, y = int(kpts[j, 0]), int(kpts[j, 1])
                images[i, max(y - 2, 0):y + 2, max(x - 2, 0):x + 2, j % 3] += 2.0
        maps, wts = codec.encode_levels(kpts, vis, kernels)
        heatmaps.append(maps)
        weights.append(wts)
        visible.append(vis)
    targets = {"heatmaps": np.stack(heatmaps).astype(np.float32), "weights": np.stack(weights),
               "visible": np.stack(visible)}
    return images, targets


def fake_dataset(model_cfg, batch_size: int, n: int = 8, seed: int = 0, repeat: bool = True) -> tf.data.Dataset:
    """``tf.data`` of ``(images, targets)`` batches, like ``build_dataset``'s output."""
    images, targets = fake_arrays(model_cfg, n, seed)
    ds = tf.data.Dataset.from_tensor_slices((images, targets))
    if repeat:
        ds = ds.repeat()
    return ds.batch(batch_size, drop_remainder=True)
