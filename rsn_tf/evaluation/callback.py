"""A Keras callback that evaluates OKS AP on a validation set every N epochs during training."""
from __future__ import annotations

import math

import keras


class EvaluationCallback(keras.callbacks.Callback):
    """Every ``every`` epochs, run the :class:`PoseEstimator` on a COCO-format val set with the model
    being trained and add ``val_AP``, ``val_AP50``, ``val_AP75``, ``val_AR`` to the epoch ``logs``.

    It must run **before** ``CSVLogger``, the TensorBoard writer and the checkpoint callback so they see
    the new keys: ``rsn train`` adds it from the config (``train.evaluation.every``) in that place
    (:func:`rsn_tf.training.workdir.record_callbacks`), and ``train.checkpoint.monitor: val_AP`` then
    picks ``best.keras`` by AP. Epochs without an evaluation log NaN (so CSV columns stay stable and no
    stale value is repeated; a NaN epoch is never "best").

    Args:
      ann: COCO-format annotation file; images_dir: its images.
      every: evaluate after epochs every, 2*every, ... (1-based); also after the last epoch when
        ``params["epochs"]`` is known.
      boxes: ``"gt"`` or a detection file. prefix: log key prefix.
      model: the RSN model to evaluate when the trained Keras model is a wrapper around it
        (default: ``self.model.rsn`` when the trained model has one, as ``RSNTrainer`` does, else
        ``self.model``).
      estimator_kwargs: passed to :class:`PoseEstimator` (flip_test, batch_size, recipe...).
    """

    KEYS = ("AP", "AP50", "AP75", "AR")

    def __init__(self, ann, images_dir: str, every: int = 1, boxes: str = "gt", prefix: str = "val_",
                 verbose: int = 1, model=None, **estimator_kwargs):
        super().__init__()
        if every < 1:
            raise ValueError(f"every must be >= 1 (got {every})")
        self.ann, self.images_dir, self.every, self.boxes = ann, images_dir, int(every), boxes
        self.prefix, self.verbose, self.estimator_kwargs = prefix, verbose, estimator_kwargs
        self.eval_model = model
        self.history: list[tuple[int, dict]] = []

    def _due(self, epoch: int) -> bool:
        last = (self.params or {}).get("epochs")
        return (epoch + 1) % self.every == 0 or (last is not None and epoch + 1 == last)

    def _rsn(self):
        """The RSN to evaluate: the explicit one, else a trainer's ``.rsn`` (RSNTrainer), else the model."""
        if self.eval_model is not None:
            return self.eval_model
        inner = getattr(self.model, "rsn", None)
        return inner if getattr(inner, "rsn_config", None) is not None else self.model

    def on_epoch_end(self, epoch, logs=None):
        if logs is None:
            return
        if not self._due(epoch):
            for k in self.KEYS:
                logs[self.prefix + k] = math.nan
            return
        from rsn_tf.evaluation.runner import evaluate_coco
        from rsn_tf.inference.estimator import PoseEstimator

        est = PoseEstimator(self._rsn(), **self.estimator_kwargs)
        metrics = evaluate_coco(est, self.ann, self.images_dir, boxes=self.boxes, verbose=False)
        for k in self.KEYS:
            logs[self.prefix + k] = float(metrics[k])
        self.history.append((epoch, metrics))
        if self.verbose:
            print(f"\nepoch {epoch + 1}: " + ", ".join(f"{self.prefix}{k} {metrics[k]:.4f}" for k in self.KEYS),
                  flush=True)
