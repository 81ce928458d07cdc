"""Train an RSN with ``keras`` ``model.fit``: strategy, model, optimizer, callbacks, saved artifacts.

Data flow: ``(images [B,H,W,3], targets)`` batches from :func:`rsn_tf.data.pipeline.build_dataset`
-> :class:`RSNTrainer` (the RSN + its loss) -> ``fit`` -> ``WORKDIR/model.keras`` (a plain
``RSNModel`` whose ``metadata`` holds the experiment config).

Workdir layout::

    config.yaml          the resolved experiment config (a rerun must match it to resume)
    backup/              BackupAndRestore: weights + optimizer state + epoch (resume after a kill)
    checkpoints/         last.keras, best.keras, state.json
    history.csv          one row per epoch (loss, val_loss, learning_rate)
    logs/                TensorBoard events
    loss_curve.png       the loss curves
    model.keras          the final model (written when training ends)
"""
from __future__ import annotations

import os
import sys

import keras
import yaml

from rsn_tf import io_utils
from rsn_tf.losses import LossConfig, rsn_loss
from rsn_tf.training.config import ExperimentConfig, resolve_experiment
from rsn_tf.training.distribute import choose_distribution, make_strategy, scale_for_replicas


class TrainingDivergedError(ValueError):
    """The loss became NaN/inf; the message says where and what to try."""


@keras.saving.register_keras_serializable(package="rsn_tf")
class RSNTrainer(keras.Model):
    """Training wrapper: ``call`` is the RSN, ``compute_loss`` the RSN loss on the targets dict.

    Only for ``fit``/``evaluate``; save ``trainer.rsn`` (the plain :class:`RSNModel`), not this.
    The loss is divided by the number of replicas in sync: Keras sums the replicas' gradients, so
    each replica must contribute ``local mean / replicas`` for the gradient of the global mean.
    """

    def __init__(self, rsn, loss_config: LossConfig = LossConfig(), **kwargs):
        kwargs.setdefault("name", "rsn_trainer")
        super().__init__(**kwargs)
        self.rsn = rsn
        self.loss_config = loss_config

    def build(self, input_shape=None):
        self.built = True

    def call(self, images, training=False):
        return self.rsn(images, training=training)

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        return scale_for_replicas(rsn_loss(y_pred, y, self.loss_config))


def set_precision(policy: str) -> None:
    keras.mixed_precision.set_global_policy("float32" if policy == "none" else policy)


# ----------------------------------------------------------------------------------------- data
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


def _check_workdir(workdir: str, exp: ExperimentConfig) -> None:
    """Refuse to resume a different experiment in the same workdir (its backup would not fit)."""
    path = os.path.join(workdir, "config.yaml")
    new = exp.to_dict()
    if os.path.exists(path) and os.path.isdir(os.path.join(workdir, "backup")):
        with open(path) as f:
            old = yaml.safe_load(f)
        changed = {k for k in ("model", "data") if old.get(k) != new.get(k)}
        if changed:
            raise ValueError(f"{workdir} holds a run of a different {'/'.join(sorted(changed))} config; "
                             "use a new --workdir (or delete its backup/ to start over)")
    io_utils.write_text(path, yaml.safe_dump(new, sort_keys=False))


def _verbose(train_cfg) -> int:
    if train_cfg.verbose is not None:
        return train_cfg.verbose
    return 1 if sys.stdout.isatty() else 2


# ----------------------------------------------------------------------------------------- fit
def train_experiment(config, workdir: str, overrides: list[str] | None = None, *, datasets=None,
                     extra_callbacks=None) -> str:
    """Train an experiment; returns the path of the final ``WORKDIR/model.keras``.

    Args:
      config: a YAML path, an :class:`ExperimentConfig` or its dict.
      workdir: output folder (see module docstring). Rerunning the same call resumes from
        ``workdir/backup``.
      overrides: ``["train.epochs=3", ...]`` applied to ``config``.
      datasets: optional ``(train, val_or_None, num_train_instances_or_None)``, or a function
        ``fn(batch_size) -> that tuple``, used instead of the data config (tests). ``train`` must
        repeat. The multi-worker path needs the function form (it calls it per input pipeline).
      extra_callbacks: more Keras callbacks.

    Raises:
      TrainingDivergedError: the loss became NaN/inf (the last good checkpoint stays in workdir).
    """
    exp = resolve_experiment(config, overrides)
    distribution = choose_distribution(exp.train.distribution)
    if distribution == "multi_worker":
        from rsn_tf.training.multiworker import train_multi_worker

        return train_multi_worker(exp, workdir, datasets=datasets)
    os.makedirs(workdir, exist_ok=True)
    _check_workdir(workdir, exp)
    set_precision(exp.train.mixed_precision)
    keras.utils.set_random_seed(exp.train.seed)
    model_cfg = exp.model_config()
    strategy = make_strategy(distribution)
    tcfg = exp.train
    if tcfg.batch_size % strategy.num_replicas_in_sync:
        raise ValueError(f"train.batch_size {tcfg.batch_size} does not split over "
                         f"{strategy.num_replicas_in_sync} replicas")
    validate = tcfg.validation_freq > 0
    if datasets is None:
        datasets = default_datasets(exp, model_cfg, tcfg.batch_size, validate)
    elif callable(datasets):
        datasets = datasets(tcfg.batch_size)
    train_ds, val_ds, num_instances = datasets
    steps = steps_per_epoch_for(tcfg, num_instances)
    metadata = experiment_metadata(exp)

    from rsn_tf.model import build_rsn
    from rsn_tf.training.callbacks import (FiniteBackupAndRestore, LearningRateLog, LossPlot, NaNStop,
                                           RSNCheckpoint, ScalarLogger, SyncMovingStatistics, save_rsn)
    from rsn_tf.training.optimizer import build_optimizer

    with strategy.scope():
        rsn = build_rsn(model_cfg, metadata=metadata)
        trainer = RSNTrainer(rsn, tcfg.loss)
        trainer.build()
        trainer.compile(optimizer=build_optimizer(tcfg, steps), jit_compile=tcfg.jit_compile)

    csv_path = os.path.join(workdir, "history.csv")
    nan_stop = NaNStop()
    monitor = tcfg.checkpoint.monitor if (validate and val_ds is not None) else "loss"
    callbacks = [
        nan_stop,
        LearningRateLog(),
        SyncMovingStatistics(strategy, rsn),
        FiniteBackupAndRestore(os.path.join(workdir, "backup"), save_freq=tcfg.checkpoint.backup_freq,
                               delete_checkpoint=False),
        keras.callbacks.CSVLogger(csv_path, append=True),
        ScalarLogger(os.path.join(workdir, "logs")),
        RSNCheckpoint(rsn, os.path.join(workdir, "checkpoints"), metadata, monitor=monitor),
        LossPlot(csv_path, os.path.join(workdir, "loss_curve.png"), title=exp.name or model_cfg.block),
        *(extra_callbacks or []),
    ]
    trainer.fit(train_ds, epochs=tcfg.epochs, steps_per_epoch=steps,
                validation_data=val_ds if validate else None, validation_steps=tcfg.validation_steps,
                validation_freq=max(tcfg.validation_freq, 1), callbacks=callbacks, verbose=_verbose(tcfg),
                shuffle=False)  # the tf.data pipeline shuffles (seeded); Keras would only warn
    if nan_stop.message:
        raise TrainingDivergedError(nan_stop.message)
    final = os.path.join(workdir, "model.keras")
    save_rsn(rsn, final, {**metadata, "epoch": tcfg.epochs})
    return final
