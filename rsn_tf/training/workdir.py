"""The training workdir, the same for every loop (``model.fit`` and the multi-worker loop).

Layout::

    config.yaml          the resolved experiment config (a rerun must match it to resume)
    backup/              fit: BackupAndRestore (weights + optimizer state + epoch)
    backup_mw/           multi-worker: tf.train.CheckpointManager (weights, optimizer, epoch, step in epoch)
    checkpoints/         last.keras, best.keras, state.json
    history.csv          one row per epoch (loss, val_loss, learning_rate[, val_AP ...])
    logs/                TensorBoard events (logs/train, logs/validation)
    loss_curve.png       the loss curves
    model.keras          the final model (written when training ends)

Here: the config check (:func:`prepare_workdir`), what a saved model carries
(:func:`experiment_metadata`), the epoch-record callbacks in their one order
(:func:`record_callbacks`), the data and step-count defaults, and the final save. Both loops call
these; the callbacks themselves are in :mod:`rsn_tf.training.callbacks`.
"""
from __future__ import annotations

import os
import sys

import keras
import yaml

from rsn_tf import io_utils
from rsn_tf.training.config import ExperimentConfig

CONFIG = "config.yaml"
BACKUP = "backup"
BACKUP_MW = "backup_mw"
CHECKPOINTS = "checkpoints"
HISTORY = "history.csv"
LOGS = "logs"
PLOT = "loss_curve.png"
FINAL = "model.keras"


def prepare_workdir(workdir: str, exp: ExperimentConfig, write: bool = True) -> None:
    """Create ``workdir``; refuse to resume a different experiment there (its backup would not fit);
    write ``config.yaml`` (only where ``write``: the chief, in a multi-worker run)."""
    os.makedirs(workdir, exist_ok=True)
    path = os.path.join(workdir, CONFIG)
    new = exp.to_dict()
    has_backup = any(os.path.isdir(os.path.join(workdir, d)) for d in (BACKUP, BACKUP_MW))
    if os.path.exists(path) and has_backup:
        with open(path) as f:
            old = yaml.safe_load(f) or {}
        changed = {k for k in ("model", "data") if old.get(k) != new.get(k)}
        if changed:
            raise ValueError(f"{workdir} holds a run of a different {'/'.join(sorted(changed))} config; "
                             f"use a new --workdir (or delete its {BACKUP}/ and {BACKUP_MW}/ to start over)")
    if write:
        io_utils.write_text(path, yaml.safe_dump(new, sort_keys=False))


def set_precision(policy: str) -> None:
    """The Keras global dtype policy for ``train.mixed_precision`` (``none`` = float32)."""
    keras.mixed_precision.set_global_policy("float32" if policy == "none" else policy)


def verbosity(train_cfg) -> int:
    """Keras progress output: the config's ``verbose``, else a bar on a terminal and one line per epoch otherwise."""
    if train_cfg.verbose is not None:
        return train_cfg.verbose
    return 1 if sys.stdout.isatty() else 2


def default_datasets(exp: ExperimentConfig, model_cfg, batch_size: int, validation: bool):
    """(train dataset repeated forever, val dataset or None, training instance count)."""
    from rsn_tf.data.pipeline import build_dataset, num_instances

    train = build_dataset(exp.data, model_cfg, split="train", batch_size=batch_size, seed=exp.train.seed,
                          shuffle=True, repeat=True)
    val = None
    if validation:
        val = build_dataset(exp.data, model_cfg, split="val", batch_size=batch_size, seed=exp.train.seed,
                            shuffle=False, repeat=False)
    return train, val, num_instances(exp.data, "train")


def steps_per_epoch_for(train_cfg, num_instances: int | None) -> int:
    """``train.steps_per_epoch``, else one pass over the training instances (rounded up)."""
    if train_cfg.steps_per_epoch:
        return train_cfg.steps_per_epoch
    if not num_instances:
        raise ValueError("train.steps_per_epoch is not set and the training set size is unknown")
    return max(1, -(-num_instances // train_cfg.batch_size))


def experiment_metadata(exp: ExperimentConfig, with_dataset_spec: bool = True) -> dict:
    """What a saved model carries about how it was trained (JSON).

    ``keypoints`` is the built-in layout name, or else the training set's whole keypoint spec
    (names, flip pairs, skeleton, OKS sigmas), so inference and evaluation of a model trained on a
    custom COCO-format set need nothing but the model file.
    """
    meta = {"experiment": exp.to_dict(), "trained_with": "rsn train", "recipe": exp.train.loss.mode}
    if exp.model.preset and exp.model.config is None:
        meta["preset"] = exp.model.preset
    if exp.data.keypoints:
        meta["keypoints"] = exp.data.keypoints
    elif with_dataset_spec:
        from rsn_tf.data.pipeline import load_instances

        try:
            meta["keypoints"] = load_instances(exp.data, "train").spec.to_dict()
        except (OSError, ValueError):  # e.g. tests that train on fake in-memory data
            pass
    if with_dataset_spec:
        from rsn_tf.provenance import dataset_note

        try:  # what the model can be trusted on (rsn infer/eval say it); cached read, no cost
            meta["trained_on"] = dataset_note(exp.data)
        except (OSError, ValueError):
            pass
    return meta


def best_monitor(exp: ExperimentConfig, validating: bool) -> tuple[str, str]:
    """(the logged key that picks ``best.keras``, ``"min"`` or ``"max"``).

    ``train.checkpoint.monitor`` (``val_loss`` falls back to ``loss`` without validation);
    ``mode: auto`` is ``max`` for the AP/AR keys of :class:`rsn_tf.evaluation.callback.EvaluationCallback`.
    """
    ck = exp.train.checkpoint
    monitor = ck.monitor
    if monitor == "val_loss" and not validating:
        monitor = "loss"
    mode = ck.mode
    if mode == "auto":
        mode = "max" if monitor.startswith(("val_AP", "val_AR")) else "min"
    return monitor, mode


def evaluation_callback(exp: ExperimentConfig, rsn):
    """The ``EvaluationCallback`` that ``train.evaluation`` asks for (COCO AP on the val split), or None."""
    ev = exp.train.evaluation
    if not ev.every:
        return None
    from rsn_tf.evaluation.callback import EvaluationCallback
    from rsn_tf.recipes import default_recipe

    ann, images = exp.data.split_paths("val")
    recipe = default_recipe(rsn.metadata) if ev.recipe == "auto" else ev.recipe
    return EvaluationCallback(ann, images, every=ev.every, boxes=ev.boxes, model=rsn, flip_test=ev.flip_test,
                              batch_size=ev.batch_size, recipe=recipe)


def record_callbacks(workdir: str, exp: ExperimentConfig, rsn, metadata: dict, *, optimizer, strategy,
                     validating: bool, chief: bool = True, extra=(), backup=None, bn_check=None) -> list:
    """The epoch callbacks of a training run, in the one order both loops use.

    1. ``NaNStop`` (stop at a NaN/inf batch loss), ``LearningRateLog`` (adds ``learning_rate``),
       ``SyncMovingStatistics`` (BatchNorm moving statistics averaged over replicas and workers),
       ``bn_check`` (a ``BatchNormLagCheck``: explains a val_loss far above the loss, if given);
    2. ``EvaluationCallback`` (``train.evaluation``: adds ``val_AP`` ...) and ``extra``: anything that
       adds to the epoch logs must come before the writers;
    3. the writers, on the chief only: ``CSVLogger`` (``history.csv``), ``ScalarLogger``
       (TensorBoard), ``RSNCheckpoint`` (``last.keras``, ``best.keras`` by ``train.checkpoint``),
       ``LossPlot``;
    4. ``backup`` (the resumable state) last, so an epoch is backed up only after it is recorded: a
       kill in between repeats the epoch's row (``read_history`` keeps the later one) instead of losing it.
       A backup that restores in ``on_train_begin`` (``FiniteBackupAndRestore``) also goes first, and
       its :meth:`saver` last.
    """
    from rsn_tf.training.callbacks import (LearningRateLog, LossPlot, NaNStop, RSNCheckpoint, ScalarLogger,
                                           SyncMovingStatistics)

    head, tail = [], []
    if backup is not None:
        head, tail = ([backup], [backup.saver()]) if hasattr(backup, "saver") else ([], [backup])
    callbacks = [*head, NaNStop(optimizer), LearningRateLog(optimizer), SyncMovingStatistics(strategy, rsn)]
    if bn_check is not None and chief:
        callbacks.append(bn_check)
    evaluation = evaluation_callback(exp, rsn) if chief else None
    callbacks += [cb for cb in (evaluation, *extra) if cb is not None]
    if chief:
        history = os.path.join(workdir, HISTORY)
        monitor, mode = best_monitor(exp, validating)
        callbacks += [keras.callbacks.CSVLogger(history, append=True),
                      ScalarLogger(os.path.join(workdir, LOGS)),
                      RSNCheckpoint(rsn, os.path.join(workdir, CHECKPOINTS), metadata, monitor=monitor, mode=mode),
                      LossPlot(history, os.path.join(workdir, PLOT), title=exp.name or exp.model_config().block)]
    return callbacks + tail


def save_final(rsn, workdir: str, metadata: dict, epochs: int, chief: bool = True, scratch: str | None = None,
               **extra) -> str:
    """Write the final model (``WORKDIR/model.keras``; a non-chief worker writes into ``scratch``)."""
    from rsn_tf.training.callbacks import save_rsn

    path = os.path.join(workdir if chief else scratch, FINAL)
    return save_rsn(rsn, path, {**metadata, "epoch": epochs, **extra})
