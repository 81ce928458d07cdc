"""ONNX export with tf2onnx (opset >= 13) and the op-list check; runs in onnxruntime.

The graph is the deploy model: normalised crops ``crops`` float32 [N,H,W,3] (NHWC, as in Keras) ->
``heatmaps`` float32 [N,H/4,W/4,K]. tf2onnx turns the align-corners resize into one ``Resize``
(``coordinate_transformation_mode=align_corners``) and wraps the NHWC graph in Transposes at its ends.
"""
from __future__ import annotations

import collections

DEFAULT_OPSET = 17


def export_onnx(deployed, out_path: str, opset: int = DEFAULT_OPSET) -> str:
    """Keras deploy model -> ``out_path`` (.onnx)."""
    import tensorflow as tf
    import tf2onnx

    from rsn_tf.io_utils import atomic_path

    if opset < 13:
        raise ValueError(f"ONNX opset must be >= 13 (got {opset})")
    h, w = deployed.rsn_config.input_size
    spec = [tf.TensorSpec([None, h, w, 3], tf.float32, name="crops")]
    fn = tf.function(lambda crops: {"heatmaps": deployed(crops, training=False)}, jit_compile=False)
    with atomic_path(out_path) as tmp:
        tf2onnx.convert.from_function(fn, input_signature=spec, opset=opset, output_path=tmp)
    return out_path


def onnx_op_counts(path: str) -> dict[str, int]:
    import onnx

    model = onnx.load(path)
    return dict(collections.Counter(node.op_type for node in model.graph.node))


def check_onnx_ops(ops: dict[str, int], expected_resizes: int, path: str = "model") -> list[str]:
    """Problems: Tile ops, ``Resize`` count != ``expected_resizes``."""
    problems = []
    if "Tile" in ops:
        problems.append(f"{path}: Tile ops ({ops['Tile']})")
    if ops.get("Resize", 0) != expected_resizes:
        problems.append(f"{path}: {ops.get('Resize', 0)} Resize ops, expected one per resize ({expected_resizes})")
    return problems
