"""Model configuration (:class:`ModelConfig`) and the named presets users type (``rsn18``, ``2xrsn50``...)."""
from __future__ import annotations

import dataclasses
from typing import Literal

from rsn_tf.config import ConfigError, from_dict, to_dict

# mmpose's / the authors' preprocessing, in 0..255 pixel units.
IMAGENET_MEAN_RGB = (123.675, 116.28, 103.53)
IMAGENET_STD_RGB = (58.395, 57.12, 57.375)


@dataclasses.dataclass(frozen=True)
class Preprocessing:
    """How raw uint8 pixels become network input: ``(pixel[color_order] - mean) / std``.

    ``mean``/``std`` are in 0..255 units and listed in ``color_order`` (the channel order the network
    sees). The authors' code uses BGR with the ImageNet statistics reversed; mmpose uses RGB.
    """

    color_order: Literal["rgb", "bgr"] = "rgb"
    mean: tuple[float, float, float] = IMAGENET_MEAN_RGB
    std: tuple[float, float, float] = IMAGENET_STD_RGB


# The authors' official code: BGR input, the ImageNet statistics in that order (mmpose: the default, RGB).
AUTHORS_PREPROCESSING = Preprocessing(color_order="bgr", mean=IMAGENET_MEAN_RGB[::-1], std=IMAGENET_STD_RGB[::-1])


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """Everything that fixes an RSN-family network's graph.

    Attributes:
      block: ``"rsb"`` (Residual Steps Block), ``"basic"`` or ``"bottleneck"`` (the ResNet baselines).
      num_blocks: blocks per level (4 levels).
      num_stages: stacked single-stage modules (the "2x", "3x", "4x" prefix).
      num_steps: RSB branches (2-6).
      planes: per-level planes; level output channels are ``planes * expansion``.
      expansion: block expansion (1 for RSB in mmpose; 4 for the bottleneck / paper RSN-50).
      branch_width: ``"input"`` -> RSB branch width ``in_channels*26//64`` (mmpose, official PyTorch);
        ``"planes"`` -> ``planes*26//64`` (MegEngine; the paper's complexity).
      unit_channels: global-net (upsample unit) width C.
      num_keypoints: K heatmap channels.
      input_size: (H, W) of the crop, each divisible by 32. Heatmaps are (H/4, W/4).
      prm: Pose Refine Machine: ``"none"``, ``"paper"`` (authors' per-keypoint spatial gate) or
        ``"mmpose"`` (mmpose's Linear/BN1d channel path and single-channel spatial gate).
      prm_heads: ``"final"`` (only the last head, as the paper) or ``"all"`` (every head, as mmpose).
      upconv_before_resize: apply each unit's 1x1 ``up_conv``+BN before the align-corners upsample
        instead of after. Exact (a per-pixel affine map commutes with an interpolation whose weights
        sum to 1) and cheaper; same weights. A deploy-time switch.
      stem_space_to_depth: run the stem's 7x7 stride-2 conv as a 2x2 space-to-depth of the crop followed
        by a 4x4 stride-1 conv on 12 channels (the 7x7 kernel zero-extended to 8x8 and regrouped; see
        :func:`rsn_tf.model.blocks.stem_kernel_to_space_to_depth`). Exact; the kernel has a different
        shape, so weights move with that function. A deploy-time switch: int8 XNNPACK runs the
        12-channel conv ~1.6x faster than the 3-channel one.
      bn_epsilon, bn_momentum: BatchNorm settings (PyTorch eps 1e-5, momentum 0.1 == Keras 0.9).
      bn_running_variance: how training updates the moving variance: ``"unbiased"`` (PyTorch's
        ``BatchNorm2d``, what mmpose and the authors train with) or ``"biased"`` (Keras' own
        ``BatchNormalization``); see :class:`rsn_tf.model.layers.BatchNormalization`.
      preprocessing: the pixel normalisation the weights expect.
    """

    block: Literal["rsb", "basic", "bottleneck"] = "rsb"
    num_blocks: tuple[int, int, int, int] = (2, 2, 2, 2)
    num_stages: int = 1
    num_steps: int = 4
    planes: tuple[int, int, int, int] = (64, 128, 256, 512)
    expansion: int = 1
    branch_width: Literal["input", "planes"] = "input"
    expand_times: int = 26
    res_top_channels: int = 64
    stem_channels: int = 64
    unit_channels: int = 256
    num_keypoints: int = 17
    input_size: tuple[int, int] = (256, 192)
    prm: Literal["none", "paper", "mmpose"] = "none"
    prm_heads: Literal["final", "all"] = "final"
    upconv_before_resize: bool = False
    stem_space_to_depth: bool = False
    bn_epsilon: float = 1e-5
    bn_momentum: float = 0.9
    bn_running_variance: Literal["unbiased", "biased"] = "unbiased"
    preprocessing: Preprocessing = Preprocessing()

    def __post_init__(self):
        if not 2 <= self.num_steps <= 6:
            raise ConfigError(f"num_steps must be in 2..6 (got {self.num_steps})")
        if self.num_stages < 1:
            raise ConfigError(f"num_stages must be >= 1 (got {self.num_stages})")
        if len(self.num_blocks) != 4 or min(self.num_blocks) < 1:
            raise ConfigError(f"num_blocks must be 4 positive counts (got {self.num_blocks})")
        h, w = self.input_size
        if h <= 0 or w <= 0 or h % 32 or w % 32:
            raise ConfigError(f"input_size must be (H, W) with both divisible by 32 (got {self.input_size})")
        if self.num_keypoints < 1:
            raise ConfigError(f"num_keypoints must be >= 1 (got {self.num_keypoints})")

    @property
    def heatmap_size(self) -> tuple[int, int]:
        return self.input_size[0] // 4, self.input_size[1] // 4

    @property
    def num_heads(self) -> int:
        return self.num_stages * 4

    def replace(self, **changes) -> "ModelConfig":
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict:
        return to_dict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "ModelConfig":
        return from_dict(cls, data, "model")


_RSN = dict(block="rsb", expansion=1, branch_width="input")
# The authors' MegEngine RSN-50 family (the paper's GFLOPs): planes-based branch width, expansion 4, [5,5,6,3], narrower planes.
_PAPER50 = dict(block="rsb", expansion=4, branch_width="planes", num_blocks=(5, 5, 6, 3), planes=(64, 128, 192, 384))

PRESETS: dict[str, dict] = {
    "rsn18": dict(_RSN, num_blocks=(2, 2, 2, 2)),
    "rsn50": dict(_RSN, num_blocks=(3, 4, 6, 3)),
    "rsn101": dict(_RSN, num_blocks=(3, 4, 23, 3)),
    "2xrsn50": dict(_RSN, num_blocks=(3, 4, 6, 3), num_stages=2),
    "3xrsn50": dict(_RSN, num_blocks=(3, 4, 6, 3), num_stages=3),
    "4xrsn50": dict(_RSN, num_blocks=(3, 4, 6, 3), num_stages=4),
    # The authors' "Res-18" baseline: the RSN skeleton with a plain bottleneck (expansion 1) per block.
    "res18": dict(block="bottleneck", expansion=1, num_blocks=(2, 2, 2, 2)),
    # MSPN's ResNet-50 single stage: bottleneck, expansion 4 (levels of 256..2048 channels).
    "res50": dict(block="bottleneck", expansion=4, num_blocks=(3, 4, 6, 3)),
    "rsn18_paper": dict(_RSN, branch_width="planes", num_blocks=(2, 2, 2, 2)),
    "rsn50_paper": dict(_PAPER50),
    "2xrsn50_paper": dict(_PAPER50, num_stages=2),
    "3xrsn50_paper": dict(_PAPER50, num_stages=3),
    "4xrsn50_paper": dict(_PAPER50, num_stages=4),
}

# What the papers / the authors' README report (GFLOPs at 256x192), printed beside our counts.
PAPER_GFLOPS = {
    "res18": 2.3, "rsn18": 2.5, "rsn50": 6.4, "rsn101": 11.5,
    "2xrsn50": 13.9, "3xrsn50": 20.7, "4xrsn50": 29.3,
    "rsn18_paper": 2.5, "rsn50_paper": 6.4, "2xrsn50_paper": 13.9, "3xrsn50_paper": 20.7, "4xrsn50_paper": 29.3,
}

# Input sizes by name: the COCO default, the large COCO setting, and MPII (16 keypoints).
INPUT_SIZES = {"256x192": ((256, 192), 17), "384x288": ((384, 288), 17), "256x256": ((256, 256), 16)}


def preset_config(name: str, input_size: tuple[int, int] | str | None = None,
                  num_keypoints: int | None = None, **overrides) -> ModelConfig:
    """The :class:`ModelConfig` of preset ``name``.

    ``input_size`` is ``(H, W)`` or ``"HxW"``; ``"256x256"`` also switches to 16 keypoints (MPII)
    unless ``num_keypoints`` is given.
    """
    key = name.lower()
    if key not in PRESETS:
        raise ConfigError(f"unknown preset {name!r}; expected one of {sorted(PRESETS)}")
    kwargs = dict(PRESETS[key])
    if isinstance(input_size, str):
        input_size, default_k = parse_input_size(input_size)
        kwargs["num_keypoints"] = default_k
    if input_size is not None:
        kwargs["input_size"] = tuple(input_size)
    if num_keypoints is not None:
        kwargs["num_keypoints"] = num_keypoints
    kwargs.update(overrides)
    return ModelConfig(**kwargs)


def parse_input_size(text: str) -> tuple[tuple[int, int], int]:
    """``"256x192"`` (height x width; ``X`` and ``×`` also accepted) -> ((256, 192), default keypoint count
    for that size). The one spelling of a size in every command (``--input``, ``rsn synth --image-size``)."""
    norm = str(text).strip().lower().replace("×", "x")
    if norm in INPUT_SIZES:
        return INPUT_SIZES[norm]
    try:
        h, w = (int(v) for v in norm.split("x"))
    except ValueError:
        raise ConfigError(f"input size {text!r}: expected HxW (height x width), e.g. 256x192") from None
    if h < 1 or w < 1:
        raise ConfigError(f"input size {text!r}: height and width must be positive")
    return (h, w), 17
