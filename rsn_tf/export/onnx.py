"""ONNX export with tf2onnx (opset >= 13) and the op-list check; runs in onnxruntime.

The graph is the deploy model: normalised crops ``crops`` float32 [N,H,W,3] (NHWC, as in Keras) ->
``heatmaps`` float32 [N,H/4,W/4,K]. tf2onnx turns the align-corners resize into one ``Resize``
(``coordinate_transformation_mode=align_corners``) and wraps the NHWC graph in Transposes at its ends.

tf2onnx's optimiser does not push its layout Transposes through ``Split``: every RSB split comes out
as ``Transpose(NCHW->NHWC) -> Split(axis=3) -> Transpose(NHWC->NCHW)`` per output (40 of the 42
Transposes of RSN-18). :func:`fold_split_transposes` rewrites each to one ``Split(axis=1)`` on the
NCHW tensor (exact: a split along the same data axis).
"""
from __future__ import annotations

import collections

DEFAULT_OPSET = 17


def export_onnx(deployed, out_path: str, opset: int = DEFAULT_OPSET) -> str:
    """Keras deploy model -> ``out_path`` (.onnx)."""
    import tensorflow as tf
    import tf2onnx

    from rsn_tf.export.graph import input_hw
    from rsn_tf.io_utils import atomic_path

    if opset < 13:
        raise ValueError(f"ONNX opset must be >= 13 (got {opset})")
    h, w = input_hw(deployed)
    spec = [tf.TensorSpec([None, h, w, 3], tf.float32, name="crops")]
    fn = tf.function(lambda crops: {"heatmaps": deployed(crops, training=False)}, jit_compile=False)
    model_proto, _ = tf2onnx.convert.from_function(fn, input_signature=spec, opset=opset)
    fold_split_transposes(model_proto)
    import onnx

    onnx.checker.check_model(model_proto)
    with atomic_path(out_path) as tmp:
        onnx.save(model_proto, tmp)
    return out_path


def fold_split_transposes(model) -> int:
    """``Transpose(perm) -> Split(axis) -> Transpose(inverse perm)`` on every output -> one ``Split`` on the
    un-transposed tensor along ``perm[axis]``. Edits ``model`` (an ``onnx.ModelProto``) in place; returns
    the number of Splits rewritten."""
    import onnx

    graph = model.graph
    producer = {o: n for n in graph.node for o in n.output}
    consumers: dict[str, list] = collections.defaultdict(list)
    for n in graph.node:
        for i in n.input:
            consumers[i].append(n)
    graph_outputs = {o.name for o in graph.output}

    def perm_of(node):
        return next((list(a.ints) for a in node.attribute if a.name == "perm"), None)

    removed, folded = set(), 0
    for split in [n for n in graph.node if n.op_type == "Split"]:
        pre = producer.get(split.input[0])
        if pre is None or pre.op_type != "Transpose" or len(consumers[pre.output[0]]) != 1:
            continue
        perm = perm_of(pre)
        posts = [consumers[o] for o in split.output]
        if perm is None or any(o in graph_outputs for o in split.output) or not all(
                len(c) == 1 and c[0].op_type == "Transpose" for c in posts):
            continue
        inverse = [perm.index(i) for i in range(len(perm))]
        if any(perm_of(c[0]) != inverse for c in posts):
            continue
        axis_attr = next((a for a in split.attribute if a.name == "axis"), None)
        axis = axis_attr.i if axis_attr is not None else 0
        axis = axis % len(perm)
        new_axis = perm[axis]
        split.input[0] = pre.input[0]
        for a in list(split.attribute):
            if a.name == "axis":
                split.attribute.remove(a)
        split.attribute.append(onnx.helper.make_attribute("axis", new_axis))
        removed.add(id(pre))
        for out_index, c in enumerate(posts):
            post = c[0]
            new_name = post.output[0]
            split.output[out_index] = new_name  # the post-transpose's consumers read the split directly
            removed.add(id(post))
        folded += 1
    keep = [n for n in graph.node if id(n) not in removed]
    del graph.node[:]
    graph.node.extend(keep)
    return folded


def quantize_onnx(fp32_path: str, out_path: str, representative) -> str:
    """Static int8 quantisation of an exported ONNX model with onnxruntime: QDQ format, per-channel int8
    weights, uint8 activations (onnxruntime's fast path on x86: its U8S8 kernels; int8 activations ran at
    less than half the speed on this project's CPU), calibrated on ``representative`` normalised crops
    [M,H,W,3] (fed one by one, MinMax). Input and output stay float32. Writes nothing outside temporary
    folders and ``out_path``."""
    import os
    import tempfile

    import numpy as np
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    from rsn_tf.io_utils import atomic_path

    rep = np.asarray(representative, np.float32)
    if len(rep) == 0:
        raise ValueError("ONNX int8 quantisation needs a representative dataset of normalised crops [M,H,W,3]")

    class Reader(CalibrationDataReader):
        def __init__(self):
            self._it = iter([{"crops": crop[None]} for crop in rep])

        def get_next(self):
            return next(self._it, None)

    with tempfile.TemporaryDirectory(prefix="rsn_onnx_q_") as tmp:
        pre = os.path.join(tmp, "pre.onnx")
        # ONNX's own shape inference gives every tensor its shape. onnxruntime's symbolic one is skipped: it
        # computes the batch of tf2onnx's Resize (``scales`` [1, 1, 2, 2]) as ``floor(1.0*N)``, cannot prove it
        # equal to the ``N`` of the skip branch that the following Add merges it with, stops "incomplete", and
        # then dumps ``sym_shape_infer_temp.onnx`` + a ``<uuid1>.data`` file into the working directory
        # (``SymbolicShapeInference.infer_shapes``, no option to redirect it) before raising.
        quant_pre_process(fp32_path, pre, skip_symbolic_shape=True)
        # Every other file the quantiser writes (calibration's augmented model) goes to its own temp folder.
        with atomic_path(out_path) as out:
            quantize_static(pre, out, Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                            activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)
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
