"""Learning-rate schedules: values at warmup start/end, mid-decay, end; step decay; serialisation."""
import keras
import numpy as np
import pytest

from rsn_tf.training.schedules import WarmupLinearDecay, WarmupStepDecay, build_schedule
from rsn_tf.training.config import ScheduleConfig


def _at(s, steps):
    return [float(s(i)) for i in steps]


def test_warmup_linear_decay_values():
    s = WarmupLinearDecay(2.0, total_steps=110, warmup_steps=10, warmup_factor=0.1, offset=0)
    # warmup 0.2 -> 2.0 (f = 0.1 + 0.9 i/10), then 2.0 * (1 - (i-10)/100) down to 0, clamped after
    np.testing.assert_allclose(_at(s, [0, 5, 10, 60, 110, 200]), [0.2, 1.1, 2.0, 1.0, 0.0, 0.0], atol=1e-6)
    # The authors step their scheduler before the optimizer: step i runs at f(i + 1) (the default).
    a = WarmupLinearDecay(2.0, total_steps=110, warmup_steps=10, warmup_factor=0.1)
    np.testing.assert_allclose(_at(a, [0, 4, 9, 59, 109]), [0.38, 1.1, 2.0, 1.0, 0.0], atol=1e-6)


def test_warmup_step_decay_values():
    s = WarmupStepDecay(1.0, boundaries=[20, 40], gamma=0.1, warmup_steps=10, warmup_factor=0.001)
    np.testing.assert_allclose(_at(s, [0, 10, 19, 20, 39, 40, 1000]), [0.001, 1, 1, 0.1, 0.1, 0.01, 0.01], rtol=1e-5)
    # mmengine's LinearLR reaches the base lr at step warmup_steps - 1 (denominator end - begin - 1)
    assert float(s(9)) == pytest.approx(1.0) and float(s(1)) == pytest.approx(0.001 + 0.999 / 9)


def test_schedules_serialise_and_build_from_config():
    for s in (WarmupLinearDecay(1e-3, 100, 10), WarmupStepDecay(1e-3, [5], 0.5, 2, 0.01)):
        back = keras.optimizers.schedules.deserialize(keras.optimizers.schedules.serialize(s))
        assert type(back) is type(s) and _at(back, [0, 7, 50]) == pytest.approx(_at(s, [0, 7, 50]))
    lin = build_schedule(ScheduleConfig(name="warmup_linear", warmup_steps=4), 1.0, steps_per_epoch=10, epochs=3)
    assert lin.total_steps == 30
    step = build_schedule(ScheduleConfig(name="warmup_step", milestones=(2,), gamma=0.5), 1.0, 10, 3)
    assert step.boundaries == [20] and float(step(25)) == pytest.approx(0.5)
    with pytest.raises(ValueError, match="warmup_steps"):
        build_schedule(ScheduleConfig(name="warmup_linear", warmup_steps=50), 1.0, 10, 3)
