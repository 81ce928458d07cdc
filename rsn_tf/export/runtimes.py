"""One interface over every runtime an export runs in: load, set a batch, invoke, read heatmaps.

``runner = load_runner(kind, path, threads=1, batch=1)``; ``runner.predict(crops) -> heatmaps`` for
agreement checks; ``runner.set_input(crops)`` then ``runner.invoke()`` repeatedly for timing.
Inputs are normalised float32 crops [N,H,W,3] for every kind; outputs are heatmaps [N,h,w,K] float32.

Kinds: ``keras`` (a ``.keras`` file, run as its deploy graph in a ``tf.function``), ``saved_model`` (the
``normalized`` signature; includes the in-graph decode), ``tflite`` (``ai_edge_litert`` with XNNPACK;
int8-I/O models are (de)quantised here), ``onnx`` (onnxruntime, CPU provider).

Threads: TFLite and onnxruntime take a per-model thread count; TF's is per process
(:func:`set_tf_threads`, before TF runs anything), so the benchmark runs one process per thread count.
"""
from __future__ import annotations

import os

import numpy as np

RUNTIME_KINDS = ("keras", "saved_model", "tflite", "onnx")


def set_tf_threads(threads: int) -> None:
    """Pin TF's CPU thread pools (must run before TF executes any op in this process)."""
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(1)


class Runner:
    kind = "?"

    def set_input(self, crops: np.ndarray) -> None:
        raise NotImplementedError

    def invoke(self) -> None:
        raise NotImplementedError

    def output(self) -> np.ndarray:
        raise NotImplementedError

    def predict(self, crops: np.ndarray) -> np.ndarray:
        self.set_input(np.asarray(crops, np.float32))
        self.invoke()
        return np.array(self.output(), np.float32)


class KerasRunner(Runner):
    kind = "keras"

    def __init__(self, path_or_model, batch: int = 1):
        import keras
        import tensorflow as tf

        from rsn_tf.export.graph import deploy_model

        model = (keras.models.load_model(path_or_model, compile=False) if isinstance(path_or_model, str)
                 else path_or_model)
        self.model = deploy_model(model)
        self._fn = tf.function(lambda x: self.model(x, training=False), jit_compile=False)
        self._x = self._y = None

    def set_input(self, crops):
        import tensorflow as tf

        self._x = tf.constant(crops, tf.float32)

    def invoke(self):
        self._y = self._fn(self._x)

    def output(self):
        return self._y.numpy()


class SavedModelRunner(Runner):
    kind = "saved_model"

    def __init__(self, path: str, batch: int = 1):
        from rsn_tf.export.saved_model import load_serving_model

        self.signature = load_serving_model(path)["normalized"]
        self._x = self._y = None

    def set_input(self, crops):
        import tensorflow as tf

        self._x = tf.constant(crops, tf.float32)

    def invoke(self):
        self._y = self.signature(crops=self._x)

    def output(self):
        return self._y["heatmaps"].numpy()


class TFLiteRunner(Runner):
    """ai_edge_litert interpreter; the input's first dimension follows the batch given (peers may refuse)."""

    kind = "tflite"

    def __init__(self, path: str, threads: int = 1, batch: int = 1, use_xnnpack: bool = True):
        from ai_edge_litert.interpreter import OpResolverType

        from rsn_tf.export.native_log import without_native_chatter
        from rsn_tf.export.tflite import interpreter

        if not os.path.exists(path):
            raise FileNotFoundError(f"TFLite model not found: {path}")
        kwargs = {} if use_xnnpack else {"experimental_op_resolver_type": OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES}
        self.interp = interpreter(path, num_threads=threads, **kwargs)
        with without_native_chatter():  # XNNPACK is applied at the first allocation
            self._resize(batch)

    def _resize(self, batch):
        inp = self.interp.get_input_details()[0]
        if batch != inp["shape"][0]:
            self.interp.resize_tensor_input(inp["index"], [batch, *inp["shape"][1:]], strict=False)
        self.interp.allocate_tensors()
        self.input = self.interp.get_input_details()[0]
        self.outputs = self.interp.get_output_details()
        self.input_shape = tuple(int(d) for d in self.input["shape"])

    def set_input(self, crops):
        x = np.asarray(crops)
        if x.shape[0] != self.input_shape[0]:
            self._resize(x.shape[0])
        scale, zero = self.input["quantization"]
        if self.input["dtype"] != np.float32 and scale:
            x = np.clip(np.round(x / scale + zero), *_limits(self.input["dtype"]))
        self.interp.set_tensor(self.input["index"], x.astype(self.input["dtype"]))

    def invoke(self):
        self.interp.invoke()

    def output(self, index: int = 0):
        out = self.outputs[index]
        y = self.interp.get_tensor(out["index"])
        scale, zero = out["quantization"]
        if out["dtype"] != np.float32 and scale:
            y = (y.astype(np.float32) - zero) * scale
        return y


class ONNXRunner(Runner):
    kind = "onnx"

    def __init__(self, path: str, threads: int = 1, batch: int = 1):
        import onnxruntime as ort

        if not os.path.exists(path):
            raise FileNotFoundError(f"ONNX model not found: {path}")
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        self.sess = ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])
        self._name = self.sess.get_inputs()[0].name
        self._x = self._y = None

    def set_input(self, crops):
        self._x = np.ascontiguousarray(crops, np.float32)

    def invoke(self):
        self._y = self.sess.run(None, {self._name: self._x})

    def output(self):
        return self._y[0]


def _limits(dtype):
    info = np.iinfo(dtype)
    return info.min, info.max


def load_runner(kind: str, path, threads: int = 1, batch: int = 1) -> Runner:
    """A :class:`Runner` of ``kind`` (see module docstring) for ``path``."""
    if kind == "keras":
        return KerasRunner(path, batch)
    if kind == "saved_model":
        return SavedModelRunner(path, batch)
    if kind == "tflite":
        return TFLiteRunner(path, threads, batch)
    if kind == "onnx":
        return ONNXRunner(path, threads, batch)
    raise ValueError(f"unknown runtime kind {kind!r}; expected one of {RUNTIME_KINDS}")
