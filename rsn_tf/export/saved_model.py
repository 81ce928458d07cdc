"""TF SavedModel export: a TF-Serving-ready versioned directory (``DIR/<version>/saved_model.pb``).

Signatures (N is dynamic; H, W, K fixed by the model, e.g. 256, 192, 17):

- ``serving_default``: ``images`` uint8 [N,H,W,3] crops as they arrive (0..255; BGR by default, the
  project's OpenCV convention, or RGB if exported with ``input_order="rgb"``; preprocessing in the graph)
  -> ``heatmaps`` float32 [N,H/4,W/4,K], ``keypoints`` float32 [N,K,2] (x, y crop pixels),
  ``scores`` float32 [N,K].
- ``normalized``: ``crops`` float32 [N,H,W,3], already normalised -> the same three outputs.
- ``heatmaps`` (only in the intermediate model the TFLite converter reads): ``crops`` -> ``heatmaps``.

Keypoints come from :func:`rsn_tf.export.graph.decode_heatmaps` (the codec's decode as TF ops, in the
model's recipe: ``decode_mode`` "authors" or "mmpose", recorded in the export's ``manifest.json``); boxes
and the inverse affine stay outside the graph (:mod:`rsn_tf.geometry`).
"""
from __future__ import annotations

import os

import keras
import tensorflow as tf

from rsn_tf.data.preprocess import preprocess_tf
from rsn_tf.export.graph import decode_heatmaps, input_hw
from rsn_tf.model import RSNModel


def save_serving_model(deployed: RSNModel, path: str, decode_kernel: int = 5, input_order: str = "bgr",
                       decode_mode: str = "authors") -> str:
    """Write ``deployed`` (see :func:`rsn_tf.export.graph.deploy_model`) with the serving signatures.

    ``path`` is the versioned directory itself (e.g. ``OUT/saved_model/1``). ``input_order``: channel
    order of the uint8 ``images`` ("bgr" or "rgb"). ``decode_mode``/``decode_kernel``: the in-graph
    decode ("authors" or "mmpose"; blur kernel). Returns ``path``.
    """
    config = deployed.rsn_config
    h, w = config.input_size
    if decode_mode not in ("authors", "mmpose"):
        raise ValueError(f"decode_mode must be 'authors' or 'mmpose' (got {decode_mode!r})")

    def decoded(heatmaps):
        keypoints, scores = decode_heatmaps(heatmaps, config.input_size, decode_kernel, decode_mode)
        return {"heatmaps": heatmaps, "keypoints": keypoints, "scores": scores}

    @tf.function(input_signature=[tf.TensorSpec([None, h, w, 3], tf.uint8, name="images")], jit_compile=False)
    def serve_uint8(images):
        return decoded(deployed(preprocess_tf(images, config.preprocessing, input_order), training=False))

    @tf.function(input_signature=[tf.TensorSpec([None, h, w, 3], tf.float32, name="crops")], jit_compile=False)
    def serve_float(crops):
        return decoded(deployed(crops, training=False))

    _write(deployed, path, {"serving_default": serve_uint8, "normalized": serve_float})
    return path


def save_heatmap_model(deployed: keras.Model, path: str) -> str:
    """SavedModel with one signature ``serving_default``: normalised ``crops`` [N,H,W,3] -> ``heatmaps``
    (the model's output; H, W from its input shape, so any prefix of the deploy graph works too).

    What the TFLite converter reads (``TFLiteConverter.from_saved_model``): no decode ops in the graph.
    """
    h, w = input_hw(deployed)

    @tf.function(input_signature=[tf.TensorSpec([None, h, w, 3], tf.float32, name="crops")], jit_compile=False)
    def heatmaps(crops):
        return {"heatmaps": deployed(crops, training=False)}

    _write(deployed, path, {"serving_default": heatmaps})
    return path


def _write(deployed, path, functions):
    """Save ``functions`` as signatures of a plain ``tf.Module`` that owns the model's tf.Variables.

    (Keras' ``ExportArchive`` stores every variable twice in Keras 3.15 — the Keras wrappers and the
    tf.Variables under them — doubling the SavedModel; a plain module stores each once.)
    """
    if os.path.exists(path) and os.listdir(path):
        raise ValueError(f"{path}: SavedModel directory exists and is not empty; choose a new --out or version")
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    module = tf.Module()
    module.model_variables = [v.value for v in deployed.variables]
    signatures = {name: fn.get_concrete_function() for name, fn in functions.items()}
    for name, fn in functions.items():
        setattr(module, name, fn)
    tf.saved_model.save(module, path, signatures=signatures)


def load_serving_model(path: str):
    """Load a SavedModel written by :func:`save_serving_model`; returns its signatures dict."""
    if not os.path.exists(os.path.join(path, "saved_model.pb")):
        raise FileNotFoundError(f"no saved_model.pb in {path} (expected a versioned SavedModel directory)")
    return tf.saved_model.load(path).signatures
