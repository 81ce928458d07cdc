"""Multi-host training with ``MultiWorkerMirroredStrategy``: the fit loop's step and records in a
``strategy.run`` loop.

Keras 3.15's ``model.fit`` fails under ``MultiWorkerMirroredStrategy`` (its distributed iterator
hands ``PerReplica`` values to code that does not accept them), so this path drives the pieces
``fit`` uses itself: the step of :mod:`rsn_tf.training.step` (one optimizer step per replica, the
loss divided by the replicas in sync, SUM-reduced), the validation pass (mean per-sample
``val_loss`` over every worker's share of the val split), and the callbacks of
:func:`rsn_tf.training.workdir.record_callbacks` through a ``keras.callbacks.CallbackList`` in
the same order, so ``history.csv``, TensorBoard, ``last.keras``/``best.keras`` and the loss plot
are the same as ``fit``'s. Worker 0 (or ``chief``) writes them; every worker runs the collectives.

Every worker runs the same command with its own ``TF_CONFIG``, e.g. for 2 hosts::

    TF_CONFIG='{"cluster": {"worker": ["host0:12345", "host1:12345"]}, "task": {"type": "worker", "index": 0}}'

Fault tolerance: the resumable state is a ``tf.train.Checkpoint`` (weights, optimizer, epoch,
batches done in the epoch and their summed loss) kept by a ``tf.train.CheckpointManager`` in
``WORKDIR/backup_mw`` (the chief's; the other workers write theirs into scratch folders below it, as
TF requires) after every epoch, and every ``train.checkpoint.backup_freq`` batches when that is a
number. When a worker dies (``kill -9``, a lost host) the others block (or fail) at their next
collective: stop them, then rerun the same command on every host. Every worker restores the chief's
latest checkpoint and continues at the next batch, so the run ends with the planned number of
optimizer steps and the epoch's loss includes the batches from before the kill. The data stream restarts from its seeded
beginning (as ``fit``'s resume does). Each worker reads every ``num_workers``-th batch of its own
copy of the training pipeline.
"""
from __future__ import annotations

import math
import os

import keras
import tensorflow as tf

from rsn_tf.training import workdir as wd
from rsn_tf.training.step import (TrainingDivergedError, check_batch_split, input_errors_as_one_line,
                                  make_distributed_evaluation, make_distributed_train_step)


def is_chief(resolver) -> bool:
    task_type, task_id = resolver.task_type, resolver.task_id
    if task_type is None:
        return True
    cluster = resolver.cluster_spec().as_dict()
    return task_type == "chief" or (task_type == "worker" and task_id == 0 and "chief" not in cluster)


class _TrainState:
    """What a resumed run needs besides weights and optimizer: epoch, batches done in it, their loss sum."""

    def __init__(self):
        self.epoch = tf.Variable(0, dtype=tf.int64, trainable=False, name="epoch")
        self.batch = tf.Variable(0, dtype=tf.int64, trainable=False, name="batch_in_epoch")
        self.loss_sum = tf.Variable(0.0, dtype=tf.float64, trainable=False, name="epoch_loss_sum")


class CheckpointBackup(keras.callbacks.Callback):
    """The multi-worker ``BackupAndRestore``: saves the ``tf.train.CheckpointManager`` state after every
    epoch and, with an integer ``backup_freq``, every that many batches; never a step or epoch whose
    loss is not finite. Every worker calls it (checkpoint saving is collective)."""

    def __init__(self, manager, state: _TrainState, steps_per_epoch: int, backup_freq):
        super().__init__()
        self.manager, self.state, self.steps = manager, state, steps_per_epoch
        self.every = backup_freq if isinstance(backup_freq, int) else None
        self._epoch = 0

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        done = batch + 1
        if self.every is None or done == self.steps or not math.isfinite((logs or {}).get("loss", 0.0)):
            return  # the epoch end saves the last batch
        if (self._epoch * self.steps + done) % self.every == 0:
            self.state.batch.assign(done)
            self.manager.save(checkpoint_number=self._epoch * self.steps + done)

    def on_epoch_end(self, epoch, logs=None):
        if not math.isfinite((logs or {}).get("loss", 0.0)):
            return
        self.state.epoch.assign(epoch + 1)
        self.state.batch.assign(0)
        self.state.loss_sum.assign(0.0)
        self.manager.save(checkpoint_number=(epoch + 1) * self.steps)


def train_multi_worker(exp, workdir: str, datasets=None, strategy=None, extra_callbacks=None) -> str:
    """Train ``exp`` with MultiWorkerMirroredStrategy (from ``TF_CONFIG``); returns the final model path.

    ``datasets``: optional ``fn(batch_size) -> (train, val_or_None, num_instances)``, called inside
    ``distribute_datasets_from_function`` with the per-replica batch size; ``train`` must repeat,
    ``val`` be finite. The chief returns ``WORKDIR/model.keras``; other workers return their own copy's path.

    Raises:
      TrainingDivergedError: the loss became NaN/inf; TrainingInputError: a sample failed in the
      input pipeline (one line naming it).
    """
    # The strategy must exist before any other TF op (collective ops are configured at start-up).
    strategy = strategy or tf.distribute.MultiWorkerMirroredStrategy()
    with input_errors_as_one_line():
        return _train(strategy, exp, workdir, datasets, extra_callbacks)


def _train(strategy, exp, workdir, datasets, extra_callbacks) -> str:
    from rsn_tf.losses import RSNLoss
    from rsn_tf.model import build_rsn
    from rsn_tf.training.callbacks import NaNStop
    from rsn_tf.training.optimizer import build_optimizer

    resolver = strategy.cluster_resolver
    chief = is_chief(resolver)
    worker = f"{resolver.task_type}_{resolver.task_id}"
    tcfg = exp.train
    check_batch_split(tcfg.batch_size, strategy.num_replicas_in_sync)
    wd.prepare_workdir(workdir, exp, write=chief)
    wd.set_precision(tcfg.mixed_precision)
    keras.utils.set_random_seed(tcfg.seed)
    model_cfg = exp.model_config()
    metadata = wd.experiment_metadata(exp)
    validate = tcfg.validation_freq > 0

    if datasets is not None and not callable(datasets):
        raise ValueError("multi-worker training needs datasets as a function fn(batch_size) -> (train, val, n)")
    if datasets is None:
        def datasets(batch_size):
            return wd.default_datasets(exp, model_cfg, batch_size, validation=validate)

    made = {}

    def pipelines(ctx):
        size = ctx.get_per_replica_batch_size(tcfg.batch_size)
        if size not in made:
            made[size] = datasets(size)
        return made[size]

    def train_fn(ctx):
        return pipelines(ctx)[0].shard(ctx.num_input_pipelines, ctx.input_pipeline_id)

    def val_fn(ctx):
        val = pipelines(ctx)[1]
        if tcfg.validation_steps:  # global batches, as fit's validation_steps
            val = val.take(tcfg.validation_steps * ctx.num_input_pipelines)
        return val.shard(ctx.num_input_pipelines, ctx.input_pipeline_id)

    dist_train = strategy.distribute_datasets_from_function(train_fn)
    _, val_ds, num_instances = next(iter(made.values()))
    validate = validate and val_ds is not None
    dist_val = strategy.distribute_datasets_from_function(val_fn) if validate else None
    steps = wd.steps_per_epoch_for(tcfg, num_instances)

    with strategy.scope():
        rsn = build_rsn(model_cfg, metadata=metadata)
        optimizer = build_optimizer(tcfg, steps)
        if tcfg.mixed_precision == "mixed_float16":
            optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
        optimizer.build(rsn.trainable_variables)
        loss_fn = RSNLoss(tcfg.loss)
    state = _TrainState()
    ckpt = tf.train.Checkpoint(model=rsn, optimizer=optimizer, epoch=state.epoch, batch=state.batch,
                               loss_sum=state.loss_sum)
    backup_dir = os.path.join(workdir, wd.BACKUP_MW)
    save_dir = backup_dir if chief else os.path.join(backup_dir, f".scratch_{worker}")
    manager = tf.train.CheckpointManager(ckpt, save_dir, max_to_keep=2)
    latest = tf.train.latest_checkpoint(backup_dir)  # every worker restores the chief's state
    if latest:
        ckpt.restore(latest).assert_existing_objects_matched()
        print(f"[{worker}] resumed from {latest}: epoch {int(state.epoch.numpy()) + 1}, batch "
              f"{int(state.batch.numpy()) + 1} of {steps}", flush=True)

    backup = CheckpointBackup(manager, state, steps, tcfg.checkpoint.backup_freq)
    callbacks = wd.record_callbacks(workdir, exp, rsn, metadata, optimizer=optimizer, strategy=strategy,
                                    validating=validate, chief=chief, extra=extra_callbacks or (), backup=backup)
    nan_stop = next(cb for cb in callbacks if isinstance(cb, NaNStop))
    verbose = wd.verbosity(tcfg) if chief else 0
    cbs = keras.callbacks.CallbackList(callbacks, add_history=False, add_progbar=verbose != 0, model=rsn,
                                       verbose=verbose, epochs=tcfg.epochs, steps=steps)
    step = make_distributed_train_step(strategy, rsn, optimizer, loss_fn)
    evaluate = make_distributed_evaluation(strategy, rsn, loss_fn) if validate else None
    iterator = iter(dist_train)

    start_epoch, start_batch = int(state.epoch.numpy()), int(state.batch.numpy())
    rsn.stop_training = False
    cbs.on_train_begin()
    for epoch in range(start_epoch, tcfg.epochs):
        cbs.on_epoch_begin(epoch)
        logs = {}
        for batch in range(start_batch if epoch == start_epoch else 0, steps):
            cbs.on_train_batch_begin(batch)
            loss = float(step(iterator))
            state.loss_sum.assign_add(loss)
            logs = {"loss": float(state.loss_sum.numpy()) / (batch + 1)}  # running epoch mean, as fit logs
            cbs.on_train_batch_end(batch, logs if math.isfinite(loss) else {"loss": loss})
            if rsn.stop_training:
                break
        if rsn.stop_training:
            break
        if validate and (epoch + 1) % max(tcfg.validation_freq, 1) == 0:
            logs["val_loss"] = float(evaluate(dist_val))
        cbs.on_epoch_end(epoch, logs)
    cbs.on_train_end()
    if nan_stop.message:
        raise TrainingDivergedError(nan_stop.message)
    return wd.save_final(rsn, workdir, metadata, tcfg.epochs, chief=chief, scratch=save_dir,
                         distribution="multi_worker", optimizer_steps=int(optimizer.iterations.numpy()))
