"""Learning-rate schedules of the references, as serialisable Keras schedules (the
hyper-parameters of each recipe are in ``configs/`` and ``docs/training.md``).

``WarmupLinearDecay`` (authors: ``LambdaLR`` of ``lib/utils/solver.py``): the factor rises linearly
from ``warmup_factor`` to 1 over ``warmup_steps`` optimizer steps, then falls linearly to 0 at
``total_steps``::

    lam(j) = warmup_factor + (1 - warmup_factor) * j / warmup_steps     j <  warmup_steps
    lam(j) = 1 - (j - warmup_steps) / (total_steps - warmup_steps)      j >= warmup_steps (>= 0)
    f(i)   = lam(i + offset)

The authors call ``scheduler.step()`` *before* ``optimizer.step()`` in every iteration, so their
optimizer step i (0-based) runs at ``lam(i + 1)`` (``offset=1``, the default): the first step is at
``warmup_factor + (1 - warmup_factor) / warmup_steps``, the last at 0.

``WarmupStepDecay`` (mmpose: mmengine's ``LinearLR(start_factor, begin=0, end=warmup_steps,
by_epoch=False)`` chained with ``MultiStepLR``): ``f(i) = warm(i) * gamma ** (boundaries <= i)`` with::

    warm(i) = warmup_factor + (1 - warmup_factor) * min(i, warmup_steps - 1) / (warmup_steps - 1)

exactly as mmengine steps it per iteration: the start factor already applies at step 0 (the
scheduler's constructor sets it), ``sched.step()`` follows every ``train_step``, and its
denominator is ``end - begin - 1``, so the lr reaches the base value at step ``warmup_steps - 1``
(e.g. mmpose's 2e-2 x (0.001, 0.003, ...) at steps 0, 1, ... with ``end=500``: step k is at
``0.001 + 0.999 k / 499``).

Both return ``base_lr * f(step)``; ``step`` is the optimizer's iteration count (0-based), the
value Keras passes when it applies step ``step``.
"""
from __future__ import annotations

import keras
from keras import ops


def _warm(step, warmup_steps: int, warmup_factor: float, denominator: int):
    if warmup_steps <= 0:
        return ops.ones_like(step)
    frac = ops.minimum(step / float(denominator), 1.0)
    return warmup_factor + (1.0 - warmup_factor) * frac


@keras.saving.register_keras_serializable(package="rsn_tf")
class WarmupLinearDecay(keras.optimizers.schedules.LearningRateSchedule):
    """Authors' schedule: linear warmup from ``warmup_factor``x, then linear decay to 0 at ``total_steps``
    (evaluated at ``step + offset``; module docstring)."""

    def __init__(self, base_lr: float, total_steps: int, warmup_steps: int = 0, warmup_factor: float = 0.1,
                 offset: int = 1):
        if total_steps <= warmup_steps:
            raise ValueError(f"total_steps ({total_steps}) must exceed warmup_steps ({warmup_steps})")
        self.base_lr = float(base_lr)
        self.total_steps = int(total_steps)
        self.warmup_steps = int(warmup_steps)
        self.warmup_factor = float(warmup_factor)
        self.offset = int(offset)

    def __call__(self, step):
        step = ops.cast(step, "float32") + float(self.offset)
        warm = _warm(step, self.warmup_steps, self.warmup_factor, self.warmup_steps)
        decay = 1.0 - (step - self.warmup_steps) / float(self.total_steps - self.warmup_steps)
        factor = ops.where(step < self.warmup_steps, warm, ops.maximum(decay, 0.0))
        return self.base_lr * factor

    def get_config(self):
        return {"base_lr": self.base_lr, "total_steps": self.total_steps,
                "warmup_steps": self.warmup_steps, "warmup_factor": self.warmup_factor, "offset": self.offset}


@keras.saving.register_keras_serializable(package="rsn_tf")
class WarmupStepDecay(keras.optimizers.schedules.LearningRateSchedule):
    """mmpose's schedule: mmengine's per-iteration linear warmup from ``warmup_factor``x (module
    docstring), times ``gamma`` at each boundary (steps)."""

    def __init__(self, base_lr: float, boundaries=(), gamma: float = 0.1, warmup_steps: int = 0,
                 warmup_factor: float = 0.001):
        if warmup_steps == 1:
            raise ValueError("warmup_steps=1 is degenerate in mmengine's LinearLR (end - begin - 1 = 0: the lr "
                             "would stay at warmup_factor); use 0 (no warmup) or >= 2")
        self.base_lr = float(base_lr)
        self.boundaries = [int(b) for b in boundaries]
        if self.boundaries != sorted(self.boundaries):
            raise ValueError(f"step-decay boundaries must be increasing (got {self.boundaries})")
        self.gamma = float(gamma)
        self.warmup_steps = int(warmup_steps)
        self.warmup_factor = float(warmup_factor)

    def __call__(self, step):
        step = ops.cast(step, "float32")
        factor = _warm(step, self.warmup_steps, self.warmup_factor, self.warmup_steps - 1)
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
