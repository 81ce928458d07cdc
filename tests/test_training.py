"""model.fit training on a fake dataset: artifacts, resume after an interruption, NaN stop."""
import math
import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from helpers.tiny import scalar_tags, tiny_experiment
from rsn_tf.training.callbacks import NaNStop, read_history
from rsn_tf.training.config import resolve_experiment
from rsn_tf.training.fake_data import fake_dataset
from rsn_tf.training.trainer import train_experiment


class _Interrupt(keras.callbacks.Callback):
    """Simulates a crash at the start of epoch ``at`` (after the previous epoch's backup)."""

    def __init__(self, at):
        super().__init__()
        self.at = at

    def on_epoch_begin(self, epoch, logs=None):
        if epoch == self.at:
            raise RuntimeError("simulated crash")


class _Count(keras.callbacks.Callback):
    def on_train_begin(self, logs=None):
        self.start_iterations = int(self.model.optimizer.iterations.numpy())
        self.batches = 0

    def on_train_batch_end(self, batch, logs=None):
        self.batches += 1


def test_fit_resume_and_artifacts(tmp_path):
    import rsn_tf.model  # noqa: F401  (registers RSNModel for load_model)

    exp = resolve_experiment(tiny_experiment(epochs=3, schedule={"name": "warmup_linear", "warmup_steps": 2}))
    cfg = exp.model_config()

    def datasets(batch_size):
        return fake_dataset(cfg, batch_size, n=8), fake_dataset(cfg, batch_size, n=4, seed=1, repeat=False), None

    wd = str(tmp_path / "run")
    with pytest.raises(RuntimeError, match="simulated crash"):
        train_experiment(exp, wd, datasets=datasets, extra_callbacks=[_Interrupt(at=1)])
    assert [int(r["epoch"]) for r in read_history(os.path.join(wd, "history.csv"))] == [0]
    assert not os.path.exists(os.path.join(wd, "model.keras"))

    count = _Count()
    final = train_experiment(exp, wd, datasets=datasets, extra_callbacks=[count])
    # resumed after epoch 1 with the optimizer state (2 steps done), not from scratch
    assert count.start_iterations == 2 and count.batches == 4

    rows = read_history(os.path.join(wd, "history.csv"))
    assert [int(r["epoch"]) for r in rows] == [0, 1, 2]
    assert all(math.isfinite(r["loss"]) and math.isfinite(r["val_loss"]) for r in rows)
    assert rows[-1]["learning_rate"] < rows[0]["learning_rate"]  # linear decay toward 0
    assert final == os.path.join(wd, "model.keras")
    for name in ("loss_curve.png", "config.yaml", "checkpoints/last.keras", "checkpoints/best.keras"):
        assert os.path.getsize(os.path.join(wd, name)) > 0, name
    assert {"train/epoch_loss", "validation/epoch_loss", "train/epoch_learning_rate"} <= scalar_tags(os.path.join(wd, "logs"))

    model = keras.models.load_model(final)
    assert type(model).__name__ == "RSNModel" and len(model.outputs) == 4
    assert model.metadata["experiment"]["name"] == "tiny" and model.metadata["epoch"] == 3
    last = keras.models.load_model(os.path.join(wd, "checkpoints", "last.keras"))
    assert last.metadata["epoch"] == 3 and "val_loss" in last.metadata["logs"]
    x = np.zeros((1, 64, 64, 3), np.float32)
    np.testing.assert_allclose(model(x)[-1], last(x)[-1], atol=1e-5)

    # a different model in the same workdir is refused (its backup would not fit)
    with pytest.raises(ValueError, match="different model"):
        train_experiment(resolve_experiment(exp, ["model.overrides.unit_channels=16"]), wd, datasets=datasets)


def test_nan_stop_message(tmp_path):
    from rsn_tf.training.callbacks import FiniteBackupAndRestore

    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="mse", jit_compile=False)
    x = np.array([[1.0, np.nan], [1.0, 2.0]], np.float32)
    stop = NaNStop()
    backup = FiniteBackupAndRestore(str(tmp_path / "backup"), delete_checkpoint=False)
    hist = model.fit(x, np.ones((2, 1)), epochs=3, batch_size=2, verbose=0, callbacks=[stop, backup])
    assert len(hist.history["loss"]) == 1
    assert not os.path.exists(tmp_path / "backup" / "latest.weights.h5")  # NaN weights are not backed up
    assert stop.message.startswith("training stopped: the loss became nan at epoch 1, batch 1")
    assert "lower train.optimizer.lr" in stop.message


def test_mixed_precision_policies():
    from keras.optimizers import LossScaleOptimizer

    from rsn_tf.model import build_rsn
    from rsn_tf.training.trainer import RSNTrainer, set_precision

    cfg = resolve_experiment(tiny_experiment(), ["model.input_size=[32,32]"]).model_config()
    images, targets = next(iter(fake_dataset(cfg, 1, n=1)))
    try:
        set_precision("mixed_bfloat16")
        trainer = RSNTrainer(build_rsn(cfg))
        trainer.compile(optimizer=keras.optimizers.Adam(1e-3), jit_compile=False)
        assert trainer.rsn.outputs[-1].dtype == "bfloat16" and trainer.rsn.weights[0].dtype == "float32"
        with tf.GradientTape() as tape:  # eager: the compiled step's tracing would dominate this test
            loss = trainer.compute_loss(y=targets, y_pred=trainer(images, training=True))
        grads = tape.gradient(loss, trainer.trainable_variables)
        assert loss.dtype == tf.float32 and math.isfinite(float(loss))
        assert all(g.dtype == tf.float32 and np.isfinite(g.numpy()).all() for g in grads)
        set_precision("mixed_float16")
        trainer = RSNTrainer(build_rsn(cfg))
        trainer.compile(optimizer=keras.optimizers.Adam(1e-3), jit_compile=False)
        assert isinstance(trainer.optimizer, LossScaleOptimizer)  # dynamic loss scaling for float16
    finally:
        set_precision("none")


def test_read_history_handles_missing_validation(tmp_path):
    p = tmp_path / "h.csv"
    p.write_text("epoch,loss,val_loss\n0,5.0,NA\n1,4.0,NA\n1,3.5,NA\n")  # epoch 1 repeated by a resume
    rows = read_history(str(p))
    assert [r["loss"] for r in rows] == [5.0, 3.5] and math.isnan(rows[0]["val_loss"])
