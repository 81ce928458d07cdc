"""Parameter and MAC counts of a Keras model, in the convention of pose papers.

- params: every weight except BatchNorm running statistics (= PyTorch ``parameters()``).
- MACs: multiply-accumulates of Conv2D, DepthwiseConv2D and Dense layers only, per image
  (1 MAC = 2 FLOPs; papers call MACs "FLOPs").
"""
from __future__ import annotations

import dataclasses
import math

import keras

from rsn_tf.model.config import PAPER_GFLOPS, PRESETS, preset_config


def count_params(model: keras.Model) -> int:
    """Learnable parameters (BatchNorm moving mean/variance excluded)."""
    return sum(math.prod(w.shape) for w in model.weights
               if not w.path.endswith(("moving_mean", "moving_variance")))


def count_macs(model: keras.Model) -> int:
    """Conv/dense multiply-accumulates for one input image."""
    total = 0
    for layer in model.layers:
        if isinstance(layer, keras.layers.DepthwiseConv2D):
            _, h, w, c = layer.output.shape
            kh, kw = layer.kernel_size
            total += h * w * c * kh * kw
        elif isinstance(layer, keras.layers.Conv2D):
            _, h, w, cout = layer.output.shape
            kh, kw = layer.kernel_size
            cin = layer.input.shape[-1]
            total += h * w * cout * kh * kw * cin // layer.groups
        elif isinstance(layer, keras.layers.Dense):
            total += math.prod(layer.kernel.shape) * math.prod(layer.output.shape[1:-1])
    return int(total)


@dataclasses.dataclass
class Complexity:
    preset: str
    input: str
    params: int
    macs: int
    paper_gflops: float | None

    @property
    def gmacs(self) -> float:
        return self.macs / 1e9


def preset_complexity(name: str, input_size: str | None = None) -> Complexity:
    """Build preset ``name`` (random weights) and count it. ``input_size`` e.g. ``"384x288"``."""
    from rsn_tf.model import build_rsn

    config = preset_config(name, input_size)
    keras.backend.clear_session()
    model = build_rsn(config)
    h, w = config.input_size
    paper = PAPER_GFLOPS.get(name.lower()) if (h, w) == (256, 192) else None
    return Complexity(name.lower(), f"{h}x{w}", count_params(model), count_macs(model), paper)


def all_presets() -> list[str]:
    return list(PRESETS)


TABLE_HEADER = ("| preset | input | params (M) | GMACs | paper/README GFLOPs |", "|---|---|---|---|---|")
TABLE_NOTE = ("MACs count Conv2D/Dense multiply-adds (1 MAC = 2 FLOPs). The mmpose-compatible presets "
              "(rsn50, 2x/3x/4xrsn50) are far below the paper's figures: the public code's RSB cannot reach "
              "them (README, 'Complexity'). The *_paper presets (planes-based branch width, expansion 4, "
              "[5,5,6,3]) reproduce the paper's complexity.")


def format_row(r: Complexity) -> str:
    """One markdown table row of :func:`format_table`."""
    paper = "" if r.paper_gflops is None else f"{r.paper_gflops:.1f}"
    return f"| {r.preset} | {r.input} | {r.params / 1e6:.3f} | {r.gmacs:.3f} | {paper} |"


def format_table(rows: list[Complexity]) -> str:
    """Markdown table: preset, input, params (M), GMACs, and the paper's GFLOPs beside ours."""
    return "\n".join([*TABLE_HEADER, *(format_row(r) for r in rows), "", TABLE_NOTE])


def summary_text(model: keras.Model, line_length: int = 160) -> str:
    """``model.summary()`` as text, every column at full width (layer, output shape, params, inputs).

    Keras renders the summary with ``rich``, which cuts a captured (non-terminal) summary at the
    console width, 80 columns by default, losing the ``Param #`` and ``Connected to`` columns; the
    console width is set to ``line_length`` while it renders.
    """
    import os

    lines: list[str] = []
    old = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = str(int(line_length))
    try:
        model.summary(print_fn=lambda s, **_: lines.append(s), line_length=line_length)
    finally:
        if old is None:
            os.environ.pop("COLUMNS", None)
        else:
            os.environ["COLUMNS"] = old
    return "\n".join(lines).rstrip("\n") + "\n"


def profiler_macs(model: keras.Model) -> int:
    """Independent check of :func:`count_macs`: TF's graph profiler on the frozen inference graph.

    Counts the float ops of Conv2D, DepthwiseConv2dNative and MatMul nodes for one image and
    halves them (the profiler counts a multiply-add as 2 FLOPs). Slower than ``count_macs``.
    """
    import tensorflow as tf
    from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2_as_graph

    spec = tf.TensorSpec([1, *model.input.shape[1:]], tf.float32)
    fn = tf.function(lambda x: model(x, training=False)).get_concrete_function(spec)
    _, graph_def = convert_variables_to_constants_v2_as_graph(fn)
    builder = tf.compat.v1.profiler.ProfileOptionBuilder
    opts = builder(builder.float_operation()).with_empty_output().build()
    opts["account_type_regexes"] = ["Conv2D", "DepthwiseConv2dNative", "MatMul"]
    with tf.Graph().as_default() as graph:
        tf.graph_util.import_graph_def(graph_def, name="")
        prof = tf.compat.v1.profiler.profile(graph=graph, run_meta=tf.compat.v1.RunMetadata(), cmd="op",
                                             options=opts)
    return int(prof.total_float_ops) // 2
