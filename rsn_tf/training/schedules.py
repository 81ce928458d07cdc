"""Learning-rate schedules of the references, as serialisable Keras schedules (spec section 6).

``WarmupLinearDecay`` (authors, ``lib/utils/solver.py``): the factor rises linearly from
``warmup_factor`` to 1 over ``warmup_steps`` optimizer steps, then falls linearly to 0 at
``total_steps``::

    f(i) = warmup_factor + (1 - warmup_factor) * i / warmup_steps      i <  warmup_steps
    f(i) = 1 - (i - warmup_steps) / (total_steps - warmup_steps)       i >= warmup_steps (>= 0)

``WarmupStepDecay`` (mmpose: ``LinearLR(start_factor, end=warmup)`` chained with ``MultiStepLR``):
``f(i) = warm(i) * gamma ** (number of boundaries <= i)`` with
``warm(i) = warmup_factor + (1 - warmup_factor) * min(i, warmup_steps) / warmup_steps``.

Both return ``base_lr * f(step)``; ``step`` is the optimizer's iteration count (0-based).
"""
from __future__ import annotations

import keras
from keras import ops


def _warm(step, warmup_steps: int, warmup_factor: float):
    if warmup_steps <= 0:
        return ops.ones_like(step)
    frac = ops.minimum(step / float(warmup_steps), 1.0)
    return warmup_factor + (1.0 - warmup_factor) * frac


@keras.saving.register_keras_serializable(package="rsn_tf")
class WarmupLinearDecay(keras.optimizers.schedules.LearningRateSchedule):
    """Authors' schedule: linear warmup from ``warmup_factor``x, then linear decay to 0 at ``total_steps``."""

    def __init__(self, base_lr: float, total_steps: int, warmup_steps: int = 0, warmup_factor: float = 0.1):
        if total_steps <= warmup_steps:
            raise ValueError(f"total_steps ({total_steps}) must exceed warmup_steps ({warmup_steps})")
        self.base_lr = float(base_lr)
        self.total_steps = int(total_steps)
        self.warmup_steps = int(warmup_steps)
        self.warmup_factor = float(warmup_factor)

    def __call__(self, step):
        step = ops.cast(step, "float32")
        warm = _warm(step, self.warmup_steps, self.warmup_factor)
        decay = 1.0 - (step - self.warmup_steps) / float(self.total_steps - self.warmup_steps)
        factor = ops.where(step < self.warmup_steps, warm, ops.maximum(decay, 0.0))
        return self.base_lr * factor

    def get_config(self):
        return {"base_lr": self.base_lr, "total_steps": self.total_steps,
                "warmup_steps": self.warmup_steps, "warmup_factor": self.warmup_factor}


@keras.saving.register_keras_serializable(package="rsn_tf")
class WarmupStepDecay(keras.optimizers.schedules.LearningRateSchedule):
    """mmpose's schedule: linear warmup from ``warmup_factor``x, times ``gamma`` at each boundary (steps)."""

    def __init__(self, base_lr: float, boundaries=(), gamma: float = 0.1, warmup_steps: int = 0,
                 warmup_factor: float = 0.001):
        self.base_lr = float(base_lr)
        self.boundaries = [int(b) for b in boundaries]
        if self.boundaries != sorted(self.boundaries):
            raise ValueError(f"step-decay boundaries must be increasing (got {self.boundaries})")
        self.gamma = float(gamma)
        self.warmup_steps = int(warmup_steps)
        self.warmup_factor = float(warmup_factor)

    def __call__(self, step):
        step = ops.cast(step, "float32")
        factor = _warm(step, self.warmup_steps, self.warmup_factor)
        for b in self.boundaries:
            factor = factor * ops.where(step >= float(b), self.gamma, 1.0)
        return self.base_lr * factor

    def get_config(self):
        return {"base_lr": self.base_lr, "boundaries": list(self.boundaries), "gamma": self.gamma,
                "warmup_steps": self.warmup_steps, "warmup_factor": self.warmup_factor}


def build_schedule(cfg, base_lr: float, steps_per_epoch: int, epochs: int):
    """The schedule a :class:`~rsn_tf.training.config.ScheduleConfig` describes."""
    if cfg.name == "warmup_linear":
        total = cfg.total_steps or steps_per_epoch * epochs
        if total <= cfg.warmup_steps:
            raise ValueError(f"train.schedule: total steps ({total}) must exceed warmup_steps ({cfg.warmup_steps}); "
                             "lower schedule.warmup_steps or train longer")
        return WarmupLinearDecay(base_lr, total, cfg.warmup_steps, cfg.warmup_factor)
    if cfg.name == "warmup_step":
        return WarmupStepDecay(base_lr, [m * steps_per_epoch for m in cfg.milestones], cfg.gamma,
                               cfg.warmup_steps, cfg.warmup_factor)
    if cfg.name == "constant":
        return WarmupStepDecay(base_lr, [], 1.0, cfg.warmup_steps, cfg.warmup_factor)
    raise ValueError(f"train.schedule.name: unknown schedule {cfg.name!r}")
