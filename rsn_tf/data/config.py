"""Data configuration: which dataset, where it lives, and how training crops are augmented.

Two frozen dataclasses, built from YAML/dicts with :func:`rsn_tf.config.from_dict` (unknown keys are
errors):

- :class:`AugmentConfig`: the training augmentation. ``recipe`` picks the code path ("authors": the
  RSN release's ``JointsDataset``; "mmpose": mmpose 1.x's RSN pipeline; "none": the eval crop only).
  Every knob left at ``None`` takes the recipe's value (:meth:`AugmentConfig.resolved`), so
  ``{recipe: mmpose}`` alone gives mmpose's settings and one key overrides one knob.
- :class:`DataConfig`: dataset format, annotation/image paths, keypoint layout, pipeline settings.

Ready-made defaults: :func:`coco_data_config`, :func:`mpii_data_config`, :func:`synthetic_data_config`.
"""
from __future__ import annotations

import dataclasses
import os
from typing import Literal

from rsn_tf.config import ConfigError, from_dict, to_dict
from rsn_tf.recipes import AUTHORS_BOX_PADDING

Recipe = Literal["authors", "mmpose", "none"]
Mode = Literal["authors", "mmpose"]

# Every knob of AugmentConfig, per recipe. "authors" is the RSN release's COCO ``attribute.py``;
# "mmpose" the train pipeline of mmpose 1.x's RSN configs (``rsn_tf/data/augment.py`` says what each does).
RECIPE_DEFAULTS: dict[str, dict] = {
    "authors": dict(
        flip_prob=0.5,
        half_body_prob=0.3,
        half_body_min_joints=4,          # "> 3 labelled joints"
        half_body_ext=(0.6, 0.8),        # half-body box w *= 1 + U*0.6, h *= 1 + U*0.8
        box_ext=1.05,                    # BASIC_EXTENTION
        random_ext=(0.6, 0.8),           # then w *= 1 + U*0.6, h *= 1 + U*0.8
        scale_range=(0.6, 1.0),          # 0.8 * U(0.75, 1.25): < 1 zooms in
        rotation_prob=0.5,
        rotation_max=45.0,               # uniform in [-45, 45] degrees
        padding=1.0,                     # unused by "authors" (box_ext/random_ext instead)
        shift_factor=0.0,
        shift_prob=0.0,
        half_body_padding=1.0,
        half_body_upper_prob=0.0,
    ),
    "mmpose": dict(
        flip_prob=0.5,
        half_body_prob=0.3,
        half_body_min_joints=9,          # RandomHalfBody(min_total_keypoints=9)
        half_body_ext=(0.0, 0.0),
        box_ext=1.0,
        random_ext=(0.0, 0.0),
        scale_range=(0.5, 1.5),          # truncated normal on this range (RandomBBoxTransform)
        rotation_prob=0.6,
        rotation_max=80.0,               # truncated normal * 80 degrees
        padding=1.25,                    # GetBBoxCenterScale(padding=1.25)
        shift_factor=0.16,
        shift_prob=0.3,
        half_body_padding=1.5,
        half_body_upper_prob=0.7,
    ),
}
RECIPE_DEFAULTS["none"] = dict(RECIPE_DEFAULTS["authors"], flip_prob=0.0, half_body_prob=0.0, random_ext=(0.0, 0.0),
                               scale_range=(1.0, 1.0), rotation_prob=0.0)


@dataclasses.dataclass(frozen=True)
class AugmentConfig:
    """Training augmentation (:mod:`rsn_tf.data.augment`). ``None`` = the recipe's default (see ``RECIPE_DEFAULTS``).

    Attributes:
      recipe: "authors" (RSN release, default), "mmpose" (mmpose 1.x RSN configs) or "none".
      flip_prob: probability of a horizontal flip (pairs swapped).
      half_body_prob: probability of the half-body crop, for instances with enough labelled joints.
      half_body_min_joints: labelled (v > 0) joints an instance needs for half body (authors: > 3).
      half_body_ext: authors: half-body box w, h *= 1 + U(0, 1) * ext.
      box_ext: authors: fixed box extension before the random one (1.05).
      random_ext: authors: box w, h *= 1 + U(0, 1) * ext (COCO 0.6, 0.8; MPII 0, 0).
      scale_range: box scale multiplier range: uniform (authors) or truncated normal (mmpose).
      rotation_prob, rotation_max: rotation probability and range in degrees (uniform for authors,
        truncated normal * max for mmpose).
      padding: mmpose: box padding (GetBBoxCenterScale).
      shift_factor, shift_prob: mmpose: centre shift, truncated normal * factor * box size.
      half_body_padding, half_body_upper_prob: mmpose RandomHalfBody settings.
    """

    recipe: Recipe = "authors"
    flip_prob: float | None = None
    half_body_prob: float | None = None
    half_body_min_joints: int | None = None
    half_body_ext: tuple[float, float] | None = None
    box_ext: float | None = None
    random_ext: tuple[float, float] | None = None
    scale_range: tuple[float, float] | None = None
    rotation_prob: float | None = None
    rotation_max: float | None = None
    padding: float | None = None
    shift_factor: float | None = None
    shift_prob: float | None = None
    half_body_padding: float | None = None
    half_body_upper_prob: float | None = None

    def __post_init__(self):
        if self.recipe not in RECIPE_DEFAULTS:
            raise ConfigError(f"augment.recipe: {self.recipe!r} is not one of {sorted(RECIPE_DEFAULTS)}")
        for name in ("flip_prob", "half_body_prob", "rotation_prob", "shift_prob", "half_body_upper_prob"):
            v = getattr(self, name)
            if v is not None and not 0.0 <= v <= 1.0:
                raise ConfigError(f"augment.{name}: expected a probability in [0, 1], got {v}")
        if self.scale_range is not None and not 0 < self.scale_range[0] <= self.scale_range[1]:
            raise ConfigError(f"augment.scale_range: expected 0 < low <= high, got {self.scale_range}")

    def resolved(self) -> "AugmentConfig":
        """A copy with every ``None`` knob replaced by the recipe's default (``self`` if there is none)."""
        base = RECIPE_DEFAULTS[self.recipe]
        missing = {k: v for k, v in base.items() if getattr(self, k) is None}
        return dataclasses.replace(self, **missing) if missing else self


@dataclasses.dataclass(frozen=True)
class DataConfig:
    """Where the data is and how the input pipeline reads it.

    Attributes:
      format: "coco" (any COCO-format keypoint JSON, read with pycocotools) or "mpii" (the JSON list
        format: ``image``, ``joints``, ``joints_vis``, ``center``, ``scale``).
      root: prefix for relative paths below ("" = relative to the working directory).
      train_ann, train_images, val_ann, val_images: annotation file and image folder of each split.
      keypoints: built-in layout name ("coco", "mpii") or ``None`` = from the COCO category
        (``categories[0].keypoints``/``skeleton``; MPII files default to "mpii").
      sigmas: OKS sigmas override (K values); flip_pairs: flip pairs override (0-based).
      augment: training augmentation.
      mode: whose data rules the crops and targets follow, ``"authors"`` (the RSN release) or
        ``"mmpose"`` (mmpose 1.x); ``None`` = the experiment's ``train.loss.mode`` (``"authors"``
        outside an experiment). It sets the person box from the annotation (authors/HRNet:
        ``x2 = x + w - 1`` clipped; mmpose: ``x2 = x + w``, both ends clipped to ``[0, W-1]``), the
        centre/scale arithmetic and crop matrix construction (``geometry.get_affine_transform``),
        the keypoint bounds rule (authors: a keypoint outside ``[0, W-1] x [0, H-1]`` of the crop is
        invisible; mmpose: only the heatmap cell must fall on the map) and the default encode mode.
      encode_mode: heatmap target rules (``codec.MegviiHeatmapCodec.encode_mode``); ``None`` = ``mode``.
      test_padding: eval box extension (w, h factors) before the aspect fix; authors (1.09, 1.135).
      num_parallel_calls: parallel decode/augment workers (-1 = tf.data.AUTOTUNE).
      shuffle_buffer: 0 = permute the whole instance list each epoch (indices only, cheap);
        > 0 = a tf.data shuffle buffer of that many instances instead.
      prefetch: batches prefetched (-1 = AUTOTUNE).
      check_images: at load time, check every image file exists and starts like a JPEG/PNG/BMP.
      skip_bad_images: drop (and count, with a logged warning) instances whose image is missing or
        cannot be decoded, instead of raising.
      mpii_scale_factor, mpii_center_shift: MPII box from the file's (center, scale) (scale in 200-px
        units): side = scale * 200 * factor, centre y += shift * scale (authors: 1.25 and 15).
    """

    format: Literal["coco", "mpii"] = "coco"
    root: str = ""
    train_ann: str = ""
    train_images: str = ""
    val_ann: str = ""
    val_images: str = ""
    keypoints: str | None = None
    sigmas: tuple[float, ...] | None = None
    flip_pairs: tuple[tuple[int, int], ...] | None = None
    augment: AugmentConfig = AugmentConfig()
    mode: Mode | None = None
    encode_mode: Mode | None = None
    test_padding: tuple[float, float] = AUTHORS_BOX_PADDING
    num_parallel_calls: int = -1
    shuffle_buffer: int = 0
    prefetch: int = -1
    check_images: bool = True
    skip_bad_images: bool = False
    mpii_scale_factor: float = 1.25
    mpii_center_shift: float = 15.0

    def __post_init__(self):
        if self.format not in ("coco", "mpii"):
            raise ConfigError(f"data.format: {self.format!r} is not one of ['coco', 'mpii']")
        for name in ("mode", "encode_mode"):
            if getattr(self, name) not in (None, "authors", "mmpose"):
                raise ConfigError(f"data.{name}: {getattr(self, name)!r} is not one of ['authors', 'mmpose'] (or null)")

    @property
    def resolved_mode(self) -> str:
        """``mode``, or ``"authors"`` when it is unset (experiments set it from ``train.loss.mode``)."""
        return self.mode or "authors"

    @property
    def resolved_encode_mode(self) -> str:
        """``encode_mode``, or the data ``mode``."""
        return self.encode_mode or self.resolved_mode

    def path(self, value: str) -> str:
        """``value`` joined to ``root`` unless absolute ("" = ``root`` itself)."""
        if not value:
            return os.path.expanduser(self.root)
        value = os.path.expanduser(value)
        return value if os.path.isabs(value) or not self.root else os.path.join(os.path.expanduser(self.root), value)

    def split_paths(self, split: str) -> tuple[str, str]:
        """(annotation file, image folder) of ``split`` ("train" or "val"), resolved against ``root``."""
        if split not in ("train", "val"):
            raise ValueError(f"split must be 'train' or 'val' (got {split!r})")
        ann, images = (self.train_ann, self.train_images) if split == "train" else (self.val_ann, self.val_images)
        if not ann:
            raise ConfigError(f"data.{split}_ann is not set")
        return self.path(ann), self.path(images)

    def replace(self, **changes) -> "DataConfig":
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict:
        return to_dict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "DataConfig":
        return from_dict(cls, data, "data")


def coco_data_config(root: str = "data/coco", **changes) -> DataConfig:
    """COCO 2017 laid out as ``root/annotations/person_keypoints_{train,val}2017.json`` + ``root/{train,val}2017/``."""
    return DataConfig(format="coco", root=root,
                      train_ann="annotations/person_keypoints_train2017.json", train_images="train2017",
                      val_ann="annotations/person_keypoints_val2017.json", val_images="val2017", **changes)


def mpii_data_config(root: str = "data/mpii", **changes) -> DataConfig:
    """MPII in the JSON list format (``root/annotations/mpii_{train,val}.json``, ``root/images/``), authors' MPII
    augmentation: fixed 1.25 box (no random extension), scale U(0.75, 1.25), rotation +-60 with p 0.5,
    half body with > 8 joints, p 0.5, extension 0.6/0.6."""
    aug = AugmentConfig(recipe="authors", box_ext=1.0, random_ext=(0.0, 0.0), scale_range=(0.75, 1.25),
                        rotation_max=60.0, half_body_min_joints=9, half_body_prob=0.5, half_body_ext=(0.6, 0.6))
    kwargs = dict(format="mpii", root=root, keypoints="mpii", train_ann="annotations/mpii_train.json",
                  train_images="images", val_ann="annotations/mpii_val.json", val_images="images", augment=aug)
    kwargs.update(changes)
    return DataConfig(**kwargs)


def synthetic_data_config(root: str = "data/synth", **changes) -> DataConfig:
    """The layout ``rsn synth --out ROOT`` writes: ``ROOT/images/``, ``ROOT/person_keypoints_{train,val}.json``."""
    return DataConfig(format="coco", root=root, train_ann="person_keypoints_train.json", train_images="images",
                      val_ann="person_keypoints_val.json", val_images="images", **changes)
