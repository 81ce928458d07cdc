"""rsn_tf: Residual Steps Network (RSN, ECCV 2020) for top-down human pose estimation in TensorFlow/Keras 3.

``import rsn_tf`` makes ``keras.saving.load_model("model.keras")`` work for rsn_tf's models: the
Keras classes are registered as soon as Keras is imported (at once if it already is), without
importing TensorFlow for commands that never need it. ``rsn_tf.load_model(ref)`` is the one loader
behind every ``--weights`` (``.keras``, ``.weights.h5`` + config, mmpose ``.pth``, named presets
such as ``mmpose/rsn18-coco``; see :mod:`rsn_tf.weights`).
"""
import os as _os

from rsn_tf.import_hooks import around_first_import

# TensorFlow's oneDNN kernels (convolutions and their gradients) are off by default on x86 CPUs without
# AVX-512; on this project's AMD EPYC VM without AVX-512 an RSN-18 training step at batch 4 took 1.18 s with
# them vs 1.35 s without (README, "Training step"). Set before TensorFlow is imported;
# TF_ENABLE_ONEDNN_OPTS=0 in the environment turns them off again.
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


def _exec_then_register(exec_module, module) -> None:
    exec_module(module)
    register_keras_classes()


if not around_first_import("keras", _exec_then_register):  # keras is already imported
    register_keras_classes()
