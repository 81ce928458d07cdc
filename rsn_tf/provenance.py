"""What a model was trained on, and so what it can and cannot do: read from the metadata it carries.

A ``.keras`` file made by this project carries ``metadata`` (see :class:`rsn_tf.model.RSNModel`):
``rsn train`` records the experiment and ``trained_on`` (:func:`dataset_note`), ``rsn convert-mmpose``
records ``weights: "mmpose"`` and the checkpoint, random-weight exports record ``weights: "random ..."``.
:func:`describe_model` turns that into one line for people and, where it matters, a caveat: a model
trained on the built-in synthetic figures has never seen a real person, and says so wherever it is used
on images (``rsn infer``, ``rsn eval``, the demo's summary).
"""
from __future__ import annotations

import dataclasses

#: ``info.description`` prefix of the built-in synthetic set (``rsn synth``, :mod:`rsn_tf.data.synth`).
SYNTHETIC_DESCRIPTION = "rsn_tf synthetic people"
#: The command that gives a model for real photos (named presets of converted mmpose checkpoints).
REAL_WEIGHTS_HINT = ("for real photos use converted mmpose weights, e.g. "
                     "`rsn infer --weights mmpose/rsn18-coco PHOTO.jpg --out OUT` "
                     "(mmpose reports COCO val AP 70.4 for it; docs/convert_mmpose.md lists the checkpoints)")


@dataclasses.dataclass(frozen=True)
class ModelCard:
    """summary: one line, what the weights are; caveat: what they cannot do, or None; synthetic: trained on
    the built-in synthetic figures only."""

    summary: str
    caveat: str | None
    synthetic: bool = False


def dataset_note(data_cfg) -> dict:
    """What a training set is, for a model's metadata: ``{"annotations", "description", "synthetic"}``.

    Uses the cached reader of the input pipeline, so it costs nothing during training.
    """
    from rsn_tf.data.pipeline import load_instances

    inst = load_instances(data_cfg, "train")
    return {"annotations": inst.source, "description": inst.description,
            "synthetic": inst.description.startswith(SYNTHETIC_DESCRIPTION)}


def describe_model(metadata: dict | None) -> ModelCard:
    """A :class:`ModelCard` from a model's metadata (``model.metadata``)."""
    meta = metadata or {}
    weights = str(meta.get("weights") or "")
    if weights == "mmpose":
        return ModelCard(f"weights converted from the mmpose checkpoint {meta.get('source') or '(unnamed)'} "
                         f"({meta.get('keypoints') or 'custom'} keypoints, trained by mmpose on real photos)", None)
    if weights.startswith("random"):
        return ModelCard("random, untrained weights",
                         "this model is untrained (random weights): its keypoints mean nothing; " + REAL_WEIGHTS_HINT)
    exp = meta.get("experiment") or {}
    trained_on = meta.get("trained_on") or {}
    if exp or trained_on:
        name = exp.get("name") or "an experiment"
        data = exp.get("data") or {}
        described = trained_on.get("description") or data.get("train_ann") or "its training set"
        synthetic = bool(trained_on.get("synthetic")) if trained_on else \
            "synth" in f"{name} {data.get('root', '')} {data.get('train_ann', '')}".lower()
        epoch = meta.get("epoch")
        summary = f"trained with rsn train ({name}{f', {epoch} epochs' if epoch else ''}) on {described}"
        if synthetic:
            return ModelCard(summary, "this model was trained only on the built-in synthetic stick figures; it has "
                                      "never seen a real person, so on real photos its keypoints are not "
                                      "meaningful; " + REAL_WEIGHTS_HINT, synthetic=True)
        return ModelCard(summary, None)
    return ModelCard("weights of unknown origin (no training record in the model file)", None)
