"""rsn_tf: Residual Steps Network (RSN, ECCV 2020) for top-down human pose estimation in TensorFlow/Keras 3.

``import rsn_tf`` makes ``keras.saving.load_model("model.keras")`` work for rsn_tf's models: the
Keras classes are registered as soon as Keras is imported (at once if it already is), without
importing TensorFlow for commands that never need it. ``rsn_tf.load_model(ref)`` is the one loader
behind every ``--weights`` (``.keras``, ``.weights.h5`` + config, mmpose ``.pth``, named presets
such as ``mmpose/rsn18-coco``; see :mod:`rsn_tf.weights`).
"""
import importlib.abc
import importlib.util
import sys
import os as _os

# TensorFlow's oneDNN kernels (convolutions and their gradients) are off by default on x86 CPUs without
# AVX-512; on this project's AMD EPYC they make RSN-18's training step ~1.5x faster (the 3x3 convolutions
# with few channels 2-3x). Set before TensorFlow is imported; TF_ENABLE_ONEDNN_OPTS=0 in the environment
# turns them off again.
_os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")

__version__ = "0.1.0"


def load_model(ref, config=None, **kwargs):
    """Load an RSN model: see :func:`rsn_tf.weights.load_model`."""
    from rsn_tf.weights import load_model as _load
    return _load(ref, config, **kwargs)


def register_keras_classes() -> None:
    """Register rsn_tf's Keras classes for ``keras.saving`` (done automatically once Keras is imported)."""
    from rsn_tf.weights import register_keras_classes as _register
    _register()


class _RegisterAfterKeras(importlib.abc.MetaPathFinder):
    """Runs :func:`register_keras_classes` right after the ``keras`` package has been imported."""

    def find_spec(self, name, path=None, target=None):
        if name != "keras":
            return None
        sys.meta_path.remove(self)  # once; and the real finders answer the lookup below
        spec = importlib.util.find_spec(name)
        if spec is None or spec.loader is None or not hasattr(spec.loader, "exec_module"):
            return spec
        loader = spec.loader
        exec_module = loader.exec_module

        def exec_and_register(module):
            exec_module(module)
            register_keras_classes()

        loader.exec_module = exec_and_register
        return spec


if "keras" in sys.modules:
    register_keras_classes()
elif not any(isinstance(f, _RegisterAfterKeras) for f in sys.meta_path):
    sys.meta_path.insert(0, _RegisterAfterKeras())
