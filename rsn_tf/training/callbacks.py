"""Training records: best/last ``.keras`` checkpoints, the loss-curve plot, a clear NaN stop.

The checkpoints are the plain :class:`~rsn_tf.model.RSNModel` (not the training wrapper) with the
experiment config, epoch and losses in ``model.metadata``, so ``keras.models.load_model`` of the file
alone gives a usable model and everything needed to evaluate it.
"""
from __future__ import annotations

import csv
import math
import os

import keras

from rsn_tf import io_utils


def save_rsn(rsn_model, path: str, metadata: dict) -> str:
    """Atomically save ``rsn_model`` to ``path`` (``.keras``) with ``metadata`` merged in."""
    old = rsn_model.metadata
    rsn_model.metadata = {**old, **metadata}
    try:
        with io_utils.atomic_path(path) as tmp:
            rsn_model.save(tmp)
    finally:
        rsn_model.metadata = old
    return path


def _finite(value) -> bool:
    try:
        return math.isfinite(float(value))
    except (TypeError, ValueError):
        return False


class RSNCheckpoint(keras.callbacks.Callback):
    """Writes ``last.keras`` every epoch and ``best.keras`` when ``monitor`` improves (lower is better).

    The best value so far is kept in ``state.json`` beside them, so a resumed run does not overwrite
    a better earlier ``best.keras``. Epochs with a non-finite loss are never saved.
    """

    def __init__(self, rsn_model, directory: str, metadata: dict, monitor: str = "val_loss", is_chief: bool = True):
        super().__init__()
        self.rsn = rsn_model
        self.directory = directory
        self.metadata = metadata
        self.monitor = monitor
        self.is_chief = is_chief
        self.state_path = os.path.join(directory, "state.json")
        self.best = math.inf
        if os.path.exists(self.state_path):
            self.best = float(io_utils.read_json(self.state_path).get("best", math.inf))

    @property
    def last_path(self) -> str:
        return os.path.join(self.directory, "last.keras")

    @property
    def best_path(self) -> str:
        return os.path.join(self.directory, "best.keras")

    def on_epoch_end(self, epoch, logs=None):
        logs = dict(logs or {})
        if not _finite(logs.get("loss")) or not self.is_chief:
            return
        value = logs.get(self.monitor, logs.get("loss"))
        losses = {k: float(v) for k, v in logs.items() if _finite(v)}
        meta = {**self.metadata, "epoch": epoch + 1, "logs": losses}
        save_rsn(self.rsn, self.last_path, meta)
        if _finite(value) and float(value) < self.best:
            self.best = float(value)
            save_rsn(self.rsn, self.best_path, {**meta, "best": {"monitor": self.monitor if self.monitor in logs else "loss",
                                                                 "value": self.best}})
        io_utils.write_json(self.state_path, {"best": self.best, "monitor": self.monitor, "last_epoch": epoch + 1})


class FiniteBackupAndRestore(keras.callbacks.BackupAndRestore):
    """``BackupAndRestore`` that never backs up weights from a step or epoch with a NaN/inf loss (Keras
    would: it runs ``on_epoch_end`` after ``TerminateOnNaN`` stops), so a rerun resumes from good weights."""

    def on_epoch_end(self, epoch, logs=None):
        if _finite((logs or {}).get("loss", 0.0)):
            super().on_epoch_end(epoch, logs)

    def on_train_batch_end(self, batch, logs=None):
        if _finite((logs or {}).get("loss", 0.0)):
            super().on_train_batch_end(batch, logs)


class SyncMovingStatistics(keras.callbacks.Callback):
    """Averages BatchNorm moving statistics over replicas at each epoch end (before checkpoints);
    see :func:`rsn_tf.training.distribute.sync_moving_statistics`."""

    def __init__(self, strategy, rsn_model):
        super().__init__()
        self.strategy, self.rsn = strategy, rsn_model

    def on_epoch_end(self, epoch, logs=None):
        from rsn_tf.training.distribute import sync_moving_statistics

        sync_moving_statistics(self.strategy, self.rsn)


class LearningRateLog(keras.callbacks.Callback):
    """Adds ``learning_rate`` (the schedule's value after the epoch) to the epoch logs; put it before
    the CSV/TensorBoard loggers."""

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            try:
                logs["learning_rate"] = float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))
            except (AttributeError, TypeError, ValueError):
                pass


class NaNStop(keras.callbacks.Callback):
    """Like ``keras.callbacks.TerminateOnNaN``, with a message that says where and what to try.

    After ``fit`` returns, ``message`` is set if training was stopped (the trainer then raises).
    """

    def __init__(self):
        super().__init__()
        self.message = None
        self._epoch = 0

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None and not _finite(loss):
            lr = None
            try:
                opt = self.model.optimizer
                lr = float(keras.ops.convert_to_numpy(opt.learning_rate))
            except Exception:  # the lr is only for the message
                pass
            self.message = (
                f"training stopped: the loss became {float(loss)} at epoch {self._epoch + 1}, batch {batch + 1}"
                + (f" (learning rate {lr:.3g})" if lr is not None else "")
                + ". Nothing from this epoch was saved; the last good weights are in the workdir's checkpoints/last.keras"
                " and backup/. Try a lower train.optimizer.lr or longer schedule.warmup_steps, mixed_bfloat16"
                " instead of mixed_float16, and check the data (rsn_tf targets must be finite, peak 255).")
            print("\n" + self.message, flush=True)
            self.model.stop_training = True


def _to_float(v) -> float:
    try:
        return float(v)
    except (TypeError, ValueError):  # "NA": Keras' CSVLogger placeholder for epochs without validation
        return math.nan


def read_history(csv_path: str) -> list[dict]:
    """Rows of a Keras ``CSVLogger`` file as dicts of floats, one per epoch (a resumed run's repeats:
    the later row wins)."""
    if not os.path.exists(csv_path):
        return []
    rows = {}
    with open(csv_path, newline="") as f:
        for row in csv.DictReader(f):
            try:
                epoch = int(float(row["epoch"]))
            except (KeyError, ValueError):
                continue
            rows[epoch] = {k: _to_float(v) for k, v in row.items() if k}
    return [rows[e] for e in sorted(rows)]


def plot_history(csv_path: str, png_path: str, title: str = "") -> str | None:
    """Plot loss (and val_loss) per epoch from the CSV log into ``png_path`` (log-scale y)."""
    rows = read_history(csv_path)
    if not rows:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4), dpi=100)
    epochs = [int(r["epoch"]) + 1 for r in rows]
    for key, style in (("loss", "-o"), ("val_loss", "-s")):
        pts = [(e, r[key]) for e, r in zip(epochs, rows) if key in r and _finite(r[key]) and r[key] > 0]
        if pts:
            ax.plot([p[0] for p in pts], [p[1] for p in pts], style, ms=3, label=key)
    ax.set_xlabel("epoch")
    ax.set_ylabel("RSN loss (heatmap peak 255)")
    ax.set_yscale("log")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    if title:
        ax.set_title(title)
    fig.tight_layout()
    with io_utils.atomic_path(png_path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
    return png_path


class LossPlot(keras.callbacks.Callback):
    """Redraws ``loss_curve.png`` from the CSV log after every epoch (so a resumed run's plot is whole).

    Must come after the ``CSVLogger`` in the callback list.
    """

    def __init__(self, csv_path: str, png_path: str, title: str = "", is_chief: bool = True):
        super().__init__()
        self.csv_path, self.png_path, self.title, self.is_chief = csv_path, png_path, title, is_chief

    def on_epoch_end(self, epoch, logs=None):
        if self.is_chief:
            plot_history(self.csv_path, self.png_path, self.title)


class ScalarLogger(keras.callbacks.Callback):
    """TensorBoard scalars per epoch (``logs/train``, ``logs/validation``; tags ``epoch_loss`` etc.,
    the layout of Keras' ``TensorBoard`` callback).

    Writes the event files with ``tf.summary.write`` and the scalars-plugin metadata, so it needs no
    ``tensorboard`` package (``tensorflow-cpu`` does not install it, and Keras' callback then fails);
    ``tensorboard --logdir WORKDIR/logs`` reads them.
    """

    def __init__(self, log_dir: str, is_chief: bool = True):
        super().__init__()
        self.log_dir = log_dir
        self.is_chief = is_chief
        self._writers = {}

    def _writer(self, name):
        import tensorflow as tf

        if name not in self._writers:
            self._writers[name] = tf.summary.create_file_writer(os.path.join(self.log_dir, name))
        return self._writers[name]

    def log(self, epoch: int, logs: dict) -> None:
        if not self.is_chief:
            return
        import tensorflow as tf
        from tensorflow.core.framework import summary_pb2

        meta = summary_pb2.SummaryMetadata(plugin_data=summary_pb2.SummaryMetadata.PluginData(plugin_name="scalars"))
        for split in ("train", "validation"):
            items = {(k[4:] if split == "validation" else k): v for k, v in logs.items()
                     if k.startswith("val_") == (split == "validation") and _finite(v)}
            if not items:
                continue
            with self._writer(split).as_default():
                for k, v in items.items():
                    tf.summary.write(f"epoch_{k}", tf.constant(float(v), tf.float32), step=epoch, metadata=meta)
            self._writer(split).flush()

    def on_epoch_end(self, epoch, logs=None):
        self.log(epoch, dict(logs or {}))

    def on_train_end(self, logs=None):
        for w in self._writers.values():
            w.close()
        self._writers = {}
