"""The optimizer: PyTorch's Adam (the references' ``torch.optim.Adam``) in Keras, or Keras' own AdamW.

Both references train with ``torch.optim.Adam``; two details differ from ``keras.optimizers.Adam``:

* **Weight decay.** ``torch.optim.Adam(weight_decay=wd)`` *adds* ``wd * w`` to every gradient
  before the moments (coupled L2; the authors use 1e-5 on every parameter, BatchNorm included,
  mmpose 0). Keras' ``Adam(weight_decay=...)`` is *decoupled* (``w -= lr * wd * w``, i.e. AdamW),
  a different optimizer.
* **Epsilon placement.** PyTorch divides by ``sqrt(v_t / (1 - beta2^t)) + eps``: epsilon is added
  to the *bias-corrected* root. Keras folds the bias correction into the step size and adds
  epsilon to the raw ``sqrt(v_t)``, so its epsilon is in effect ``eps * sqrt(1 - beta2^t)``
  (0.03 eps at step 1, 0.3 eps at step 100). The two agree for gradients far above eps; they
  differ where ``|g| ~ eps`` (e.g. the ~0.3% of elements whose gradient is ~0 at a step).

:class:`AdamL2` does both as PyTorch (``epsilon_mode="torch"``, the default); ``optimizer.epsilon_mode:
keras`` keeps Keras' placement, and ``weight_decay_mode: decoupled`` (or ``name: adamw``) selects
Keras' ``AdamW``.
"""
from __future__ import annotations

import keras
from keras import ops

from rsn_tf.training.schedules import build_schedule

EPSILON_MODES = ("torch", "keras")


@keras.saving.register_keras_serializable(package="rsn_tf")
class AdamL2(keras.optimizers.Adam):
    """``torch.optim.Adam`` (``amsgrad=False``): coupled L2 weight decay ``l2`` on all variables and
    PyTorch's epsilon placement (``epsilon_mode="torch"``), or Keras' (``"keras"``).

    Per variable, at optimizer step t = 1, 2, ... (``iterations + 1``)::

        g = grad + l2 * w
        m = m + (g - m) * (1 - beta_1);   v = v + (g^2 - v) * (1 - beta_2)
        torch:  w -= lr / (1 - beta_1^t) * m / (sqrt(v) / sqrt(1 - beta_2^t) + eps)
        keras:  w -= lr * sqrt(1 - beta_2^t) / (1 - beta_1^t) * m / (sqrt(v) + eps)

    The slots are Keras Adam's (same variables, so checkpoints of either mode restore into the other).
    """

    def __init__(self, l2: float = 0.0, epsilon_mode: str = "torch", **kwargs):
        super().__init__(**kwargs)
        if epsilon_mode not in EPSILON_MODES:
            raise ValueError(f"epsilon_mode must be one of {list(EPSILON_MODES)} (got {epsilon_mode!r})")
        self.l2 = float(l2)
        self.epsilon_mode = epsilon_mode

    def update_step(self, gradient, variable, learning_rate):
        if self.l2:
            gradient = ops.cast(gradient, variable.dtype) + ops.cast(self.l2, variable.dtype) * variable
        if self.epsilon_mode == "keras" or self.amsgrad:
            return super().update_step(gradient, variable, learning_rate)
        dtype = variable.dtype
        gradient = ops.cast(gradient, dtype)
        # Bias corrections in float64, as PyTorch computes them (Python floats): 1 - 0.999^t in float32
        # is off by 1.3e-5 (relative) at t = 1, which would scale every early step by that much.
        step = ops.cast(self.iterations + 1, "float64")
        bias1 = 1.0 - ops.power(ops.convert_to_tensor(float(self.beta_1), dtype="float64"), step)
        bias2 = 1.0 - ops.power(ops.convert_to_tensor(float(self.beta_2), dtype="float64"), step)
        step_size = ops.cast(ops.cast(learning_rate, "float64") / bias1, dtype)
        bias2_sqrt = ops.cast(ops.sqrt(bias2), dtype)
        index = self._get_variable_index(variable)
        m, v = self._momentums[index], self._velocities[index]
        self.assign_add(m, ops.multiply(ops.subtract(gradient, m), 1 - self.beta_1))
        self.assign_add(v, ops.multiply(ops.subtract(ops.square(gradient), v), 1 - self.beta_2))
        denom = ops.add(ops.divide(ops.sqrt(v), bias2_sqrt), ops.cast(self.epsilon, dtype))
        self.assign_sub(variable, ops.multiply(step_size, ops.divide(m, denom)))

    def first_moment(self, variable):
        """The first-moment slot ``m`` of ``variable`` (after step 1: ``(1 - beta_1) * (grad + l2 * w)``)."""
        return self._momentums[self._get_variable_index(variable)]

    def get_config(self):
        return {**super().get_config(), "l2": self.l2, "epsilon_mode": self.epsilon_mode}


def effective_lr(opt_cfg, batch_size: int) -> float:
    """Peak lr after the linear batch-size rule (``lr * batch_size / base_batch_size``).

    Without ``base_batch_size`` the lr is used as given, which is what mmpose does unless training
    is started with ``--auto-scale-lr``.
    """
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
    return AdamL2(l2=opt.weight_decay, epsilon_mode=opt.epsilon_mode, **common)
