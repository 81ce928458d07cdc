"""Pixel normalisation: uint8 crops -> network input. The one place where it happens.

Loader convention: images are read with OpenCV, so crops arrive **BGR** uint8 unless told otherwise.
``preprocess`` reorders channels to ``preprocessing.color_order`` and applies
``(pixel - mean) / std`` (mean/std in 0..255 units, listed in that order). Training, inference,
evaluation and export all call it; exported models carry ``preprocessing`` in their config.
"""
from __future__ import annotations

from typing import Literal

import numpy as np

from rsn_tf.model.config import Preprocessing


def preprocess(crops, preprocessing: Preprocessing, input_order: Literal["bgr", "rgb"] = "bgr") -> np.ndarray:
    """crops: [..., H, W, 3] uint8 (or float 0..255) in ``input_order`` -> float32 normalised input.

    Returns (crops[..., order] - mean) / std, channels in ``preprocessing.color_order``.
    """
    x = np.asarray(crops)
    if x.shape[-1] != 3:
        raise ValueError(f"preprocess: expected [..., H, W, 3] crops, got shape {x.shape}")
    if input_order not in ("bgr", "rgb"):
        raise ValueError(f"preprocess: input_order must be 'bgr' or 'rgb' (got {input_order!r})")
    if input_order != preprocessing.color_order:
        x = x[..., ::-1]
    mean = np.asarray(preprocessing.mean, np.float32)
    inv_std = 1.0 / np.asarray(preprocessing.std, np.float32)
    return ((x.astype(np.float32) - mean) * inv_std).astype(np.float32)


def unpreprocess(inputs, preprocessing: Preprocessing, output_order: Literal["bgr", "rgb"] = "bgr") -> np.ndarray:
    """Inverse of :func:`preprocess`: network input -> uint8 crops in ``output_order`` (for drawing)."""
    x = np.asarray(inputs, np.float32) * np.asarray(preprocessing.std, np.float32) + np.asarray(preprocessing.mean,
                                                                                                   np.float32)
    if output_order != preprocessing.color_order:
        x = x[..., ::-1]
    return np.clip(np.rint(x), 0, 255).astype(np.uint8)


def preprocess_tf(crops, preprocessing: Preprocessing, input_order: Literal["bgr", "rgb"] = "bgr"):
    """:func:`preprocess` as TensorFlow ops (same constants, same result), for the tf.data pipeline.

    crops: [..., H, W, 3] uint8 tensor -> float32. Running it in the graph on whole batches keeps the
    per-sample Python work (which holds the GIL) small.
    """
    import tensorflow as tf

    if input_order not in ("bgr", "rgb"):
        raise ValueError(f"preprocess: input_order must be 'bgr' or 'rgb' (got {input_order!r})")
    x = tf.cast(crops, tf.float32)
    if input_order != preprocessing.color_order:
        x = tf.reverse(x, axis=[-1])
    mean = tf.constant(preprocessing.mean, tf.float32)
    inv_std = tf.constant(1.0 / np.asarray(preprocessing.std, np.float32), tf.float32)
    return (x - mean) * inv_std
