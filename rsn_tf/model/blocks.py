"""Building blocks as plain ``apply_*(x, ..., name=)`` functions; every layer is named.

Names mirror mmpose's module paths (``conv_bn_relu2_{i}_{j}`` becomes ``..._step{i}_{j}``) so that
weight conversion is a rename (see :mod:`rsn_tf.convert`).

All tensors are NHWC. Padding follows PyTorch: a padded stride-2 conv or pool gets explicit
``ZeroPadding2D`` + ``"valid"`` (TF ``"same"`` pads asymmetrically); 3x3 stride-1 pad-1 is ``"same"``.
"""
from __future__ import annotations

import keras
from keras import layers

import numpy as np

from rsn_tf.model.layers import BatchNormalization, ChannelSplit, SpaceToDepth


def batch_norm(config, name: str) -> BatchNormalization:
    """The BatchNorm layer of every conv_bn (and the PRM's): PyTorch's eps 1e-5, momentum 0.1 and
    running-variance update (see :class:`rsn_tf.model.layers.BatchNormalization`)."""
    return BatchNormalization(epsilon=config.bn_epsilon, momentum=config.bn_momentum,
                     running_variance=config.bn_running_variance, name=name)


def conv_bn(x, filters, kernel_size, *, strides=1, relu=True, name, config, groups=1, torch_pad=None):
    """Conv2D (no bias) + BatchNorm (+ ReLU): mmcv's ``ConvModule`` (layers ``{name}_conv/_bn/_relu``).

    ``torch_pad``: explicit symmetric zero padding (PyTorch ``padding=``) for kernels where TF "same"
    differs (stride 2). Default: "same" for odd kernels at stride 1, else "valid".
    """
    if torch_pad:
        x = layers.ZeroPadding2D(torch_pad, name=f"{name}_pad")(x)
        padding = "valid"
    else:
        padding = "same" if strides == 1 and kernel_size > 1 else "valid"
    if groups > 1 and groups == x.shape[-1] and filters == groups:
        x = layers.DepthwiseConv2D(kernel_size, strides=strides, padding=padding, use_bias=False,
                                   name=f"{name}_conv")(x)
    else:
        x = layers.Conv2D(filters, kernel_size, strides=strides, padding=padding, use_bias=False,
                          groups=groups, name=f"{name}_conv")(x)
    x = batch_norm(config, f"{name}_bn")(x)
    if relu:
        x = layers.ReLU(name=f"{name}_relu")(x)
    return x


def apply_stem(x, config, name="stem"):
    """ResNet top: 7x7/2 conv (pad 3) + BN + ReLU, 3x3/2 max-pool (pad 1). [N,H,W,3] -> [N,H/4,W/4,64].

    With ``config.stem_space_to_depth`` the conv is the exact space-to-depth form: 2x2 space-to-depth,
    zero pad (2 before, 1 after) in block units, 4x4 stride-1 conv on 12 channels (same layer names,
    kernel [4,4,12,C] = :func:`stem_kernel_to_space_to_depth` of the 7x7 one).
    """
    if config.stem_space_to_depth:
        x = SpaceToDepth(2, name=f"{name}_conv_s2d")(x)
        x = layers.ZeroPadding2D(((2, 1), (2, 1)), name=f"{name}_conv_pad")(x)
        x = layers.Conv2D(config.stem_channels, 4, padding="valid", use_bias=False, name=f"{name}_conv_conv")(x)
        x = batch_norm(config, f"{name}_conv_bn")(x)
        x = layers.ReLU(name=f"{name}_conv_relu")(x)
    else:
        x = conv_bn(x, config.stem_channels, 7, strides=2, torch_pad=3, name=f"{name}_conv", config=config)
    # Zero padding is exact for the pool: its input follows a ReLU (>= 0).
    x = layers.ZeroPadding2D(1, name=f"{name}_pool_pad")(x)
    return layers.MaxPooling2D(3, strides=2, padding="valid", name=f"{name}_pool")(x)


def stem_kernel_to_space_to_depth(kernel) -> np.ndarray:
    """7x7 stride-2 stem kernel [7,7,C,F] (input padded by 3) -> the 4x4 kernel [4,4,4C,F] of the
    space-to-depth form (see :func:`apply_stem`).

    Output row i of the 7x7/2 conv reads input rows 2i-3..2i+3, i.e. space-to-depth blocks i-2..i+1 with
    the first row of block i-2 unused: zero-extend the kernel in front to 8x8, then tap (2d+p) becomes
    block offset d, phase p, and the phases join the channels in space-to-depth order (py, px, c).
    """
    k = np.asarray(kernel)
    if k.shape[:2] != (7, 7):
        raise ValueError(f"stem kernel must be [7,7,C,F] (got {k.shape})")
    c, f = k.shape[2:]
    k8 = np.zeros((8, 8, c, f), k.dtype)
    k8[1:, 1:] = k
    return k8.reshape(4, 2, 4, 2, c, f).transpose(0, 2, 1, 3, 4, 5).reshape(4, 4, 4 * c, f)


def _shortcut(x, out_channels, strides, name, config):
    in_channels = x.shape[-1]
    if strides == 1 and in_channels == out_channels:
        return x
    return conv_bn(x, out_channels, 1, strides=strides, relu=False, name=f"{name}_shortcut", config=config)


def rsb_branch_width(in_channels: int, planes: int, config) -> int:
    """RSB branch width b: ``in_channels*26//64`` (mmpose) or ``planes*26//64`` (paper/MegEngine)."""
    base = in_channels if config.branch_width == "input" else planes
    return base * config.expand_times // config.res_top_channels


def apply_rsb(x, planes, *, strides, name, config):
    """Residual Steps Block (the paper's RSB, Fig. 2). [N,H,W,Cin] -> [N,H/s,W/s,planes*expansion].

    One 1x1 conv to ``num_steps*b`` channels, split into ``num_steps`` chunks; branch i (1-based)
    has i 3x3 steps, step j of branch i also receiving step j of branch i-1 (if i > j); the last
    step of every branch is concatenated, then 1x1 conv + BN, add the shortcut, ReLU.
    """
    n = config.num_steps
    b = rsb_branch_width(x.shape[-1], planes, config)
    out_channels = planes * config.expansion
    identity = x
    y = conv_bn(x, n * b, 1, strides=strides, name=f"{name}_conv1", config=config)
    chunks = ChannelSplit(n, name=f"{name}_split")(y)
    outputs: list[list] = []
    for i in range(n):
        branch = []
        for j in range(i + 1):
            inp = chunks[i] if j == 0 else branch[j - 1]
            if i > j:
                inp = layers.Add(name=f"{name}_sum{i + 1}_{j + 1}")([inp, outputs[i - 1][j]])
            branch.append(conv_bn(inp, b, 3, name=f"{name}_step{i + 1}_{j + 1}", config=config))
        outputs.append(branch)
    y = layers.Concatenate(name=f"{name}_concat")([branch[-1] for branch in outputs])
    y = conv_bn(y, out_channels, 1, relu=False, name=f"{name}_conv3", config=config)
    y = layers.Add(name=f"{name}_add")([y, _shortcut(identity, out_channels, strides, name, config)])
    return layers.ReLU(name=f"{name}_out")(y)


def apply_basic_block(x, planes, *, strides, name, config):
    """ResNet basic block (baseline): 3x3(stride) CBR, 3x3 CB, + shortcut, ReLU."""
    out_channels = planes * config.expansion
    y = conv_bn(x, planes, 3, strides=strides, torch_pad=1 if strides > 1 else None, name=f"{name}_conv1", config=config)
    y = conv_bn(y, out_channels, 3, relu=False, name=f"{name}_conv2", config=config)
    y = layers.Add(name=f"{name}_add")([y, _shortcut(x, out_channels, strides, name, config)])
    return layers.ReLU(name=f"{name}_out")(y)


def apply_bottleneck(x, planes, *, strides, name, config):
    """ResNet bottleneck (baseline): 1x1 CBR, 3x3(stride, pad 1) CBR, 1x1 CB to planes*expansion,
    + shortcut, ReLU.

    With expansion 1 and [2,2,2,2] this is the authors' "Res-18" baseline (8.55 M params, 2.07 GMACs:
    the stride in the 3x3, as in torchvision, is what gives their 2.07).
    """
    out_channels = planes * config.expansion
    y = conv_bn(x, planes, 1, name=f"{name}_conv1", config=config)
    y = conv_bn(y, planes, 3, strides=strides, torch_pad=1 if strides > 1 else None, name=f"{name}_conv2", config=config)
    y = conv_bn(y, out_channels, 1, relu=False, name=f"{name}_conv3", config=config)
    y = layers.Add(name=f"{name}_add")([y, _shortcut(x, out_channels, strides, name, config)])
    return layers.ReLU(name=f"{name}_out")(y)


BLOCKS = {"rsb": apply_rsb, "basic": apply_basic_block, "bottleneck": apply_bottleneck}
