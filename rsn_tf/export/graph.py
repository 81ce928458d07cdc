"""The deploy graph every export starts from, plus in-graph preprocessing and keypoint decoding.

Data flow of an exported model::

    uint8 crop [N,H,W,3] BGR --preprocess_tf--> normalised crop [N,H,W,3] float32
        --deploy_model--> final heatmaps [N,H/4,W/4,K] --decode_heatmaps--> keypoints [N,K,2], scores [N,K]

- :func:`deploy_model` is the trained network rewritten for inference: only the final (finest) head, and
  the global net's 1x1 ``up_conv``+BN moved before the align-corners upsample
  (``ModelConfig.upconv_before_resize``). All are exact: same weights, same outputs up to float
  rounding (a per-pixel affine map commutes with an interpolation whose weights sum to 1), and
  RSN-18 drops from 2.14 to 1.94 GMACs. The stem's 7x7 stride-2 conv on 3 channels becomes a 2x2
  space-to-depth and a 4x4 stride-1 conv on 12 channels (``ModelConfig.stem_space_to_depth``): exact,
  +30% stem MACs (the 7x7 kernel is zero-extended to 8x8), but int8 XNNPACK runs it ~1.6x faster.
- :func:`rsn_tf.data.preprocess.preprocess_tf` (the project's one normalisation) runs in the served graph,
  so that a SavedModel takes raw uint8 pixels.
- :func:`decode_heatmaps` is :class:`rsn_tf.codec.MegviiHeatmapCodec`'s decode as TF ops, in either
  recipe's mode (:mod:`rsn_tf.recipes`): blur with cv2's own Gaussian kernel as a fixed depthwise conv,
  then ``"authors"`` (argmax, quarter-pixel step toward the second maximum, clip, ``stride*x + stride/2``;
  score = raw map at the rounded peak / 255 + 0.5) or ``"mmpose"`` (blur renormalised to the raw maximum,
  argmax, ``+0.25*sign(gradient)+0.5`` where the peak is interior, times stride; score = blurred maximum
  / 255 + 0.5). It picks the same pixels as the numpy codec; the only differences are float rounding of
  the blur, which can flip the argmax between two values equal to ~1e-6 (tested in
  ``tests/test_export.py``).

TFLite and ONNX exports stop at the heatmaps (crop in, heatmaps out): decoding and the inverse affine
stay in numpy (:mod:`rsn_tf.codec`, :mod:`rsn_tf.geometry`), shared by every runtime.
"""
from __future__ import annotations

import functools

import cv2
import keras
import numpy as np
import tensorflow as tf

from rsn_tf.codec import PEAK
from rsn_tf.model import RSNModel, copy_weights_by_name, inference_model
from rsn_tf.model.layers import ResizeAlignCorners


def deploy_model(model: RSNModel, stem_space_to_depth: bool = True) -> RSNModel:
    """``model`` rewritten for inference: final head only, up-conv before resize, space-to-depth stem
    (``ModelConfig.stem_space_to_depth``; ``False`` keeps the 7x7/2 conv). Same weights, exact.

    Input: normalised crop [N,H,W,3] float32. Output: final heatmaps [N,H/4,W/4,K] float32.
    """
    if not isinstance(model, RSNModel):
        raise ValueError(f"deploy_model expects an RSNModel (a model built by rsn_tf), got {type(model).__name__}")
    config = model.rsn_config.replace(upconv_before_resize=True, stem_space_to_depth=stem_space_to_depth)
    rebuilt = RSNModel(config, metadata=model.metadata, heads=model.heads, name=model.name)  # e.g. an inference_model
    copy_weights_by_name(model, rebuilt)
    return inference_model(rebuilt)  # an RSNModel: carries rsn_config and metadata


def input_hw(model: keras.Model) -> tuple[int, int]:
    """(H, W) of a Keras model's crop input [N,H,W,3]."""
    shape = tuple(model.inputs[0].shape)
    if len(shape) != 4 or shape[1] is None or shape[2] is None:
        raise ValueError(f"{model.name}: expected a fixed-size crop input [N,H,W,3], got {shape}")
    return int(shape[1]), int(shape[2])


def heatmap_fn(model: keras.Model, batch: int = 8):
    """``crops [N,H,W,3] float32 -> heatmaps [N,h,w,K]`` numpy, for a single-output crop model (the deploy
    graph, :func:`rsn_tf.model.inference_model`), in batches of ``batch``.

    One ``tf.function`` with a batch-free input signature, traced once per model. (``model.predict`` traces
    Keras' predict step once per model and again per new batch size, and TF counts the traces of every
    function with the same Python code together: a few exports in one process print its "triggered
    tf.function retracing" warning. A ``functools.partial`` of the model has no code of its own, so TF
    counts per model.)
    """
    h, w = input_hw(model)
    fn = tf.function(functools.partial(model, training=False), jit_compile=False,
                     input_signature=[tf.TensorSpec([None, h, w, 3], tf.float32)])

    def run(crops) -> np.ndarray:
        x = np.asarray(crops, np.float32)
        return np.concatenate([fn(tf.constant(x[i:i + batch])).numpy() for i in range(0, len(x), batch)])
    return run


def num_resizes(model: keras.Model) -> int:
    """Align-corners resizes that change the size (each must be one RESIZE_BILINEAR after conversion)."""
    return sum(1 for layer in model.layers if isinstance(layer, ResizeAlignCorners)
               and tuple(layer.input.shape[1:3]) != layer.size)


def _blur_kernel(kernel: int, channels: int):
    """cv2.GaussianBlur(k x k, sigma=0)'s kernel as a depthwise filter [k, k, channels, 1]."""
    if kernel < 1 or kernel % 2 != 1:
        raise ValueError(f"decode kernel must be odd and positive (got {kernel})")
    g = cv2.getGaussianKernel(kernel, 0).astype(np.float32)[:, 0]
    return tf.constant(np.tile(np.outer(g, g)[:, :, None, None], (1, 1, channels, 1)))


def decode_heatmaps(heatmaps, input_size, kernel: int = 5, mode: str = "authors"):
    """In-graph twin of ``MegviiHeatmapCodec(input_size, decode_kernel=kernel, decode_mode=mode).decode``.

    heatmaps: [N,h,w,K] float32 (raw network output, peak ~255). input_size: crop (H, W). mode: "authors"
    or "mmpose" (:mod:`rsn_tf.recipes`). Returns keypoints [N,K,2] float32 in crop pixels (x, y) and
    scores [N,K] float32 (~0.5..1.5).
    """
    hm = tf.convert_to_tensor(heatmaps, tf.float32)
    if mode == "authors":
        return _decode_authors(hm, input_size, kernel)
    if mode == "mmpose":
        return _decode_mmpose(hm, input_size, kernel)
    raise ValueError(f"decode mode must be 'authors' or 'mmpose' (got {mode!r})")


def _decode_authors(hm, input_size, kernel):
    """Blur (zero border), argmax, a quarter pixel toward the second maximum, clip, ``stride*x + stride/2``;
    score = raw map at the rounded peak / 255 + 0.5.

    The map is zero-padded by ``kernel//2 + 1`` rather than the authors' 10 pixels: beyond that the
    blurred padding is exactly 0 either way, and a zero in the border (the maximum of a map with no
    positive value) clips to the same (0, 0) in both.
    """
    h, w, k = (int(d) for d in hm.shape[1:])
    n = tf.shape(hm)[0]
    dw = _blur_kernel(kernel, k)
    pad = kernel // 2 + 1
    hp, wp = h + 2 * pad, w + 2 * pad
    x = tf.pad(hm, [[0, 0], [pad, pad], [pad, pad], [0, 0]])
    blurred = tf.nn.depthwise_conv2d(x, dw, strides=[1, 1, 1, 1], padding="SAME")
    flat = tf.reshape(tf.transpose(blurred, [0, 3, 1, 2]), [n, k, hp * wp])
    first = tf.argmax(flat, axis=-1, output_type=tf.int32)
    flat2 = flat * (1.0 - tf.one_hot(first, hp * wp, dtype=tf.float32))  # the authors zero the peak
    second = tf.argmax(flat2, axis=-1, output_type=tf.int32)
    y1 = tf.cast(first // wp, tf.float32)
    x1 = tf.cast(first % wp, tf.float32)
    dy = tf.cast(second // wp, tf.float32) - y1
    dx = tf.cast(second % wp, tf.float32) - x1
    ln = tf.sqrt(dx * dx + dy * dy)
    step = tf.where(ln > 1e-3, 0.25 / tf.maximum(ln, 1e-3), 0.0)
    fx = tf.clip_by_value(x1 - pad + step * dx, 0.0, w - 1.0)
    fy = tf.clip_by_value(y1 - pad + step * dy, 0.0, h - 1.0)
    # |fraction| <= 0.25, so rounding never meets a .5 tie (Python's and TF's rounding agree).
    idx = tf.cast(tf.round(fy), tf.int32) * w + tf.cast(tf.round(fx), tf.int32)
    raw = tf.reshape(tf.transpose(hm, [0, 3, 1, 2]), [n, k, h * w])
    scores = tf.gather(raw, idx, batch_dims=2) / PEAK + 0.5
    sx, sy = input_size[1] / w, input_size[0] / h
    keypoints = tf.stack([fx * sx + sx / 2, fy * sy + sy / 2], axis=-1)
    return keypoints, scores


def _decode_mmpose(hm, input_size, kernel):
    """mmpose's ``MegviiHeatmap.decode``: blur with a zero border of ``(kernel-1)//2``, rescaled so that its
    maximum is the raw map's maximum; argmax (a peak <= 0 gives (-1, -1)); where the peak is interior on
    both axes (``1 < x < w-1`` and ``1 < y < h-1``) add ``0.25 * sign(gradient) + 0.5`` per axis; times the
    stride; score = the blurred maximum / 255 + 0.5.
    """
    h, w, k = (int(d) for d in hm.shape[1:])
    n = tf.shape(hm)[0]
    pad = (kernel - 1) // 2
    x = tf.pad(hm, [[0, 0], [pad, pad], [pad, pad], [0, 0]])
    blurred = tf.nn.depthwise_conv2d(x, _blur_kernel(kernel, k), strides=[1, 1, 1, 1], padding="VALID")
    peak = tf.reduce_max(blurred, axis=[1, 2], keepdims=True)
    raw_max = tf.reduce_max(hm, axis=[1, 2], keepdims=True)
    blurred = blurred * tf.where(peak != 0, raw_max / tf.where(peak != 0, peak, 1.0), 1.0)
    flat = tf.reshape(tf.transpose(blurred, [0, 3, 1, 2]), [n, k, h * w])
    idx = tf.argmax(flat, axis=-1, output_type=tf.int32)
    val = tf.gather(flat, idx, batch_dims=2)
    xi, yi = idx % w, idx // w
    interior = (xi > 1) & (xi < w - 1) & (yi > 1) & (yi < h - 1)

    def at(offset):  # the blurred map at idx + offset (clamped; only read where the peak is interior)
        return tf.gather(flat, tf.clip_by_value(idx + offset, 0, h * w - 1), batch_dims=2)

    shift_x = tf.where(interior, tf.sign(at(1) - at(-1)) * 0.25 + 0.5, 0.0)
    shift_y = tf.where(interior, tf.sign(at(w) - at(-w)) * 0.25 + 0.5, 0.0)
    positive = val > 0
    fx = tf.where(positive, tf.cast(xi, tf.float32) + shift_x, -1.0)
    fy = tf.where(positive, tf.cast(yi, tf.float32) + shift_y, -1.0)
    sx, sy = input_size[1] / w, input_size[0] / h
    return tf.stack([fx * sx, fy * sy], axis=-1), val / PEAK + 0.5
