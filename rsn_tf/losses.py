"""The RSN training loss: coarse-to-fine heatmap L2 plus online hard keypoint mining.

Every stage has 4 heads (units coarse -> fine). Heads 0-2 of each stage get a heatmap MSE weighted
0.25; head 3 gets OHKM (the mean of the ``topk`` largest per-keypoint MSEs) weighted 1. The total is
the sum over stages and heads, each term averaged over the batch. Targets have peak 255 (the codec),
so the loss magnitudes are large (hundreds at initialisation); that is the references' scale.

Two named modes, identical in structure, differing in the masks of heads 0-2:

``authors`` (the official PyTorch ``JointsL2Loss``, the default)
  heads 0-2: ``mean_{K,h,w}(pred - gt * [v == 2])^2``: only *visible* (COCO v=2) joints keep their
  Gaussian, occluded/unlabelled joints get an all-zero target, and the prediction is not masked (it
  is pushed to 0 there). Head 3: per-keypoint ``mean_{h,w}(pred - gt)^2 * [labelled & inside]``.

``mmpose`` (``KeypointMSELoss(use_target_weight=True)`` / ``KeypointOHKMMSELoss(use_target_weight=True)``)
  heads 0-2: ``mean_{B,K,h,w}(w * (pred - gt)^2)`` with ``w`` = the keypoint weight (labelled and
  its cell inside the map): the squared error is masked, so unlabelled joints contribute nothing.
  Head 3: per sample and keypoint ``mean_{h,w}(w*pred - w*gt)^2``, the ``topk`` largest summed / topk,
  then the batch mean. Head i is compared with target level i and that level's weights.

Shapes: ``outputs`` is the model's list of L = num_stages*4 heatmaps [B, h, w, K] (any float dtype;
computed in float32, or float64 for a float64 model); ``targets`` is the data pipeline's dict: ``heatmaps`` [B, L, h, w, K] (0..255),
``weights`` [B, K] (1 = labelled and inside the crop; or [B, L, K], one row per level, as mmpose's
``keypoint_weights``), ``visible`` [B, K] (COCO 0/1/2; read by the authors' mode only).
"""
from __future__ import annotations

import dataclasses
from typing import Literal, Sequence

import keras
import tensorflow as tf

from rsn_tf.config import from_dict, to_dict

LOSS_MODES = ("authors", "mmpose")
DEFAULT_HEAD_WEIGHTS = (0.25, 0.25, 0.25, 1.0)


@dataclasses.dataclass(frozen=True)
class LossConfig:
    """How the heads are supervised.

    Attributes:
      mode: ``"authors"`` or ``"mmpose"`` (module docstring).
      topk: OHKM keeps the ``topk`` hardest keypoints of the finest head (8 in both references;
        must be <= K).
      head_weights: weight of heads 0..3 of every stage (MSE, MSE, MSE, OHKM).
    """

    mode: Literal["authors", "mmpose"] = "authors"
    topk: int = 8
    head_weights: tuple[float, float, float, float] = DEFAULT_HEAD_WEIGHTS

    def __post_init__(self):
        if self.mode not in LOSS_MODES:
            raise ValueError(f"loss.mode must be one of {list(LOSS_MODES)} (got {self.mode!r})")
        if self.topk < 1:
            raise ValueError(f"loss.topk must be >= 1 (got {self.topk})")


def _dtype(pred):
    """The loss dtype: float32, or float64 for float64 outputs (a float64 replica of training)."""
    return tf.float64 if pred.dtype == tf.float64 else tf.float32


def _mean(t, axes):
    """Mean over ``axes`` one axis at a time (innermost first): accurate float32 sums, as PyTorch's
    pairwise reductions, where one pass over B*h*w*K values would lose ~1e-6."""
    for axis in sorted(axes, reverse=True):
        t = tf.reduce_mean(t, axis=axis)
    return t


def _mse_maps(pred, gt):
    """Squared error [B, h, w, K] in the loss dtype."""
    dtype = _dtype(pred)
    return tf.math.squared_difference(tf.cast(pred, dtype), tf.cast(gt, dtype))


def mse_per_sample(pred, gt, mask_target=None, mask_error=None):
    """Heatmap L2 of one head, one value per sample [B]: mean over h, w, K.

    ``mask_target`` [B, K] multiplies the target (authors); ``mask_error`` [B, K] multiplies the
    squared error (mmpose).
    """
    dtype = _dtype(pred)
    gt = tf.cast(gt, dtype)
    if mask_target is not None:
        gt = gt * tf.cast(mask_target, dtype)[:, None, None, :]
    err = _mse_maps(pred, gt)
    if mask_error is not None:
        err = err * tf.cast(mask_error, dtype)[:, None, None, :]
    return _mean(err, [1, 2, 3])


def ohkm_keypoint_losses(pred, gt, weights, weight_inside: bool = False):
    """Per-keypoint losses OHKM ranks [B, K]: ``mean_{h,w}(pred - gt)^2 * w`` (authors), or with
    ``weight_inside`` ``mean_{h,w}(w*pred - w*gt)^2`` (mmpose; the same for 0/1 weights)."""
    dtype = _dtype(pred)
    w = tf.cast(weights, dtype)
    if weight_inside:
        wm = w[:, None, None, :]
        return _mean(_mse_maps(tf.cast(pred, dtype) * wm, tf.cast(gt, dtype) * wm), [1, 2])
    return _mean(_mse_maps(pred, gt), [1, 2]) * w


def ohkm_per_sample(pred, gt, weights, topk: int = 8, weight_inside: bool = False):
    """Online hard keypoint mining of one head [B]: mean of the ``topk`` largest per-keypoint losses
    (:func:`ohkm_keypoint_losses`; weight-0 joints score 0 and are therefore never "hard")."""
    k = pred.shape[-1]
    if k is not None and topk > k:
        raise ValueError(f"loss.topk ({topk}) is larger than the number of keypoints ({k})")
    per_kpt = ohkm_keypoint_losses(pred, gt, weights, weight_inside)  # [B, K]
    top, _ = tf.math.top_k(per_kpt, k=topk, sorted=False)
    return tf.reduce_mean(top, axis=-1)


def rsn_loss_terms(outputs: Sequence, targets: dict, config: LossConfig = LossConfig()):
    """Per-head, per-sample losses: a list of L tensors [B], already multiplied by the head weights."""
    heatmaps = targets["heatmaps"]
    all_weights = tf.cast(targets["weights"], _dtype(outputs[0]))
    per_level = all_weights.shape.rank == 3
    num_heads = len(outputs)
    if num_heads % 4:
        raise ValueError(f"expected 4 heads per stage, got {num_heads} outputs")
    if heatmaps.shape[1] is not None and heatmaps.shape[1] != num_heads:
        raise ValueError(f"targets['heatmaps'] has {heatmaps.shape[1]} levels, the model has {num_heads} heads")
    if per_level and all_weights.shape[1] is not None and all_weights.shape[1] != num_heads:
        raise ValueError(f"targets['weights'] has {all_weights.shape[1]} levels, the model has {num_heads} heads")
    if config.mode == "authors":
        visible = tf.cast(targets["visible"], _dtype(outputs[0]))
    terms = []
    for i, pred in enumerate(outputs):
        gt = heatmaps[:, i]
        weights = all_weights[:, i] if per_level else all_weights
        unit = i % 4
        w = config.head_weights[unit]
        if config.mode == "authors":
            if unit < 3:
                # Official: gt * (valid > 1), where valid is v (0/1/2) set to 0 outside the crop.
                keep_gt = tf.cast(visible > 1.5, visible.dtype) * tf.cast(weights > 0, visible.dtype)
                t = mse_per_sample(pred, gt, mask_target=keep_gt)
            else:
                t = ohkm_per_sample(pred, gt, weights, config.topk)
        else:
            if unit < 3:
                t = mse_per_sample(pred, gt, mask_error=weights)
            else:
                t = ohkm_per_sample(pred, gt, weights, config.topk, weight_inside=True)
        terms.append(w * t)
    return terms


def rsn_loss_per_sample(outputs: Sequence, targets: dict, config: LossConfig = LossConfig()):
    """Total loss of every sample [B] (sum over stages and heads)."""
    return tf.add_n(rsn_loss_terms(outputs, targets, config))


def rsn_loss(outputs: Sequence, targets: dict, config: LossConfig = LossConfig()):
    """The RSN loss: scalar float32 (float64 for a float64 model), the batch mean of :func:`rsn_loss_per_sample`.

    Under a ``tf.distribute`` strategy this is the *local* batch mean; divide by the number of
    replicas before taking gradients (the trainers do).
    """
    return tf.reduce_mean(rsn_loss_per_sample(outputs, targets, config))


# ----------------------------------------------------------------------------------------- Keras loss
@keras.saving.register_keras_serializable(package="rsn_tf")
class RSNLoss(keras.losses.Loss):
    """The RSN loss as a ``keras.losses.Loss``: ``loss(targets, outputs)``.

    ``outputs``: the model's list of L heatmaps [B, h, w, K] (any float dtype; cast to float32);
    ``targets``: the data pipeline's dict (module docstring). ``call`` returns the per-sample total
    [B] (:func:`rsn_loss_per_sample`); Keras reduces it to the batch mean and, under a
    ``tf.distribute`` strategy, divides by the replicas in sync (its convention for every loss).

    A plain :class:`rsn_tf.model.RSNModel` trains with ``model.compile(optimizer, loss=RSNLoss())``
    and ``model.fit(dataset)`` (the model hands the loss all its heads at once); ``rsn train``'s
    trainer uses the same object.

    Args:
      config: a :class:`LossConfig` or its dict; or give its fields as keywords (``mode="mmpose"``).
    """

    def __init__(self, config: "LossConfig | dict | None" = None, *, name: str = "rsn_loss",
                 reduction: str = "sum_over_batch_size", dtype=None, **fields):
        if config is not None and fields:
            raise ValueError("RSNLoss: give a LossConfig or its fields, not both")
        if isinstance(config, LossConfig):
            data = to_dict(config)
        else:
            data = dict(config or fields)
        self.config = from_dict(LossConfig, data, "loss")
        super().__init__(name=name, reduction=reduction, dtype=dtype)

    def call(self, y_true, y_pred):
        return rsn_loss_per_sample(list(y_pred), y_true, self.config)

    def per_sample(self, y_true, y_pred):
        """The per-sample losses [B] without any reduction or replica scaling."""
        return rsn_loss_per_sample(list(y_pred), y_true, self.config)

    def get_config(self):
        return {**super().get_config(), "config": to_dict(self.config)}

