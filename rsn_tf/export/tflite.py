"""TFLite export (fp32, fp16 weights, full-integer int8) and the op-list check.

Conversion goes through ``TFLiteConverter.from_saved_model`` on a heatmaps-only SavedModel
(:func:`rsn_tf.export.saved_model.save_heatmap_model`); ``from_concrete_functions`` would break int8
calibration. Models run in ``ai_edge_litert.interpreter.Interpreter`` (XNNPACK by default).

- ``fp32``: float32 weights and activations.
- ``fp16``: float16 weights, dequantised to float32 at load (XNNPACK runs them in fp32); half the file.
- ``int8``: full-integer quantisation, per-channel weights, int8 activations calibrated on a
  representative set of normalised crops; float32 input and output (the quantize/dequantize are the
  only non-int8 ops). ``int8_io=True`` makes input and output int8 too (quantisation parameters in the
  tensor details).
"""
from __future__ import annotations

import collections
import os
import tempfile
import numpy as np

from rsn_tf.export.native_log import without_native_chatter
from rsn_tf.io_utils import atomic_path

TFLITE_VARIANTS = ("fp32", "fp16", "int8")


def convert_tflite(saved_model_dir: str, variant: str, representative: np.ndarray | None = None,
                   int8_io: bool = False) -> bytes:
    """Convert a heatmaps-only SavedModel to TFLite flatbuffer bytes.

    representative: normalised crops [M,H,W,3] float32 for int8 calibration (each fed as batch 1).
    """
    import tensorflow as tf

    if variant not in TFLITE_VARIANTS:
        raise ValueError(f"TFLite variant must be one of {TFLITE_VARIANTS} (got {variant!r})")
    converter = tf.lite.TFLiteConverter.from_saved_model(saved_model_dir)
    if variant == "fp16":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.target_spec.supported_types = [tf.float16]
    elif variant == "int8":
        if representative is None or len(representative) == 0:
            raise ValueError("int8 conversion needs a representative dataset of normalised crops [M,H,W,3]")
        rep = np.asarray(representative, np.float32)

        def gen():
            for crop in rep:
                yield [crop[None]]

        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = gen
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        if int8_io:
            converter.inference_input_type = tf.int8
            converter.inference_output_type = tf.int8
    with without_native_chatter():
        return converter.convert()


def interpreter(model_path: str, allocate: bool = False, **kwargs):
    """``ai_edge_litert.interpreter.Interpreter(model_path, **kwargs)`` (tensors allocated if asked), without
    LiteRT's "Created TensorFlow Lite XNNPACK delegate" line (:mod:`rsn_tf.export.native_log`)."""
    from ai_edge_litert.interpreter import Interpreter

    with without_native_chatter():
        interp = Interpreter(model_path=model_path, **kwargs)
        if allocate:
            interp.allocate_tensors()
    return interp


def write_tflite(content: bytes, path: str) -> str:
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            f.write(content)
    return path


def export_tflite(deployed, out_path: str, variant: str, representative: np.ndarray | None = None,
                  int8_io: bool = False) -> str:
    """Keras deploy model -> ``out_path`` (.tflite). Converts via a temporary heatmaps-only SavedModel."""
    from rsn_tf.export.saved_model import save_heatmap_model

    with tempfile.TemporaryDirectory(prefix="rsn_tflite_") as tmp:
        sm = save_heatmap_model(deployed, os.path.join(tmp, "heatmaps"))
        content = convert_tflite(sm, variant, representative, int8_io=int8_io)
    return write_tflite(content, out_path)


def op_counts(model_path: str) -> dict[str, int]:
    """{op name: count} of a .tflite model's ops (as the runtime resolves them)."""
    interp = interpreter(model_path)
    return dict(collections.Counter(op["op_name"] for op in interp._get_ops_details()))


def xnnpack_partitions(model_path: str) -> int:
    """Delegate partitions XNNPACK makes of the model (1 = the whole graph runs as one XNNPACK subgraph;
    more means ops it could not take split the graph and run in the reference kernels between)."""
    interp = interpreter(model_path, allocate=True)
    return sum(1 for op in interp._get_ops_details() if op["op_name"] == "DELEGATE")


def check_ops(ops: dict[str, int], expected_resizes: int, path: str = "model") -> list[str]:
    """Problems with an op list: Flex/custom ops, TILE, RESIZE_BILINEAR count != ``expected_resizes``."""
    problems = []
    bad = sorted(name for name in ops if "FLEX" in name.upper() or "CUSTOM" in name.upper())
    if bad:
        problems.append(f"{path}: Flex/custom ops {bad} (not native in every runtime)")
    if "TILE" in ops:
        problems.append(f"{path}: TILE ops ({ops['TILE']})")
    resizes = ops.get("RESIZE_BILINEAR", 0)
    if resizes != expected_resizes:
        problems.append(f"{path}: {resizes} RESIZE_BILINEAR ops, expected one per resize ({expected_resizes})")
    return problems


def tflite_macs(model_path: str) -> int:
    """Multiply-accumulates of CONV_2D, DEPTHWISE_CONV_2D and FULLY_CONNECTED ops (batch 1).

    Counted from the flatbuffer's tensor shapes, so it works for any .tflite (e.g. a peer model).
    """
    interp = interpreter(model_path)
    shapes = {t["index"]: t["shape"] for t in interp.get_tensor_details()}
    total = 0
    for op in interp._get_ops_details():
        name, ins, outs = op["op_name"], list(op["inputs"]), list(op["outputs"])
        if name not in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED") or len(ins) < 2 or ins[1] < 0:
            continue
        out = shapes[outs[0]]
        w = shapes[ins[1]]
        if name == "CONV_2D":  # filter [Cout, kh, kw, Cin/groups]
            total += int(np.prod(out[1:])) * int(np.prod(w[1:]))
        elif name == "DEPTHWISE_CONV_2D":  # filter [1, kh, kw, C*mult]
            total += int(np.prod(out[1:])) * int(w[1] * w[2])
        else:  # weights [out, in]
            total += int(np.prod(out[1:-1], initial=1)) * int(w[0] * w[1]) if len(out) > 2 else int(w[0] * w[1])
    return total


def describe_ops(ops: dict[str, int]) -> str:
    return ", ".join(f"{k}x{v}" for k, v in sorted(ops.items(), key=lambda kv: (-kv[1], kv[0])))
