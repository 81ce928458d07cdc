"""Test recipes: how a person box becomes a crop and how heatmaps become keypoints and scores.

The one place that names each reference's test-time constants. Two recipes exist:

``authors`` (the official PyTorch release, ``exps/*/test.py``)
  box extension ``w x 1.09, h x 1.135`` before the aspect fix; decode = blur the flip-averaged map
  (10-px zero border), argmax, a quarter-pixel step toward the second maximum; keypoint score = raw
  map at the rounded peak / 255 + 0.5; instance score = box score x mean of all keypoint scores.

``mmpose`` (mmpose 1.x ``GetBBoxCenterScale(padding=1.25)`` + ``MegviiHeatmap.decode`` + ``CocoMetric``)
  box padding 1.25 on both sides; crops with mmpose's ``get_warp_matrix``; decode = blur renormalised to the original max, argmax,
  ``+0.25 * sign(gradient) + 0.5`` per interior axis; keypoint score = blurred max / 255 + 0.5;
  instance score = box score x mean of the keypoint scores above 0.2.

Both recipes blur with a 5x5 kernel for COCO-like layouts and 9x9 for MPII (``decode_kernel_for``),
test with the flip (heatmaps flipped back and averaged, no shift) and use no OKS-NMS (mmpose's RSN
configs set ``nms_mode='none'``).

Which recipe a model gets: an explicit choice always wins; else :func:`default_recipe` reads the
model's metadata (``rsn convert-mmpose`` writes ``recipe: mmpose``, ``rsn train`` the recipe of its
loss mode). :func:`resolve_recipe` returns the recipe and that reason, and every result file records
both (:func:`recipe_record`).
"""
from __future__ import annotations

import dataclasses
from typing import Literal

#: The authors' test box extension (w, h factors) before the aspect-ratio fix.
AUTHORS_BOX_PADDING = (1.09, 1.135)
#: mmpose's ``GetBBoxCenterScale(padding=1.25)``, the same factor on both sides.
MMPOSE_BOX_PADDING = (1.25, 1.25)
#: mmpose ``CocoMetric`` ``keypoint_score_thr`` of the ``bbox_keypoint`` instance-score mode.
MMPOSE_KEYPOINT_SCORE_THR = 0.2
#: Decode blur kernels of both references: COCO (and any other layout) and MPII.
DEFAULT_DECODE_KERNEL = 5
MPII_DECODE_KERNEL = 9

RecipeName = Literal["authors", "mmpose"]


@dataclasses.dataclass(frozen=True)
class TestRecipe:
    """One reference's test settings (see the module docstring).

    Attributes:
      name: "authors" or "mmpose".
      decode_mode: the codec's decode rule (``MegviiHeatmapCodec.decode_mode``).
      score_mode: the instance-score rule (``rsn_tf.inference.estimator.pose_score``).
      box_padding: (w, h) factors applied to a person box before the aspect fix.
      keypoint_score_threshold: keypoints counted by the ``mmpose`` instance score (score > it).
      flip_test: test with the mirrored crop as well (both references do).
      oks_nms: OKS-NMS per image before scoring (neither reference's RSN recipe does).
      reference: where the recipe's settings come from, in words.
      warp: whose crop matrix (``rsn_tf.geometry.get_affine_transform`` ``construction``): the same
        map either way, built from float32 points as that reference builds it.
      box_in_results: COCO results entries carry the person box (``bbox``), as mmpose's do; pycocotools
        then takes a result's area (for APm/APl) from that box, not from its keypoints' extent.
    """

    __test__ = False  # not a pytest class, despite the name

    name: RecipeName
    decode_mode: RecipeName
    score_mode: RecipeName
    box_padding: tuple[float, float]
    keypoint_score_threshold: float = MMPOSE_KEYPOINT_SCORE_THR
    flip_test: bool = True
    oks_nms: bool = False
    reference: str = ""
    warp: RecipeName = "authors"
    box_in_results: bool = False


RECIPES: dict[str, TestRecipe] = {
    "authors": TestRecipe("authors", "authors", "authors", AUTHORS_BOX_PADDING,
                          reference="the authors' PyTorch release, exps/*/test.py"),
    "mmpose": TestRecipe("mmpose", "mmpose", "mmpose", MMPOSE_BOX_PADDING,
                         reference="mmpose 1.x RSN configs: GetBBoxCenterScale(1.25), MegviiHeatmap.decode, "
                                   "CocoMetric(score_mode='bbox_keypoint', nms_mode='none')", warp="mmpose",
                         box_in_results=True),
}


def get_recipe(name: str) -> TestRecipe:
    """The named recipe; a clear error for anything else."""
    try:
        return RECIPES[name]
    except KeyError:
        raise ValueError(f"recipe must be one of {sorted(RECIPES)} (got {name!r})") from None


def decode_kernel_for(layout_name: str | None) -> int:
    """The decode blur kernel of a keypoint layout: 9 for MPII, 5 for COCO and anything else."""
    return MPII_DECODE_KERNEL if layout_name == "mpii" else DEFAULT_DECODE_KERNEL


def default_recipe(metadata: dict | None) -> str:
    """The recipe a model defaults to, from its metadata (an explicit choice by the caller always wins).

    ``metadata["recipe"]`` when set; else ``"mmpose"`` for weights converted from mmpose
    (``metadata["weights"] == "mmpose"``); else the loss mode of the experiment it was trained with
    (``metadata["experiment"]["train"]["loss"]["mode"]``); else ``"authors"``.
    """
    return _default_with_reason(metadata)[0]


def _default_with_reason(metadata: dict | None) -> tuple[str, str]:
    meta = metadata or {}
    if meta.get("recipe") in RECIPES:
        return meta["recipe"], "the model's metadata names it"
    if meta.get("weights") == "mmpose":
        return "mmpose", "the weights were converted from mmpose"
    mode = (((meta.get("experiment") or {}).get("train") or {}).get("loss") or {}).get("mode")
    if mode in RECIPES:
        return mode, f"the model was trained with the {mode} loss mode"
    return "authors", "the default: the model's metadata names no recipe"


def resolve_recipe(explicit: str | None, metadata: dict | None) -> tuple[TestRecipe, str]:
    """The recipe to use and why: ``explicit`` (a name) when given, else :func:`default_recipe`."""
    if explicit is not None:
        return get_recipe(explicit), "chosen explicitly"
    name, reason = _default_with_reason(metadata)
    return RECIPES[name], reason


def recipe_record(recipe: TestRecipe, source: str, **settings) -> dict:
    """What a result file records about the test recipe: its name, why it was chosen, and the
    settings actually used (``settings`` overrides the recipe's own, e.g. ``decode_mode``)."""
    record = {"recipe": recipe.name, "recipe_source": source, "flip_test": recipe.flip_test,
              "decode_mode": recipe.decode_mode, "score_mode": recipe.score_mode,
              "box_padding": [float(v) for v in recipe.box_padding],
              "keypoint_score_threshold": recipe.keypoint_score_threshold, "oks_nms": recipe.oks_nms,
              "warp": recipe.warp, "box_in_results": recipe.box_in_results}
    record.update(settings)
    return record
