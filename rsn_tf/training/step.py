"""One training step for every loop, and what a step can go wrong with.

Both loops run :func:`replica_train_step` in a replica context:

- ``model.fit``: :meth:`rsn_tf.training.trainer.RSNTrainer.train_step` (Keras calls it under
  ``strategy.run``, once per replica);
- the multi-worker loop: :func:`make_distributed_train_step` (``strategy.run`` + a SUM reduce).

Loss scaling across replicas: :class:`rsn_tf.losses.RSNLoss` returns the replica's local batch
mean divided by ``num_replicas_in_sync`` (Keras' convention for losses); the optimizer sums the
replicas' gradients, so every update is the gradient of the global-batch mean, whatever the number
of replicas or workers (``tests/test_distributed.py`` checks 1 device against 2 replicas).

The rest is shared too: :func:`check_batch_split` (the global batch must split evenly),
:func:`non_finite_message` (what a NaN/inf loss stop says) and :func:`input_error` (a failure inside
the tf.data pipeline, e.g. a corrupt JPEG, becomes one line naming the file).
"""
from __future__ import annotations

import contextlib
import re

import tensorflow as tf


class TrainingDivergedError(ValueError):
    """The loss became NaN/inf; the message says where and what to try."""


class TrainingInputError(ValueError):
    """The input pipeline failed on a sample (e.g. an image that cannot be decoded); the message names it."""


def check_batch_split(batch_size: int, replicas: int) -> None:
    """Raise ``ValueError`` unless the global ``batch_size`` splits evenly over ``replicas``."""
    if batch_size % replicas:
        raise ValueError(f"train.batch_size {batch_size} does not split over {replicas} replicas "
                         f"(make it a multiple of {replicas})")


def replica_train_step(model, optimizer, loss_fn, images, targets):
    """One optimizer step on this replica's batch; returns its loss (local batch mean / replicas).

    images: [B, H, W, 3] float32 (normalised); targets: the pipeline's dict (``heatmaps``
    [B, L, H/4, W/4, K] peak 255, ``weights`` [B, K], ``visible`` [B, K]). ``loss_fn(targets,
    outputs)`` is an :class:`rsn_tf.losses.RSNLoss`. ``optimizer.scale_loss`` is the identity except
    under a ``LossScaleOptimizer`` (mixed_float16), whose ``apply_gradients`` unscales again.
    """
    with tf.GradientTape() as tape:
        outputs = model(images, training=True)
        loss = loss_fn(targets, outputs)
        scaled = optimizer.scale_loss(loss)
    variables = model.trainable_variables
    grads = tape.gradient(scaled, variables)
    optimizer.apply_gradients(zip(grads, variables))
    return loss


def replica_eval_sums(model, loss_fn, images, targets):
    """(sum of the per-sample losses, number of samples) of this replica's batch, inference mode.

    Sums, not a mean, so replicas with an empty last batch (uneven shards) add nothing.
    """
    per_sample = loss_fn.per_sample(targets, model(images, training=False))
    return tf.reduce_sum(per_sample), tf.cast(tf.shape(per_sample)[0], tf.float32)


def make_distributed_train_step(strategy, model, optimizer, loss_fn):
    """``step(iterator) -> global-batch mean loss``: one :func:`replica_train_step` per replica."""

    @tf.function
    def step(iterator):
        images, targets = next(iterator)
        per_replica = strategy.run(replica_train_step, args=(model, optimizer, loss_fn, images, targets))
        return strategy.reduce(tf.distribute.ReduceOp.SUM, per_replica, axis=None)

    return step


def make_distributed_evaluation(strategy, model, loss_fn):
    """``evaluate(distributed dataset) -> mean per-sample loss`` over every sample of every worker.

    The dataset must be finite; ``tf.distribute`` gives replicas whose shard ran out an empty batch.
    """

    @tf.function
    def evaluate(dataset):
        total = tf.constant(0.0)
        count = tf.constant(0.0)
        for images, targets in dataset:
            s, n = strategy.run(replica_eval_sums, args=(model, loss_fn, images, targets))
            total += strategy.reduce(tf.distribute.ReduceOp.SUM, s, axis=None)
            count += strategy.reduce(tf.distribute.ReduceOp.SUM, n, axis=None)
        return tf.math.divide_no_nan(total, count)

    return evaluate


def non_finite_message(loss, epoch: int, batch: int, lr: float | None = None) -> str:
    """What a NaN/inf stop says: where (1-based epoch and batch), the lr, what was kept, what to try."""
    return (f"training stopped: the loss became {float(loss)} at epoch {epoch + 1}, batch {batch + 1}"
            + (f" (learning rate {lr:.3g})" if lr is not None else "")
            + ". Nothing from this epoch was saved; the last good weights are in the workdir's checkpoints/last.keras"
            " and its backup. Try a lower train.optimizer.lr or longer schedule.warmup_steps, mixed_bfloat16"
            " instead of mixed_float16, and check the data (rsn_tf targets must be finite, peak 255).")


# The Python exception a tf.numpy_function body raised, as TF quotes it in its own error message.
_PY_ERROR = re.compile(r"\b(ValueError|FileNotFoundError|OSError|KeyError): (.+)")


def input_error(exc: BaseException) -> TrainingInputError | None:
    """The one-line error for a ``tf.errors.OpError`` raised by the input pipeline, else ``None``.

    A sample that fails in the pipeline's Python code (``rsn_tf.data.pipeline.SampleMaker``: an image
    that cannot be read or decoded...) reaches the training loop as an ``InvalidArgumentError`` /
    ``UnknownError`` whose message quotes the Python error after dozens of lines of TF context; this
    keeps that quote (it names the file and the annotation) and says how to go on. Other errors
    (a bug, not a bad sample) return ``None`` and keep their traceback.
    """
    if not isinstance(exc, tf.errors.OpError):
        return None
    found = _PY_ERROR.search(exc.message or "")
    if found is None or "annotation id" not in found.group(2):  # not a sample's error: keep TF's traceback
        return None
    reason = found.group(2).strip()
    return TrainingInputError(f"the input pipeline failed: {reason}. Fix or remove that file (or its annotations), "
                              "or set data.skip_bad_images=true to skip such samples; rerunning the same command "
                              "resumes from the last saved state")


@contextlib.contextmanager
def input_errors_as_one_line():
    """Run a training loop, turning a failure of the input pipeline on a sample (:func:`input_error`)
    into its one-line :class:`TrainingInputError`; every other error keeps its traceback."""
    try:
        yield
    except tf.errors.OpError as e:
        err = input_error(e)
        if err is None:
            raise
        raise err from None
