"""Small Keras layers the RSN graph needs beyond the stock ones.

Each is registered for ``.keras`` serialisation and converts to a single native op in TFLite/ONNX.
"""
from __future__ import annotations

import keras
import tensorflow as tf
from keras import ops

_PACKAGE = "rsn_tf"


@keras.saving.register_keras_serializable(package=_PACKAGE)
class ResizeAlignCorners(keras.layers.Layer):
    """Bilinear resize with ``align_corners=True`` (PyTorch ``F.interpolate`` semantics).

    Keras ``UpSampling2D``/``tf.image.resize`` use half-pixel centres and give different numbers.
    Input [N, h, w, C] -> output [N, H, W, C] with ``size=(H, W)``; the identity when sizes match.
    Converts to one RESIZE_BILINEAR(align_corners=true) in TFLite and one ONNX ``Resize``.
    """

    def __init__(self, size, **kwargs):
        super().__init__(**kwargs)
        self.size = (int(size[0]), int(size[1]))

    def call(self, x):
        if tuple(x.shape[1:3]) == self.size:
            return x
        # The raw op (what tf.compat.v1.image.resize_bilinear wraps, minus its deprecation warning).
        y = tf.raw_ops.ResizeBilinear(images=x, size=self.size, align_corners=True, half_pixel_centers=False)
        return tf.cast(y, x.dtype)  # ResizeBilinear always returns float32

    def compute_output_shape(self, input_shape):
        return (input_shape[0], *self.size, input_shape[3])

    def get_config(self):
        return {**super().get_config(), "size": list(self.size)}


@keras.saving.register_keras_serializable(package=_PACKAGE)
class ChannelSplit(keras.layers.Layer):
    """Split [N, H, W, n*b] into ``n`` consecutive [N, H, W, b] chunks (``torch.split`` on channels)."""

    def __init__(self, num_splits, **kwargs):
        super().__init__(**kwargs)
        self.num_splits = int(num_splits)

    def call(self, x):
        return tf.split(x, self.num_splits, axis=-1)

    def compute_output_shape(self, input_shape):
        c = input_shape[-1] // self.num_splits
        return [(*input_shape[:-1], c)] * self.num_splits

    def get_config(self):
        return {**super().get_config(), "num_splits": self.num_splits}


@keras.saving.register_keras_serializable(package=_PACKAGE)
class SpaceToDepth(keras.layers.Layer):
    """[N, H, W, C] -> [N, H/b, W/b, b*b*C] (``tf.nn.space_to_depth``: channel = (dy*b + dx)*C + c).

    Converts to one SPACE_TO_DEPTH in TFLite (int8 supported, XNNPACK-delegated).
    """

    def __init__(self, block_size=2, **kwargs):
        super().__init__(**kwargs)
        self.block_size = int(block_size)

    def call(self, x):
        return tf.nn.space_to_depth(x, self.block_size)

    def compute_output_shape(self, input_shape):
        b = self.block_size
        n, h, w, c = input_shape
        return (n, None if h is None else h // b, None if w is None else w // b, c * b * b)

    def get_config(self):
        return {**super().get_config(), "block_size": self.block_size}


@keras.saving.register_keras_serializable(package=_PACKAGE)
class PRMGate(keras.layers.Layer):
    """Pose Refine Machine output: ``x * (1 + alpha * beta)``.

    x: [N, H, W, K]; alpha: [N, 1, 1, K] (channel attention); beta: [N, H, W, K] or [N, H, W, 1]
    (spatial attention). alpha, beta in (0, 1).
    """

    def call(self, inputs):
        x, alpha, beta = inputs
        return x * (1.0 + alpha * beta)

    def compute_output_shape(self, input_shapes):
        return input_shapes[0]


@keras.saving.register_keras_serializable(package=_PACKAGE)
class BatchNorm(keras.layers.BatchNormalization):
    """BatchNormalization with PyTorch's running-statistics update (what both references train with).

    In training, the input is normalised with the batch mean and the *biased* batch variance, as in
    Keras and PyTorch alike. The moving statistics are then updated as PyTorch's ``BatchNorm2d``
    does (``momentum`` 0.9 here == PyTorch's 0.1)::

        moving_mean     = momentum * moving_mean     + (1 - momentum) * mean
        moving_variance = momentum * moving_variance + (1 - momentum) * var * n / (n - 1)

    with ``n`` the number of values per channel (batch x height x width): the *unbiased* variance.
    Keras' own layer uses the biased ``var`` there (``running_variance="biased"`` keeps that). At
    batch 6 and 8x6 maps the two differ by 1/287 relative per update, enough to move BatchNorm
    statistics visibly over a training run. Inference (``training=False``) is the stock layer, so
    export and conversion see an ordinary BatchNormalization.

    Input [..., C] (``axis=-1``) of any float dtype; statistics are computed in float32.
    """

    def __init__(self, running_variance: str = "unbiased", **kwargs):
        super().__init__(**kwargs)
        if running_variance not in ("unbiased", "biased"):
            raise ValueError(f"running_variance must be 'unbiased' or 'biased' (got {running_variance!r})")
        self.running_variance = running_variance

    def call(self, inputs, training=None, mask=None):
        if not (training and self.trainable) or self.running_variance == "biased" or mask is not None \
                or self.renorm or self.synchronized:
            return super().call(inputs, training=training, mask=mask)
        x = ops.cast(inputs, keras.backend.result_type(inputs.dtype, "float32"))
        mean, variance = self._moments(x, None)
        shape = ops.shape(x)
        n = ops.cast(1, x.dtype)
        for axis in self._reduction_axes:
            n = n * ops.cast(shape[axis], x.dtype)
        unbiased = variance * (n / ops.maximum(n - 1.0, 1.0))
        self.moving_mean.assign(ops.cast(self.moving_mean, x.dtype) * self.momentum + mean * (1.0 - self.momentum))
        self.moving_variance.assign(
            ops.cast(self.moving_variance, x.dtype) * self.momentum + unbiased * (1.0 - self.momentum))
        gamma = ops.cast(self.gamma, x.dtype) if self.scale else None
        beta = ops.cast(self.beta, x.dtype) if self.center else None
        outputs = ops.batch_normalization(x=x, mean=mean, variance=variance, axis=self.axis, offset=beta,
                                          scale=gamma, epsilon=self.epsilon)
        return ops.cast(outputs, self.compute_dtype)

    def get_config(self):
        return {**super().get_config(), "running_variance": self.running_variance}
