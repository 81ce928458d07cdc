"""Multi-host training with ``MultiWorkerMirroredStrategy`` in a custom ``strategy.run`` loop.

Keras 3.15's ``model.fit`` fails under ``MultiWorkerMirroredStrategy`` (its distributed iterator
hands ``PerReplica`` values to code that does not accept them), so this path runs the same model,
loss and optimizer in a plain loop:

    per replica: loss = rsn_loss(local batch) / replicas_in_sync;  grads = d loss / d weights
    optimizer.apply_gradients (Keras all-reduces = sums the replicas' grads) -> global-batch mean

Every worker runs the same command with its own ``TF_CONFIG``, e.g. for 2 hosts::

    TF_CONFIG='{"cluster": {"worker": ["host0:12345", "host1:12345"]}, "task": {"type": "worker", "index": 0}}'

Worker 0 (or ``chief``) writes the records (``history.csv``, ``loss_curve.png``, TensorBoard
scalars, ``checkpoints/last.keras``, ``model.keras``); the resumable state is a
``tf.train.Checkpoint`` (weights, optimizer, epoch) in ``WORKDIR/backup_mw`` that every worker
writes (the others into their own scratch folders, as TF requires) and restores, so rerunning the same
command on every host resumes at the last finished epoch. Each worker reads every
``num_workers``-th batch of its own copy of the training pipeline. No validation pass on this path.
"""
from __future__ import annotations

import csv
import math
import os

import tensorflow as tf

from rsn_tf.losses import rsn_loss


def is_chief(resolver) -> bool:
    task_type, task_id = resolver.task_type, resolver.task_id
    if task_type is None:
        return True
    cluster = resolver.cluster_spec().as_dict()
    return task_type == "chief" or (task_type == "worker" and task_id == 0 and "chief" not in cluster)


def make_train_step(strategy, model, optimizer, loss_config):
    """``step(iterator) -> global mean loss`` running one optimizer step under ``strategy``.

    Works for any strategy (default, Mirrored, MultiWorkerMirrored): each replica's loss is its
    local batch mean divided by ``num_replicas_in_sync``; the optimizer sums the replica gradients.
    """
    from keras.optimizers import LossScaleOptimizer

    replicas = strategy.num_replicas_in_sync
    scales = isinstance(optimizer, LossScaleOptimizer)

    def step_fn(images, targets):
        with tf.GradientTape() as tape:
            outputs = model(images, training=True)
            loss = rsn_loss(outputs, targets, loss_config) / replicas
            scaled = optimizer.scale_loss(loss) if scales else loss
        grads = tape.gradient(scaled, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables))
        return loss

    @tf.function
    def step(iterator):
        images, targets = next(iterator)
        per_replica = strategy.run(step_fn, args=(images, targets))
        return strategy.reduce(tf.distribute.ReduceOp.SUM, per_replica, axis=None)

    return step


def train_multi_worker(exp, workdir: str, datasets=None, strategy=None) -> str:
    """Train ``exp`` with MultiWorkerMirroredStrategy (from ``TF_CONFIG``); returns the final model path.

    ``datasets``: optional ``fn(batch_size) -> (train, val, num_instances)`` (only ``train`` is used;
    it is called inside ``distribute_datasets_from_function`` with the per-replica batch size).
    The chief returns ``WORKDIR/model.keras``; other workers return their own copy's path.
    """
    import keras

    from rsn_tf.model import build_rsn
    from rsn_tf.training.callbacks import ScalarLogger, plot_history, save_rsn
    from rsn_tf.training.distribute import sync_moving_statistics
    from rsn_tf.training.optimizer import build_optimizer
    from rsn_tf.training.trainer import (TrainingDivergedError, _check_workdir, default_datasets, experiment_metadata,
                                         set_precision, steps_per_epoch_for)

    # The strategy must exist before any other TF op (collective ops are configured at start-up).
    strategy = strategy or tf.distribute.MultiWorkerMirroredStrategy()
    resolver = strategy.cluster_resolver
    chief = is_chief(resolver)
    worker = f"{resolver.task_type}_{resolver.task_id}"
    tcfg = exp.train
    replicas = strategy.num_replicas_in_sync
    if tcfg.batch_size % replicas:
        raise ValueError(f"train.batch_size {tcfg.batch_size} does not split over {replicas} replicas")
    os.makedirs(workdir, exist_ok=True)
    if chief:
        _check_workdir(workdir, exp)
    set_precision(tcfg.mixed_precision)
    keras.utils.set_random_seed(tcfg.seed)
    model_cfg = exp.model_config()
    metadata = experiment_metadata(exp)

    if datasets is not None and not callable(datasets):
        raise ValueError("multi-worker training needs datasets as a function fn(batch_size) -> (train, val, n)")
    if datasets is None:
        def datasets(batch_size):
            return default_datasets(exp, model_cfg, batch_size, validation=False)

    num_instances = {}

    def dataset_fn(ctx):
        train, _, n = datasets(ctx.get_per_replica_batch_size(tcfg.batch_size))
        num_instances["n"] = n
        return train.shard(ctx.num_input_pipelines, ctx.input_pipeline_id)

    dist_ds = strategy.distribute_datasets_from_function(dataset_fn)
    steps = steps_per_epoch_for(tcfg, num_instances.get("n"))

    with strategy.scope():
        rsn = build_rsn(model_cfg, metadata=metadata)
        optimizer = build_optimizer(tcfg, steps)
        if tcfg.mixed_precision == "mixed_float16":
            optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
        optimizer.build(rsn.trainable_variables)
        epoch_var = tf.Variable(0, dtype=tf.int64, trainable=False, name="epoch")
    ckpt = tf.train.Checkpoint(model=rsn, optimizer=optimizer, epoch=epoch_var)
    backup = os.path.join(workdir, "backup_mw")
    save_dir = backup if chief else os.path.join(backup, f".scratch_{worker}")
    manager = tf.train.CheckpointManager(ckpt, save_dir, max_to_keep=2)
    latest = tf.train.latest_checkpoint(backup)  # every worker restores the chief's state
    if latest:
        ckpt.restore(latest)
        print(f"[{worker}] resumed from {latest} at epoch {int(epoch_var.numpy())}", flush=True)

    step = make_train_step(strategy, rsn, optimizer, tcfg.loss)
    iterator = iter(dist_ds)
    csv_path = os.path.join(workdir, "history.csv")
    logger = ScalarLogger(os.path.join(workdir, "logs"), is_chief=chief)
    for epoch in range(int(epoch_var.numpy()), tcfg.epochs):
        total = 0.0
        for i in range(steps):
            loss = float(step(iterator))
            if not math.isfinite(loss):
                raise TrainingDivergedError(
                    f"training stopped: the loss became {loss} at epoch {epoch + 1}, batch {i + 1}; the last good "
                    f"state is in {backup}. Try a lower train.optimizer.lr or longer warmup, or mixed_bfloat16.")
            total += loss
        sync_moving_statistics(strategy, rsn)
        epoch_var.assign(epoch + 1)
        manager.save()
        lr = float(keras.ops.convert_to_numpy(optimizer.learning_rate))
        logs = {"loss": total / steps, "learning_rate": lr}
        print(f"[{worker}] epoch {epoch + 1}/{tcfg.epochs} - loss: {logs['loss']:.4f}", flush=True)
        if chief:
            _append_csv(csv_path, epoch, logs)
            logger.log(epoch, logs)
            plot_history(csv_path, os.path.join(workdir, "loss_curve.png"), exp.name)
            save_rsn(rsn, os.path.join(workdir, "checkpoints", "last.keras"),
                     {**metadata, "epoch": epoch + 1, "logs": logs})
    final = os.path.join(workdir, "model.keras") if chief else os.path.join(save_dir, "model.keras")
    save_rsn(rsn, final, {**metadata, "epoch": tcfg.epochs, "distribution": "multi_worker"})
    return final


def _append_csv(path: str, epoch: int, logs: dict) -> None:
    new = not os.path.exists(path)
    with open(path, "a", newline="") as f:
        w = csv.writer(f)
        if new:
            w.writerow(["epoch", *logs])
        w.writerow([epoch, *logs.values()])
