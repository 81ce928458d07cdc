"""The optimizer: Adam with the authors' L2 weight decay, or Keras' decoupled (AdamW-style) decay.

The official PyTorch code uses ``torch.optim.Adam(weight_decay=1e-5)``: the decay is added to the
gradient (``g + wd * w``) before the Adam moments, for every parameter, BatchNorm included. Keras'
``Adam(weight_decay=...)`` is *decoupled* (``w -= lr * wd * w`` after the Adam step, i.e. AdamW),
which is a different optimizer. :class:`AdamL2` reproduces the PyTorch behaviour; the config's
``optimizer.weight_decay_mode: decoupled`` picks Keras' own.
"""
from __future__ import annotations

import keras

from rsn_tf.training.schedules import build_schedule


@keras.saving.register_keras_serializable(package="rsn_tf")
class AdamL2(keras.optimizers.Adam):
    """Adam with coupled L2 weight decay (PyTorch ``Adam(weight_decay=l2)``), on all variables."""

    def __init__(self, l2: float = 0.0, **kwargs):
        super().__init__(**kwargs)
        self.l2 = float(l2)

    def update_step(self, gradient, variable, learning_rate):
        if self.l2:
            gradient = gradient + keras.ops.cast(self.l2, gradient.dtype) * keras.ops.cast(variable, gradient.dtype)
        return super().update_step(gradient, variable, learning_rate)

    def get_config(self):
        return {**super().get_config(), "l2": self.l2}


def effective_lr(opt_cfg, batch_size: int) -> float:
    """Peak lr after the linear batch-size rule (``lr * batch_size / base_batch_size``)."""
    if opt_cfg.base_batch_size:
        return opt_cfg.lr * batch_size / opt_cfg.base_batch_size
    return opt_cfg.lr


def build_optimizer(train_cfg, steps_per_epoch: int):
    """Keras optimizer with the configured schedule (call inside the strategy scope)."""
    opt = train_cfg.optimizer
    lr = build_schedule(train_cfg.schedule, effective_lr(opt, train_cfg.batch_size), steps_per_epoch, train_cfg.epochs)
    common = dict(learning_rate=lr, beta_1=opt.beta_1, beta_2=opt.beta_2, epsilon=opt.epsilon, clipnorm=opt.clipnorm)
    if opt.name == "adamw" or (opt.weight_decay and opt.weight_decay_mode == "decoupled"):
        return keras.optimizers.AdamW(weight_decay=opt.weight_decay, **common)
    return AdamL2(l2=opt.weight_decay, **common)
