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
class BatchNormalization(keras.layers.BatchNormalization):
    """BatchNormalization with PyTorch's training statistics (what both references train with).

    Named as Keras' own layer on purpose: ``.keras`` files store a layer's weights under its class
    name in snake case (``layers/batch_normalization_N``), so models saved with the stock layer by
    earlier rsn_tf versions load into this one unchanged (``tests/test_checkpoints.py``).

    In training, the input is normalised with the batch mean and the *biased* batch variance, as in
    Keras and PyTorch alike, and the moving statistics are updated as PyTorch's ``BatchNorm2d`` does
    (``momentum`` 0.9 here == PyTorch's 0.1)::

        moving_mean     = momentum * moving_mean     + (1 - momentum) * mean
        moving_variance = momentum * moving_variance + (1 - momentum) * var * n / (n - 1)

    with ``n`` the number of values per channel (batch x height x width): the *unbiased* variance
    (``running_variance="biased"`` keeps Keras' ``var`` there). At batch 6 and 8x6 maps the two differ
    by 1/287 per update.

    Every per-channel sum, forward (mean, variance) and backward (``sum dy``, ``sum dy * xhat``), is
    reduced one axis at a time (W, then H, then N). Keras' ``ops.moments`` (``tf.nn.moments``) and
    TensorFlow's gradient of the broadcast reduce all N*H*W values per channel in one float32 pass,
    which on CPU loses up to ~1e-5 of sigma in the mean, ~1e-3 (relative) in the variance and ~1e-4 in
    the gradients over 6x128x96 values; PyTorch's CPU kernels accumulate these sums in float64. One
    axis at a time gives ~1e-7, PyTorch's result to float32 rounding, and is no slower. The backward
    is PyTorch's closed form, ``dx = (dy - mean(dy) - xhat * mean(dy * xhat)) * gamma / sqrt(var + eps)``.

    Inference (``training=False``) is the stock layer, so export and conversion see an ordinary
    BatchNormalization. Input [..., C] (``axis=-1``) of any float dtype; statistics in float32.
    """

    def __init__(self, running_variance: str = "unbiased", **kwargs):
        super().__init__(**kwargs)
        if running_variance not in ("unbiased", "biased"):
            raise ValueError(f"running_variance must be 'unbiased' or 'biased' (got {running_variance!r})")
        self.running_variance = running_variance

    def _sum_axes(self, t):
        """Sum over the reduction axes, one axis at a time (innermost first), keepdims."""
        for axis in sorted(self._reduction_axes, reverse=True):
            t = tf.reduce_sum(t, axis=axis, keepdims=True)
        return t

    def _train_normalize(self, x, gamma, beta):
        """(y, batch mean [C], biased batch variance [C]) with PyTorch's backward (module docstring)."""
        sum_axes = self._sum_axes
        epsilon = self.epsilon

        @tf.custom_gradient
        def normalize(x, gamma, beta):
            n = tf.cast(tf.reduce_prod(tf.gather(tf.shape(x), sorted(self._reduction_axes))), x.dtype)
            mean = sum_axes(x) / n
            centred = x - mean
            variance = sum_axes(tf.square(centred)) / n
            inv = tf.math.rsqrt(variance + epsilon)
            xhat = centred * inv
            y = xhat * gamma + beta

            def grad(dy, _dmean=None, _dvar=None):
                # torch's batch_norm_backward: dx = (dy - mean(dy) - xhat * mean(dy * xhat)) * inv * gamma
                dbeta = sum_axes(dy)
                dgamma = sum_axes(dy * xhat)
                dx = (dy - dbeta / n - xhat * (dgamma / n)) * (inv * gamma)
                return dx, tf.reshape(dgamma, tf.shape(gamma)), tf.reshape(dbeta, tf.shape(beta))

            return (y, tf.reshape(mean, [-1]), tf.reshape(variance, [-1])), grad

        return normalize(x, gamma, beta)

    def call(self, inputs, training=None, mask=None):
        if not (training and self.trainable) or mask is not None or self.renorm or self.synchronized \
                or not (self.scale and self.center) or keras.backend.backend() != "tensorflow":
            return super().call(inputs, training=training, mask=mask)
        x = tf.cast(inputs, keras.backend.result_type(inputs.dtype, "float32"))
        y, mean, variance = self._train_normalize(x, tf.cast(self.gamma, x.dtype), tf.cast(self.beta, x.dtype))
        mean, variance = tf.stop_gradient(mean), tf.stop_gradient(variance)
        moving = variance
        if self.running_variance == "unbiased":
            n = tf.cast(tf.reduce_prod(tf.gather(tf.shape(x), sorted(self._reduction_axes))), x.dtype)
            moving = variance * (n / tf.maximum(n - 1.0, 1.0))
        self.moving_mean.assign(tf.cast(self.moving_mean, x.dtype) * self.momentum + mean * (1.0 - self.momentum))
        self.moving_variance.assign(
            tf.cast(self.moving_variance, x.dtype) * self.momentum + moving * (1.0 - self.momentum))
        return tf.cast(y, self.compute_dtype)

    def get_config(self):
        return {**super().get_config(), "running_variance": self.running_variance}
