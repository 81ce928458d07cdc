"""mmpose RSN checkpoints <-> :class:`~rsn_tf.model.RSNModel`: key mapping, architecture inference, strict load.

mmpose's RSN is ``backbone`` (``RSN``) + ``head`` (``MSPNHead``); our Keras layer names mirror its module
paths (see :mod:`rsn_tf.model.blocks`), so the mapping is a handful of renaming rules (:data:`_RULES`)
plus a layout change per layer type:

* Conv2d ``[O, I, kh, kw]`` -> Conv2D kernel ``[kh, kw, I, O]``;
* depthwise Conv2d ``[C, 1, kh, kw]`` -> DepthwiseConv2D kernel ``[kh, kw, C, 1]``;
* Linear ``[out, in]`` -> Dense kernel ``[in, out]`` (+ bias);
* BatchNorm ``weight, bias, running_mean, running_var`` -> ``gamma, beta, moving_mean, moving_variance``
  (our BN layers use PyTorch's eps 1e-5).

The architecture (stages, blocks per level, ``num_steps``, widths, keypoints, PRM) is read from the
keys and shapes, so any mmpose RSN variant converts, not only the public ones.
"""
from __future__ import annotations

import collections
import os
import re

import keras
import numpy as np

from rsn_tf.convert.checkpoint_io import load_state_dict
from rsn_tf.model.config import ModelConfig, preset_config
from rsn_tf.model.rsn import RSNModel

DEFAULT_INPUT_SIZE = (256, 192)  # the input is not stored in the weights (mmpose: codec input_size)
KEYPOINT_LAYOUTS = {17: "coco", 16: "mpii"}


class ConversionError(ValueError):
    """The checkpoint does not fit the model: lists missing / unused tensors and shape mismatches."""


# Keras layer-name stem (without the trailing ``_conv``/``_bn`` of a conv_bn) -> mmpose module path.
_B = r"backbone.multi_stage_rsn.\1"
_BLOCK = r"s(\d+)_layer(\d+)_b(\d+)_"
_H = r"head.predict_layers.\1"
_RULES = [(re.compile(p), r) for p, r in [
    (r"stem_conv", "backbone.top.top.0"),
    (_BLOCK + r"conv1", _B + r".downsample.layer\2.\3.conv_bn_relu1"),
    (_BLOCK + r"step(\d+)_(\d+)", _B + r".downsample.layer\2.\3.conv_bn_relu2_\4_\5"),
    (_BLOCK + r"conv3", _B + r".downsample.layer\2.\3.conv_bn3"),
    (_BLOCK + r"shortcut", _B + r".downsample.layer\2.\3.downsample"),
    (r"s(\d+)_up(\d+)_(in_skip|up_conv|out_skip1|out_skip2|cross_conv)", _B + r".upsample.up\2.\3"),
    (r"head(\d+)_conv1", _H + ".conv_layers.0"),
    (r"head(\d+)_conv2", _H + ".conv_layers.1"),
    (r"head(\d+)_prm_conv1", _H + ".prm.conv_bn_relu_prm_1"),
    (r"head(\d+)_prm_bottom1", _H + ".prm.bottom_path.0"),
    (r"head(\d+)_prm_bottom_dw", _H + ".prm.bottom_path.1.depthwise_conv"),
    (r"head(\d+)_prm_bottom_pw", _H + ".prm.bottom_path.1.pointwise_conv"),
]]
# PRM middle path: nn.Sequential(Linear, BN1d, ReLU, Linear, BN1d, ReLU, Sigmoid) -> indices 0,1,3,4.
_MID_RULES = [(re.compile(rf"head(\d+)_prm_mid{i}_{kind}"), rf"{_H}.prm.middle_path.{idx}")
              for i, kind, idx in [(1, "fc", 0), (1, "bn", 1), (2, "fc", 3), (2, "bn", 4)]]

# Per Keras layer type: (torch param names in Keras weight order, axis permutation torch -> Keras).
_BN_PARAMS = ("weight", "bias", "running_mean", "running_var")


def module_path(layer_name: str) -> str:
    """mmpose module path of a weighted Keras layer, e.g. ``s0_layer2_b0_step3_1_conv`` ->
    ``backbone.multi_stage_rsn.0.downsample.layer2.0.conv_bn_relu2_3_1.conv``."""
    for pattern, repl in _MID_RULES:
        if pattern.fullmatch(layer_name):
            return pattern.sub(repl, layer_name)
    stem, _, leaf = layer_name.rpartition("_")
    if leaf in ("conv", "bn"):
        for pattern, repl in _RULES:
            if pattern.fullmatch(stem):
                return f"{pattern.sub(repl, stem)}.{leaf}"
    raise ConversionError(f"Keras layer {layer_name!r} has no mmpose counterpart "
                          "(mmpose RSN has only RSB blocks and the mmpose-form PRM)")


def _layer_params(layer) -> list[tuple[str, keras.Variable, tuple[int, ...] | None]]:
    """``[(torch key, Keras variable, permutation torch->Keras or None)]`` for one weighted layer."""
    prefix = module_path(layer.name)
    if isinstance(layer, keras.layers.BatchNormalization):
        return [(f"{prefix}.{p}", v, None) for p, v in zip(_BN_PARAMS, layer.weights)]
    if isinstance(layer, keras.layers.DepthwiseConv2D):
        perm = (2, 3, 0, 1)  # [C, 1, kh, kw] -> [kh, kw, C, 1]
    elif isinstance(layer, keras.layers.Conv2D):
        perm = (2, 3, 1, 0)  # OIHW -> HWIO
    elif isinstance(layer, keras.layers.Dense):
        perm = (1, 0)
    else:
        raise ConversionError(f"Keras layer {layer.name!r} ({type(layer).__name__}) has no mmpose counterpart")
    params = [(f"{prefix}.weight", layer.weights[0], perm)]
    if len(layer.weights) > 1:
        params.append((f"{prefix}.bias", layer.weights[1], None))
    return params


def _torch_shape(keras_shape, perm):
    if perm is None:
        return tuple(keras_shape)
    inverse = np.argsort(perm)
    return tuple(int(keras_shape[i]) for i in inverse)


# ------------------------------------------------------------------------------------ key hygiene
def normalize_state_dict(state_dict: dict[str, np.ndarray]) -> tuple[dict[str, np.ndarray], str]:
    """Drop non-weights and rename to mmpose 1.x keys. Returns ``(state_dict, "1.x" | "0.x")``.

    * ``*.num_batches_tracked`` (a BN training counter) and ``data_preprocessor.*`` are not weights;
    * a DataParallel ``module.`` prefix is stripped;
    * mmpose 0.x ``keypoint_head.`` becomes ``head.`` (as mmpose's own load hook does).
    """
    out, fmt = {}, "1.x"
    for key, value in state_dict.items():
        if key.startswith("module."):
            key = key[len("module."):]
        if key.endswith(".num_batches_tracked") or key.startswith("data_preprocessor."):
            continue
        if key.startswith("keypoint_head."):
            key, fmt = "head." + key[len("keypoint_head."):], "0.x"
        out[key] = value
    return out, fmt


# --------------------------------------------------------------------------- architecture inference
def _indices(keys, pattern) -> list[tuple[int, ...]]:
    rx = re.compile(pattern)
    return sorted({tuple(int(g) for g in m.groups()) for k in keys if (m := rx.match(k))})


def _shape(sd, key):
    if key not in sd:
        raise ConversionError(f"not an mmpose RSN checkpoint: expected tensor {key!r} is missing")
    return sd[key].shape


def infer_config(state_dict: dict[str, np.ndarray], input_size=DEFAULT_INPUT_SIZE) -> ModelConfig:
    """The :class:`ModelConfig` of a (normalised, see :func:`normalize_state_dict`) mmpose RSN state dict."""
    keys = list(state_dict)
    ds = r"backbone\.multi_stage_rsn\.(\d+)\.downsample\.layer(\d+)\.(\d+)\."
    stages = {s for (s,) in _indices(keys, r"backbone\.multi_stage_rsn\.(\d+)\.")}
    expected = ("an mmpose RSN pose checkpoint (backbone RSN: 'backbone.multi_stage_rsn.*' Residual Steps Blocks; "
                "head MSPNHead: 'head.predict_layers.*')")
    tops = sorted({k.split(".")[0] for k in keys})
    detector = [t for t in tops if t in ("rpn_head", "roi_head", "bbox_head", "neck", "mask_head")]
    if detector:
        raise ConversionError(f"this looks like a detector checkpoint (top-level modules {tops}); expected {expected}")
    if not stages or not any(".conv_bn_relu2_" in k for k in keys):
        raise ConversionError(f"not an mmpose RSN checkpoint: expected {expected}; found no RSN backbone tensors "
                              f"(top-level modules {tops}; first keys: {keys[:3]})")
    if not any(k.startswith("head.predict_layers.") for k in keys):
        heads = sorted({".".join(k.split(".")[:2]) for k in keys if not k.startswith("backbone.")})
        raise ConversionError(f"the checkpoint has an RSN backbone but not mmpose's MSPNHead: expected "
                              f"'head.predict_layers.*' tensors, found {heads[:6] or 'no head'}")
    num_stages = max(stages) + 1
    blocks = _indices(keys, ds)
    units = {u for (_, u) in _indices(keys, r"backbone\.multi_stage_rsn\.(\d+)\.upsample\.up(\d+)\.")}
    levels = {l for (_, l, _) in blocks}
    if levels != {1, 2, 3, 4} or units != {1, 2, 3, 4}:
        raise ConversionError(f"only 4-level / 4-unit RSNs are supported (mmpose's num_units=4); "
                              f"found levels {sorted(levels)} and units {sorted(units)}")
    num_blocks = tuple(1 + max(b for (s, l, b) in blocks if s == 0 and l == level) for level in (1, 2, 3, 4))
    for s in range(1, num_stages):
        other = tuple(1 + max((b for (t, l, b) in blocks if t == s and l == level), default=-1) for level in (1, 2, 3, 4))
        if other != num_blocks:
            raise ConversionError(f"stage {s} has blocks {other}, stage 0 has {num_blocks}: stages must match")
    num_steps = max(i for (i, _) in _indices(keys, r".*\.conv_bn_relu2_(\d+)_(\d+)\."))

    prefix = "backbone.multi_stage_rsn.0.downsample"
    planes = tuple(_shape(state_dict, f"{prefix}.layer{l}.0.conv_bn3.conv.weight")[0] for l in (1, 2, 3, 4))
    stem_channels = _shape(state_dict, "backbone.top.top.0.conv.weight")[0]
    # Branch width b = base * expand_times // res_top_channels (64), base = the block's input channels
    # ("input", mmpose) or its planes ("planes"). Every block's width is checked; expand_times (26 in
    # the public models, e.g. 4 in small test networks) is found from them.
    widths = {(l, b): _shape(state_dict, f"{prefix}.layer{l}.{b}.conv_bn_relu1.conv.weight")[0] // num_steps
              for (s, l, b) in blocks if s == 0}
    in_channels = {(l, b): (stem_channels if l == 1 else planes[l - 2]) if b == 0 else planes[l - 1]
                   for (l, b) in widths}
    res_top = ModelConfig().res_top_channels

    def fits(rule, expand):
        base = in_channels if rule == "input" else {(l, b): planes[l - 1] for (l, b) in widths}
        return all(base[key] * expand // res_top == width for key, width in widths.items())

    candidates = [ModelConfig().expand_times] + list(range(1, 4 * res_top + 1))
    found = next(((r, e) for e in candidates for r in ("input", "planes") if fits(r, e)), None)
    if found is None:
        width = widths[(2, 0)]
        raise ConversionError(f"RSB branch widths (e.g. {width} at layer2.0) fit neither in_channels*e//64 nor "
                              f"planes*e//64 for any expand_times e (the public models use e=26: "
                              f"{planes[0] * 26 // 64} or {planes[1] * 26 // 64})")
    branch_width, expand_times = found

    unit_channels = _shape(state_dict, "backbone.multi_stage_rsn.0.upsample.up1.in_skip.conv.weight")[0]
    num_keypoints = _shape(state_dict, "head.predict_layers.0.conv_layers.1.conv.weight")[0]
    heads = {h for (h,) in _indices(keys, r"head\.predict_layers\.(\d+)\.")}
    prm_heads = {h for (h,) in _indices(keys, r"head\.predict_layers\.(\d+)\.prm\.")}
    prm, prm_where = "none", "final"
    if prm_heads:
        prm = "mmpose"
        if prm_heads == heads:
            prm_where = "all"
        elif prm_heads != {max(heads)}:
            raise ConversionError(f"PRM on heads {sorted(prm_heads)}: only all heads or the final one are supported")
    return ModelConfig(block="rsb", num_blocks=num_blocks, num_stages=num_stages, num_steps=num_steps,
                       planes=planes, expansion=1, branch_width=branch_width, expand_times=expand_times,
                       stem_channels=stem_channels,
                       unit_channels=unit_channels, num_keypoints=num_keypoints, input_size=tuple(input_size),
                       prm=prm, prm_heads=prm_where)


# ------------------------------------------------------------------------------------- weights
def _listing(title, items, limit=60):
    shown = "\n    ".join(items[:limit])
    more = f"\n    ... and {len(items) - limit} more" if len(items) > limit else ""
    return f"  {title} ({len(items)}):\n    {shown}{more}"


def load_mmpose_weights(model: RSNModel, state_dict: dict[str, np.ndarray]) -> None:
    """Copy a normalised mmpose state dict into ``model``: all or nothing.

    Raises :class:`ConversionError` listing every checkpoint tensor the model lacks (unused), every
    model weight the checkpoint lacks (missing) and every shape mismatch (tensor, both shapes, torch layout).
    """
    plan = []  # (layer, [arrays in Keras order])
    expected, missing, mismatched = set(), [], []
    for layer in model.layers:
        if not layer.weights:
            continue
        values = []
        for key, var, perm in _layer_params(layer):
            expected.add(key)
            if key not in state_dict:
                missing.append(key)
                continue
            tensor = np.asarray(state_dict[key])
            want = _torch_shape(var.shape, perm)
            if tensor.shape != want:
                mismatched.append(f"{key}: checkpoint {tuple(tensor.shape)}, model needs {want}")
                continue
            values.append(tensor.transpose(perm) if perm else tensor)
        plan.append((layer, values))
    unused = [k for k in state_dict if k not in expected]
    if missing or unused or mismatched:
        parts = [_listing(t, v) for t, v in (("unused checkpoint tensors", unused), ("missing from checkpoint", missing),
                                             ("shape mismatches", mismatched)) if v]
        raise ConversionError("checkpoint does not match the model:\n" + "\n".join(parts))
    for layer, values in plan:
        layer.set_weights([v.astype(np.float32) for v in values])


def mmpose_variables(model: RSNModel) -> list[tuple[str, keras.Variable, tuple[int, ...] | None]]:
    """Every weight of ``model`` as ``(mmpose state-dict key, Keras variable, axis permutation torch -> Keras
    or None)``, in layer order (e.g. to compare gradients or optimizer slots with PyTorch's by key)."""
    return [p for layer in model.layers if layer.weights for p in _layer_params(layer)]


def mmpose_shapes(model: RSNModel) -> dict[str, tuple[int, ...]]:
    """The mmpose state-dict keys ``model`` needs and their torch-layout shapes (no weights read)."""
    return {key: _torch_shape(var.shape, perm) for layer in model.layers if layer.weights
            for key, var, perm in _layer_params(layer)}


def to_mmpose_state_dict(model: RSNModel, head_prefix: str = "head.",
                         num_batches_tracked: bool = True) -> "collections.OrderedDict[str, np.ndarray]":
    """The inverse mapping: ``model``'s weights under mmpose keys, torch layouts (for round trips and
    for going back to PyTorch). ``head_prefix="keypoint_head."`` gives mmpose 0.x names."""
    sd = collections.OrderedDict()
    for layer in model.layers:
        if not layer.weights:
            continue
        for key, var, perm in _layer_params(layer):
            value = np.asarray(var.numpy())
            if perm:
                value = value.transpose(np.argsort(perm))
            if key.startswith("head."):
                key = head_prefix + key[len("head."):]
            sd[key] = np.ascontiguousarray(value)
            if num_batches_tracked and key.endswith(".running_var"):
                sd[key[: -len("running_var")] + "num_batches_tracked"] = np.array(0, np.int64)
    return sd


# ------------------------------------------------------------------------------------- entry point
def from_mmpose(path: str, preset: str | None = None, input_size=DEFAULT_INPUT_SIZE) -> RSNModel:
    """Build an :class:`RSNModel` holding the weights of mmpose checkpoint ``path`` (.pth or .npz).

    ``preset``: build that preset (keypoints and PRM still from the checkpoint) instead of inferring the
    architecture; the strict load then checks it fits. ``input_size``: (H, W) crop, default 256x192.
    The model's ``metadata`` records the source and ``recipe: "mmpose"`` (so inference and evaluation
    default to mmpose's test recipe); its config's preprocessing is mmpose's
    (RGB, mean 123.675/116.28/103.53, std 58.395/57.12/57.375 in 0..255 units).
    Raises :class:`CheckpointError` (unreadable file) or :class:`ConversionError` (weights do not fit).
    """
    raw, info = load_state_dict(path)
    return from_mmpose_state_dict(raw, preset=preset, input_size=input_size,
                                  source=os.path.basename(os.fspath(path)), source_format=info["format"])


def from_mmpose_state_dict(state_dict: dict[str, np.ndarray], preset: str | None = None,
                           input_size=DEFAULT_INPUT_SIZE, source: str | None = None,
                           source_format: str | None = None) -> RSNModel:
    """:func:`from_mmpose` for a state dict already in memory (torch layouts, 1.x or 0.x keys)."""
    state_dict, key_format = normalize_state_dict(state_dict)
    inferred = config = infer_config(state_dict, input_size)
    if preset:
        config = preset_config(preset, input_size=tuple(input_size), num_keypoints=inferred.num_keypoints,
                               prm=inferred.prm, prm_heads=inferred.prm_heads)
    metadata = {
        "weights": "mmpose",
        "recipe": "mmpose",  # evaluated the way mmpose evaluates it (rsn_tf.recipes)
        "source": source,
        "source_format": source_format,
        "mmpose_keys": key_format,
        "keypoints": KEYPOINT_LAYOUTS.get(config.num_keypoints),
    }
    if preset:
        metadata["preset"] = preset
    model = RSNModel(config, metadata=metadata)
    try:
        load_mmpose_weights(model, state_dict)
    except ConversionError as e:
        if not preset:
            raise
        raise ConversionError(f"{e}\n  (preset {preset!r} does not fit; the checkpoint's keys say {inferred.num_stages} "
                              f"stage(s), blocks {list(inferred.num_blocks)}, num_steps {inferred.num_steps}: "
                              "convert without a preset to use them)") from None
    return model
