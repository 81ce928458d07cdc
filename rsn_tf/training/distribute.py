"""Distribution helpers: pick the strategy, keep BatchNorm statistics in step across replicas.

(The loss is divided by the replicas in sync by :class:`rsn_tf.losses.RSNLoss`, as every Keras loss;
the step that uses it is :mod:`rsn_tf.training.step`.)

``distribution: auto`` -> MultiWorkerMirroredStrategy when ``TF_CONFIG`` lists more than one worker,
MirroredStrategy when there is more than one GPU, else no strategy.
"""
from __future__ import annotations

import json
import os

import tensorflow as tf


def tf_config_workers() -> int:
    """Number of workers ``TF_CONFIG`` describes (0 if unset/invalid)."""
    try:
        cluster = json.loads(os.environ.get("TF_CONFIG", "") or "{}").get("cluster", {})
    except json.JSONDecodeError:
        raise ValueError("TF_CONFIG is not valid JSON") from None
    return len(cluster.get("worker", [])) + len(cluster.get("chief", []))


def choose_distribution(distribution: str) -> str:
    """Resolve ``auto`` to ``multi_worker`` / ``mirrored`` / ``none``."""
    if distribution != "auto":
        return distribution
    if tf_config_workers() > 1:
        return "multi_worker"
    if len(tf.config.list_logical_devices("GPU")) > 1:
        return "mirrored"
    return "none"


def make_strategy(distribution: str):
    """A ``tf.distribute`` strategy for a resolved ``distribution`` name.

    ``mirrored`` uses every GPU, or every logical CPU device when there is no GPU and the CPU was
    split (``tf.config.set_logical_device_configuration``; how the tests run it).
    """
    if distribution == "none":
        return tf.distribute.get_strategy()
    if distribution == "mirrored":
        gpus = tf.config.list_logical_devices("GPU")
        devices = [d.name for d in (gpus or tf.config.list_logical_devices("CPU"))]
        return tf.distribute.MirroredStrategy(devices=devices)
    if distribution == "multi_worker":
        return tf.distribute.MultiWorkerMirroredStrategy()
    raise ValueError(f"train.distribution: unknown value {distribution!r}")


def sync_moving_statistics(strategy, model) -> None:
    """Average every non-trainable variable (BatchNorm moving mean/variance) over all replicas.

    Keras 3 BatchNorm updates its moving statistics per replica (MirroredVariables with aggregation
    NONE), so replicas that saw different batches drift apart and the saved model would carry only
    the first replica's. Called at the end of every epoch: all replicas (and workers) then hold the
    mean, and the weights every worker ends with are identical. (Batch statistics *within* a step
    stay per replica, as in the references' PyTorch code without SyncBN.)
    """
    if strategy.num_replicas_in_sync <= 1 or not model.non_trainable_variables:
        return

    @tf.function
    def run():
        def fn():
            ctx = tf.distribute.get_replica_context()
            variables = model.non_trainable_variables
            local = [tf.identity(v.value) for v in variables]  # tensors: collectives reject variables
            for v, mean in zip(variables, ctx.all_reduce(tf.distribute.ReduceOp.MEAN, local)):
                v.assign(mean)
        strategy.run(fn)

    run()
