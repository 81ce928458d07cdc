"""Training records as Keras callbacks: best/last ``.keras`` checkpoints, the loss-curve plot,
TensorBoard scalars, a clear NaN stop, BatchNorm statistics in step across replicas.

Both loops drive the same callbacks (``model.fit`` itself; the multi-worker loop through a
``keras.callbacks.CallbackList``), in the order :func:`rsn_tf.training.workdir.record_callbacks` gives.
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
from rsn_tf.training.step import non_finite_message


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
    """Writes ``last.keras`` every epoch and ``best.keras`` when ``monitor`` improves.

    ``mode``: ``min`` (lower is better, losses) or ``max`` (``val_AP``). Epochs where ``monitor`` is
    missing or not a finite number (``val_loss`` between validations with ``validation_freq: 10``,
    ``val_AP`` between evaluations) are not candidates: a training loss is never compared with a best
    val loss. (Without any validation, monitor ``loss``: ``rsn_tf.training.workdir.best_monitor``.)
    The best value so far is kept in ``state.json`` beside them, so a resumed run does not overwrite a
    better earlier ``best.keras``. Epochs with a non-finite loss are never saved.
    """

    def __init__(self, rsn_model, directory: str, metadata: dict, monitor: str = "val_loss", is_chief: bool = True,
                 mode: str = "min"):
        super().__init__()
        if mode not in ("min", "max"):
            raise ValueError(f"RSNCheckpoint: mode must be 'min' or 'max' (got {mode!r})")
        self.rsn = rsn_model
        self.directory = directory
        self.metadata = metadata
        self.monitor = monitor
        self.mode = mode
        self.is_chief = is_chief
        self.state_path = os.path.join(directory, "state.json")
        self.best = math.inf if mode == "min" else -math.inf
        if os.path.exists(self.state_path):
            state = io_utils.read_json(self.state_path)
            if state.get("monitor", monitor) == monitor and state.get("mode", "min") == mode:
                self.best = float(state.get("best", self.best))

    def _better(self, value: float) -> bool:
        return value < self.best if self.mode == "min" else value > self.best

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
        key = self.monitor
        value = logs.get(key)
        losses = {k: float(v) for k, v in logs.items() if _finite(v)}
        meta = {**self.metadata, "epoch": epoch + 1, "logs": losses}
        save_rsn(self.rsn, self.last_path, meta)
        if _finite(value) and self._better(float(value)):
            self.best = float(value)
            save_rsn(self.rsn, self.best_path, {**meta, "best": {"monitor": key, "mode": self.mode, "value": self.best}})
        io_utils.write_json(self.state_path, {"best": self.best, "monitor": self.monitor, "mode": self.mode,
                                              "last_epoch": epoch + 1})


class FiniteBackupAndRestore(keras.callbacks.BackupAndRestore):
    """``BackupAndRestore`` that never backs up weights from a step or epoch with a NaN/inf loss (Keras
    would: it runs ``on_epoch_end`` after ``TerminateOnNaN`` stops), so a rerun resumes from good weights.

    It restores in ``on_train_begin``, so it goes first in the callback list (before anything reads the
    model or optimizer state); :meth:`saver` gives the callback to put last, which writes the epoch's
    backup after every record of that epoch (a kill in between then repeats the epoch instead of
    losing its ``history.csv`` row).
    """

    _deferred = False

    def saver(self) -> keras.callbacks.Callback:
        """The callback that writes this backup at the end of an epoch (this one then no longer does)."""
        self._deferred = True
        return _EpochEndBackup(self)

    def on_epoch_end(self, epoch, logs=None):
        if not self._deferred:
            self.save_epoch_end(epoch, logs)

    def save_epoch_end(self, epoch, logs=None):
        if _finite((logs or {}).get("loss", 0.0)):
            super().on_epoch_end(epoch, logs)

    def on_train_batch_end(self, batch, logs=None):
        if _finite((logs or {}).get("loss", 0.0)):
            super().on_train_batch_end(batch, logs)


class _EpochEndBackup(keras.callbacks.Callback):
    def __init__(self, backup: FiniteBackupAndRestore):
        super().__init__()
        self.backup = backup

    def on_epoch_end(self, epoch, logs=None):
        self.backup.save_epoch_end(epoch, logs)


class SyncMovingStatistics(keras.callbacks.Callback):
    """Averages BatchNorm moving statistics over replicas at each epoch end (before checkpoints);
    see :func:`rsn_tf.training.distribute.sync_moving_statistics`."""

    def __init__(self, strategy, rsn_model):
        super().__init__()
        self.strategy, self.rsn = strategy, rsn_model

    def on_epoch_end(self, epoch, logs=None):
        from rsn_tf.training.distribute import sync_moving_statistics

        sync_moving_statistics(self.strategy, self.rsn)


def current_lr(optimizer) -> float | None:
    """The optimizer's learning rate now (its schedule at the current step), or None."""
    try:
        return float(keras.ops.convert_to_numpy(optimizer.learning_rate))
    except (AttributeError, TypeError, ValueError):
        return None


class LearningRateLog(keras.callbacks.Callback):
    """Adds ``learning_rate`` (the schedule's value after the epoch) to the epoch logs; put it before
    the CSV/TensorBoard loggers. ``optimizer``: default the trained model's."""

    def __init__(self, optimizer=None):
        super().__init__()
        self.optimizer = optimizer

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            lr = current_lr(self.optimizer or getattr(self.model, "optimizer", None))
            if lr is not None:
                logs["learning_rate"] = lr


class NaNStop(keras.callbacks.Callback):
    """Like ``keras.callbacks.TerminateOnNaN``, with a message that says where and what to try
    (:func:`rsn_tf.training.step.non_finite_message`).

    After training returns, ``message`` is set if training was stopped (the trainer then raises).
    ``optimizer``: for the lr in the message; default the trained model's.
    """

    def __init__(self, optimizer=None):
        super().__init__()
        self.optimizer = optimizer
        self.message = None
        self._epoch = 0

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None and not _finite(loss):
            lr = current_lr(self.optimizer or getattr(self.model, "optimizer", None))
            self.message = non_finite_message(loss, self._epoch, batch, lr)
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


# A val_loss this many times the epoch's training loss is BatchNorm's moving statistics trailing the
# weights (early epochs of a short, steep schedule), not the model's loss; see BatchNormLagCheck.
BN_LAG_RATIO = 10.0


def bn_lag_epochs(rows: list[dict]) -> list[dict]:
    """The history rows whose ``val_loss`` exceeds ``BN_LAG_RATIO`` x their ``loss``."""
    return [r for r in rows if _finite(r.get("val_loss")) and _finite(r.get("loss"))
            and r["val_loss"] > BN_LAG_RATIO * r["loss"]]


def plot_history(csv_path: str, png_path: str, title: str = "") -> str | None:
    """Plot loss (and val_loss) per epoch from the CSV log into ``png_path`` (log-scale y).

    A ``val_loss`` above ``BN_LAG_RATIO`` x the largest training loss (BatchNorm moving statistics
    not settled yet, :class:`BatchNormLagCheck`) would flatten every other point into a line: such
    points are drawn as open triangles on the top edge, labelled with their value.
    """
    rows = read_history(csv_path)
    if not rows:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4), dpi=100)
    epochs = [int(r["epoch"]) + 1 for r in rows]
    train = [r["loss"] for r in rows if _finite(r.get("loss")) and r["loss"] > 0]
    cap = BN_LAG_RATIO * max(train) if train else math.inf
    off = []
    for key, style in (("loss", "-o"), ("val_loss", "-s")):
        pts = [(e, r[key]) for e, r in zip(epochs, rows) if key in r and _finite(r[key]) and r[key] > 0]
        off += [p for p in pts if p[1] > cap]
        pts = [p for p in pts if p[1] <= cap]
        if pts:
            ax.plot([p[0] for p in pts], [p[1] for p in pts], style, ms=3, label=key)
    if off:
        ax.plot([p[0] for p in off], [cap] * len(off), "^", mfc="none", color="C1", ms=7,
                label=f"val_loss > {BN_LAG_RATIO:g}x loss (off scale):\nBatchNorm moving statistics not settled")
        for e, v in off:
            ax.annotate(f"{v:.3g}", (e, cap), textcoords="offset points", xytext=(4, -10), fontsize=7, color="C1")
        ax.set_ylim(top=cap * 1.5)
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("epoch")
    ax.set_ylabel("RSN loss (heatmap peak 255)")
    ax.set_yscale("log")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    if title:
        ax.set_title(title)
    fig.tight_layout()
    with io_utils.atomic_path(png_path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
    return png_path


class BatchNormLagCheck(keras.callbacks.Callback):
    """Explains a ``val_loss`` far above the training loss when BatchNorm's moving statistics cause it.

    ``val_loss`` is computed in inference mode: every BatchNorm layer normalises with its moving
    mean/variance, an average over the last ~10 steps (momentum 0.9), 12 % of it still the initial
    0/1 after 20 steps. Early in a short, steep schedule (the demo's warmup to lr 1e-2 inside its
    first 20 steps) the weights move faster than that average, the per-layer mismatch compounds over
    the ~100 BatchNorm layers, and ``val_loss`` comes out at 1e8-1e9 while the same weights with batch
    statistics score about the training loss. When an epoch's ``val_loss`` exceeds ``ratio`` x its
    ``loss``, this evaluates up to ``batches`` val batches with batch statistics (the moving
    statistics are put back afterwards) and prints both numbers, so nobody reads it as a bug; if the
    batch-statistics loss is also high, it says that instead. ``notes`` keeps (epoch, val_loss,
    batch-statistics loss).
    """

    def __init__(self, rsn_model, val_data, loss_fn, ratio: float = BN_LAG_RATIO, batches: int = 2):
        super().__init__()
        self.rsn, self.val_data, self.loss_fn, self.ratio, self.batches = rsn_model, val_data, loss_fn, ratio, batches
        self.notes: list[tuple[int, float, float]] = []

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        val, loss = logs.get("val_loss"), logs.get("loss")
        if not (_finite(val) and _finite(loss) and float(val) > self.ratio * float(loss)):
            return
        import numpy as np

        saved = [v.numpy() for v in self.rsn.non_trainable_variables]
        try:
            losses = [float(np.mean(self.loss_fn.per_sample(t, self.rsn(x, training=True))))
                      for x, t in self.val_data.take(self.batches)]
        finally:
            for v, value in zip(self.rsn.non_trainable_variables, saved):
                v.assign(value)
        if not losses:
            return
        batch_stats = float(np.mean(losses))
        self.notes.append((epoch, float(val), batch_stats))
        if batch_stats <= self.ratio * float(loss):
            print(f"\nnote: epoch {epoch + 1} val_loss {float(val):.4g} is inference-mode BatchNorm with moving "
                  f"statistics that still trail the weights; the same weights with batch statistics score "
                  f"{batch_stats:.1f} on {len(losses)} val batches (training loss {float(loss):.1f}). It settles as "
                  "training slows down; see docs/training.md, 'val_loss in the first epochs'.", flush=True)
        else:
            print(f"\nnote: epoch {epoch + 1} val_loss {float(val):.4g} is far above the training loss "
                  f"{float(loss):.1f}, with batch statistics too ({batch_stats:.1f}): not a BatchNorm-statistics "
                  "effect; check the val split.", flush=True)


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
