"""Train an RSN: ``rsn train``'s entry point, and the ``model.fit`` loop (one host, any number of devices).

Data flow: ``(images [B,H,W,3], targets)`` batches from :func:`rsn_tf.data.pipeline.build_dataset`
-> :class:`RSNTrainer` (the RSN, its :class:`~rsn_tf.losses.RSNLoss`, the step of
:mod:`rsn_tf.training.step`) -> ``fit`` -> ``WORKDIR/model.keras`` (a plain ``RSNModel`` whose
``metadata`` holds the experiment config). Several hosts (``TF_CONFIG``) go to
:mod:`rsn_tf.training.multiworker`, which runs the same step, callbacks and workdir
(:mod:`rsn_tf.training.workdir`, where the workdir layout is described).
"""
from __future__ import annotations

import os

import keras
import tensorflow as tf

from rsn_tf.losses import LossConfig, RSNLoss
from rsn_tf.training import workdir as wd
from rsn_tf.training.config import resolve_experiment
from rsn_tf.training.distribute import choose_distribution, make_strategy
from rsn_tf.training.step import (TrainingDivergedError, TrainingInputError, check_batch_split,
                                  input_errors_as_one_line, replica_eval_sums, replica_train_step)
# kept importable from here (callers and the multi-worker module use the workdir/step homes)
from rsn_tf.training.workdir import experiment_metadata, set_precision  # noqa: F401

__all__ = ["RSNTrainer", "TrainingDivergedError", "TrainingInputError", "train_experiment"]


@keras.saving.register_keras_serializable(package="rsn_tf")
class RSNTrainer(keras.Model):
    """Training wrapper for ``fit``/``evaluate``: ``call`` is the RSN; a step is
    :func:`rsn_tf.training.step.replica_train_step` with :class:`~rsn_tf.losses.RSNLoss`.

    Save ``trainer.rsn`` (the plain :class:`RSNModel`), not this: the wrapper holds the optimizer, so
    the RSN's own ``.keras`` files stay free of optimizer state. (A plain RSNModel also trains with
    ``model.compile(loss=RSNLoss())``; this wrapper exists for that file size and the shared step.)
    The logged ``loss``/``val_loss`` is the mean per-sample loss over the epoch's samples.
    """

    def __init__(self, rsn, loss_config: LossConfig = LossConfig(), **kwargs):
        kwargs.setdefault("name", "rsn_trainer")
        super().__init__(**kwargs)
        self.rsn = rsn
        self.loss_config = loss_config
        self.rsn_loss = RSNLoss(loss_config)
        self.loss_tracker = keras.metrics.Mean(name="loss")

    def build(self, input_shape=None):
        self.built = True

    def call(self, images, training=False):
        return self.rsn(images, training=training)

    @property
    def metrics(self):
        return [self.loss_tracker]

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        return self.rsn_loss(y, y_pred, sample_weight)

    def train_step(self, data):
        images, targets, _ = keras.utils.unpack_x_y_sample_weight(data)  # (x, y) or train_on_batch's (x, y, None)
        loss = replica_train_step(self.rsn, self.optimizer, self.rsn_loss, images, targets)
        replicas = tf.distribute.get_strategy().num_replicas_in_sync
        self.loss_tracker.update_state(loss * replicas, sample_weight=tf.shape(images)[0])
        return {"loss": self.loss_tracker.result()}

    def test_step(self, data):
        images, targets, _ = keras.utils.unpack_x_y_sample_weight(data)  # (x, y) or train_on_batch's (x, y, None)
        total, count = replica_eval_sums(self.rsn, self.rsn_loss, images, targets)
        self.loss_tracker.update_state(tf.math.divide_no_nan(total, count), sample_weight=count)
        return {"loss": self.loss_tracker.result()}


def train_experiment(config, workdir: str, overrides: list[str] | None = None, *, datasets=None,
                     extra_callbacks=None) -> str:
    """Train an experiment; returns the path of the final ``WORKDIR/model.keras``.

    Args:
      config: a YAML path, an :class:`ExperimentConfig` or its dict.
      workdir: output folder (see :mod:`rsn_tf.training.workdir`). Rerunning the same call resumes
        from the last backup.
      overrides: ``["train.epochs=3", ...]`` applied to ``config``.
      datasets: optional ``(train, val_or_None, num_train_instances_or_None)``, or a function
        ``fn(batch_size) -> that tuple``, used instead of the data config (tests). ``train`` must
        repeat. The multi-worker path needs the function form (it calls it per input pipeline).
      extra_callbacks: more Keras callbacks (run before the writers, so what they add to the epoch
        logs reaches ``history.csv`` and the checkpoints).

    Raises:
      TrainingDivergedError: the loss became NaN/inf (the last good checkpoint stays in workdir).
      TrainingInputError: a sample failed in the input pipeline (e.g. a corrupt image); one line
        naming it; the last backup stays, so the same command resumes once it is fixed.
    """
    exp = resolve_experiment(config, overrides)
    distribution = choose_distribution(exp.train.distribution)
    if distribution == "multi_worker":
        from rsn_tf.training.multiworker import train_multi_worker

        return train_multi_worker(exp, workdir, datasets=datasets, extra_callbacks=extra_callbacks)
    with input_errors_as_one_line():
        return _fit(exp, workdir, distribution, datasets, extra_callbacks)


def _fit(exp, workdir, distribution, datasets, extra_callbacks) -> str:
    from rsn_tf.model import build_rsn
    from rsn_tf.training.callbacks import BatchNormLagCheck, FiniteBackupAndRestore, NaNStop
    from rsn_tf.training.optimizer import build_optimizer

    tcfg = exp.train
    wd.prepare_workdir(workdir, exp)
    set_precision(tcfg.mixed_precision)
    keras.utils.set_random_seed(tcfg.seed)
    model_cfg = exp.model_config()
    strategy = make_strategy(distribution)
    check_batch_split(tcfg.batch_size, strategy.num_replicas_in_sync)
    validate = tcfg.validation_freq > 0
    if datasets is None:
        datasets = wd.default_datasets(exp, model_cfg, tcfg.batch_size, validate)
    elif callable(datasets):
        datasets = datasets(tcfg.batch_size)
    train_ds, val_ds, num_instances = datasets
    validate = validate and val_ds is not None
    steps = wd.steps_per_epoch_for(tcfg, num_instances)
    metadata = experiment_metadata(exp)

    with strategy.scope():
        rsn = build_rsn(model_cfg, metadata=metadata)
        trainer = RSNTrainer(rsn, tcfg.loss)
        trainer.build()
        trainer.compile(optimizer=build_optimizer(tcfg, steps), jit_compile=tcfg.jit_compile)

    backup = FiniteBackupAndRestore(os.path.join(workdir, wd.BACKUP), save_freq=tcfg.checkpoint.backup_freq,
                                    delete_checkpoint=False)
    callbacks = wd.record_callbacks(workdir, exp, rsn, metadata, optimizer=trainer.optimizer, strategy=strategy,
                                    validating=validate, extra=extra_callbacks or (), backup=backup,
                                    bn_check=BatchNormLagCheck(rsn, val_ds, trainer.rsn_loss) if validate else None)
    trainer.fit(train_ds, epochs=tcfg.epochs, steps_per_epoch=steps,
                validation_data=val_ds if validate else None, validation_steps=tcfg.validation_steps,
                validation_freq=max(tcfg.validation_freq, 1), callbacks=callbacks, verbose=wd.verbosity(tcfg),
                shuffle=False)  # the tf.data pipeline shuffles (seeded); Keras would only warn
    nan_stop = next(cb for cb in callbacks if isinstance(cb, NaNStop))
    if nan_stop.message:
        raise TrainingDivergedError(nan_stop.message)
    return wd.save_final(rsn, workdir, metadata, tcfg.epochs, optimizer_steps=int(trainer.optimizer.iterations.numpy()))
