"""The RSN network family as one Keras functional model (Cai et al., "Learning Delicate Local
Representations for Multi-Person Pose Estimation", ECCV 2020: stem, Residual Steps Blocks, the
4-level downsample / upsample module, multi-stage stacking, Pose Refine Machine).

Data flow: crop [N,H,W,3] (normalised) -> stem [N,H/4,W/4,64] -> S single-stage modules, each a
4-level downsample module of blocks then a 4-unit upsample/global net -> per unit a heatmap head.
Outputs: S*4 heatmaps [N, H/4, W/4, K], ordered (stage, unit) with units coarse -> fine (8x6 ... 64x48
at 256x192), named ``heatmap_s{s}_u{u}``; the last one is the prediction.
"""
from __future__ import annotations

import keras
from keras import layers

from rsn_tf.model.blocks import BLOCKS, apply_stem, batch_norm, conv_bn, stem_kernel_to_space_to_depth
from rsn_tf.model.config import ModelConfig
from rsn_tf.model.layers import PRMGate, ResizeAlignCorners


def head_name(stage: int, unit: int) -> str:
    """Stable output name of stage ``stage``, unit ``unit`` (0-based; unit 3 is the finest)."""
    return f"heatmap_s{stage}_u{unit}"


def apply_downsample_module(x, config: ModelConfig, stage: int, skip1=None, skip2=None):
    """Four levels of blocks; level l>1 starts with stride 2. Returns level outputs coarsest first.

    With ``skip1/skip2`` (finest first, from the previous stage) each level output becomes
    ``layer_l(x) + skip1[l] + skip2[l]`` and that sum feeds the next level.
    """
    block = BLOCKS[config.block]
    outs = []
    for level in range(4):
        for b in range(config.num_blocks[level]):
            strides = 2 if (level > 0 and b == 0) else 1
            x = block(x, config.planes[level], strides=strides, name=f"s{stage}_layer{level + 1}_b{b}", config=config)
        if skip1 is not None:
            x = layers.Add(name=f"s{stage}_layer{level + 1}_skip_add")([x, skip1[level], skip2[level]])
        outs.append(x)
    return outs[::-1]


def apply_upsample_module(feats, config: ModelConfig, stage: int, last_stage: bool):
    """Global net: units coarse -> fine. Returns (unit outputs, skip1, skip2, cross) .

    Unit k: ``ReLU(BN(conv1x1(x)) + [BN(conv1x1(resize_ac(prev)))] )``. Non-final stages also make
    ``skip1 = CBR(x)``, ``skip2 = CBR(out)`` per level (returned finest first) and, at the finest unit,
    ``cross = CBR(out -> 64)``, the next stage's input.
    """
    c = config.unit_channels
    outs, skip1, skip2, cross = [], [], [], None
    prev = None
    for k, x in enumerate(feats):
        p = f"s{stage}_up{k + 1}"
        out = conv_bn(x, c, 1, relu=False, name=f"{p}_in_skip", config=config)
        if k > 0:
            size = tuple(x.shape[1:3])
            if config.upconv_before_resize:
                up = conv_bn(prev, c, 1, relu=False, name=f"{p}_up_conv", config=config)
                up = ResizeAlignCorners(size, name=f"{p}_resize")(up)
            else:
                up = ResizeAlignCorners(size, name=f"{p}_resize")(prev)
                up = conv_bn(up, c, 1, relu=False, name=f"{p}_up_conv", config=config)
            out = layers.Add(name=f"{p}_add")([out, up])
        out = layers.ReLU(name=f"{p}_relu")(out)
        if not last_stage:
            in_ch = x.shape[-1]
            skip1.append(conv_bn(x, in_ch, 1, name=f"{p}_out_skip1", config=config))
            skip2.append(conv_bn(out, in_ch, 1, name=f"{p}_out_skip2", config=config))
            if k == len(feats) - 1:
                cross = conv_bn(out, config.stem_channels, 1, name=f"{p}_cross_conv", config=config)
        outs.append(out)
        prev = out
    return outs, skip1[::-1], skip2[::-1], cross


def apply_prm(x, config: ModelConfig, name: str, out_name: str):
    """Pose Refine Machine on K-channel heatmaps [N,h,w,K] -> [N,h,w,K]; ``out * (1 + alpha*beta)``.

    ``paper``: alpha = sigmoid(CBR1x1(CBR1x1(GAP(out)))) per keypoint; beta = sigmoid(CBR dw9x9(CBR1x1(out)))
    per keypoint and pixel (authors' code). ``mmpose``: alpha via Linear-BN1d-ReLU x2 then sigmoid;
    beta = sigmoid(pw CBR(K->1)(dw CBR 9x9(CBR1x1(out)))), one spatial map.
    """
    k = x.shape[-1]
    out = conv_bn(x, k, 3, name=f"{name}_conv1", config=config)
    gap = layers.GlobalAveragePooling2D(keepdims=config.prm == "paper", name=f"{name}_gap")(out)
    if config.prm == "paper":
        a = conv_bn(gap, k, 1, name=f"{name}_mid1", config=config)
        a = conv_bn(a, k, 1, name=f"{name}_mid2", config=config)
    else:
        a = gap
        for i in (1, 2):
            a = layers.Dense(k, name=f"{name}_mid{i}_fc")(a)
            a = batch_norm(config, f"{name}_mid{i}_bn")(a)
            a = layers.ReLU(name=f"{name}_mid{i}_relu")(a)
        a = layers.Reshape((1, 1, k), name=f"{name}_mid_reshape")(a)
    alpha = layers.Activation("sigmoid", name=f"{name}_alpha")(a)
    b = conv_bn(out, k, 1, name=f"{name}_bottom1", config=config)
    b = conv_bn(b, k, 9, groups=k, name=f"{name}_bottom_dw", config=config)
    if config.prm == "mmpose":
        b = conv_bn(b, 1, 1, name=f"{name}_bottom_pw", config=config)
    beta = layers.Activation("sigmoid", name=f"{name}_beta")(b)
    return PRMGate(name=out_name)([out, alpha, beta])


def apply_heatmap_head(x, config: ModelConfig, index: int, out_name: str, use_prm: bool):
    """1x1 CBR (C->C), 3x3 conv + BN (C->K, no ReLU), align-corners resize to H/4 x W/4 [, PRM]."""
    p = f"head{index}"
    y = conv_bn(x, config.unit_channels, 1, name=f"{p}_conv1", config=config)
    y = conv_bn(y, config.num_keypoints, 3, relu=False, name=f"{p}_conv2", config=config)
    y = ResizeAlignCorners(config.heatmap_size, name=f"{p}_resize" if use_prm else out_name)(y)
    if use_prm:
        y = apply_prm(y, config, f"{p}_prm", out_name)
    return y


def build_graph(config: ModelConfig):
    """Input and output tensors of the whole network (see module docstring)."""
    inputs = keras.Input((*config.input_size, 3), name="image")
    x = apply_stem(inputs, config)
    skip1 = skip2 = None
    heatmaps = []
    for s in range(config.num_stages):
        last = s == config.num_stages - 1
        feats = apply_downsample_module(x, config, s, skip1, skip2)
        units, skip1, skip2, x = apply_upsample_module(feats, config, s, last)
        for u, feat in enumerate(units):
            index = s * 4 + u
            final = last and u == 3
            use_prm = config.prm != "none" and (config.prm_heads == "all" or final)
            heatmaps.append(apply_heatmap_head(feat, config, index, head_name(s, u), use_prm))
    return inputs, heatmaps


@keras.saving.register_keras_serializable(package="rsn_tf")
class RSNModel(keras.Model):
    """An RSN-family network: ``model(crops) -> [S*4 heatmaps]`` (see module docstring).

    Every head is addressable by its name (:func:`head_name`: ``heatmap_s{stage}_u{unit}``):
    ``model.heads`` lists them in output order, ``model.named(model(x))`` maps a call's outputs to
    them, ``model.head_model(name, ...)`` is a model of just those heads (sharing the layers), and
    ``compile(loss={name: ...})`` works as for any multi-output Keras model. With
    ``compile(loss=rsn_tf.losses.RSNLoss())`` the loss sees all heads at once and the targets dict of
    the data pipeline, so ``model.fit`` trains a plain RSNModel.

    Args:
      config: a :class:`ModelConfig` or its dict.
      metadata: JSON-serialisable facts carried with the weights (keypoint spec, where the weights
        came from, the training config...). Saved in ``.keras`` files.
      heads: head names to output, in this order (``None`` = all S*4, coarse -> fine per stage). One
        name gives a single-tensor output ([N, H/4, W/4, K]); layers no chosen head needs are dropped.
    """

    def __init__(self, config, metadata=None, heads=None, _tensors=None, **kwargs):
        if isinstance(config, dict):
            config = ModelConfig.from_dict(config)
        # _tensors: (inputs, [every head's output]) of an existing RSNModel, to share its layers.
        inputs, outputs = _tensors if _tensors is not None else build_graph(config)
        every = [head_name(s, u) for s in range(config.num_stages) for u in range(4)]
        chosen = list(every if heads is None else heads)
        unknown = [h for h in chosen if h not in every]
        if unknown or not chosen:
            raise ValueError(f"heads: {unknown or chosen} not among this model's heads {every}")
        selected = [outputs[every.index(h)] for h in chosen]
        kwargs.setdefault("name", "rsn")
        super().__init__(inputs=inputs, outputs=selected[0] if len(selected) == 1 and heads is not None else selected,
                         **kwargs)
        self.rsn_config = config
        self.metadata = dict(metadata or {})
        self._heads = None if heads is None else chosen
        self._every_output = outputs

    @property
    def heads(self) -> list[str]:
        """The names of this model's outputs, in output order."""
        return list(self._heads) if self._heads is not None else [
            head_name(s, u) for s in range(self.rsn_config.num_stages) for u in range(4)]

    @property
    def output_names_ordered(self) -> list[str]:
        return self.heads

    def named(self, outputs) -> dict:
        """``{head name: tensor}`` of a call's outputs (``model.named(model(x))["heatmap_s0_u3"]``)."""
        outputs = [outputs] if not isinstance(outputs, (list, tuple)) else outputs
        return dict(zip(self.heads, outputs))

    def head_model(self, *names: str, name: str | None = None) -> "RSNModel":
        """An RSNModel of only the heads ``names`` (sharing this model's layers and weights), keeping
        its config and metadata; one name gives a single-tensor output."""
        missing = [n for n in names if n not in self.heads]
        if missing:
            raise ValueError(f"head_model: {missing} not among this model's outputs {self.heads}")
        return RSNModel(self.rsn_config, metadata=self.metadata, heads=list(names),
                        _tensors=(self.input, self._every_output), name=name or f"{self.name}_heads")

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        """With ``compile(loss=RSNLoss(...))``: that loss on all heads and the targets dict; otherwise
        Keras' per-output losses."""
        from rsn_tf.losses import RSNLoss

        if isinstance(self.loss, RSNLoss):
            total = self.loss(y, y_pred, sample_weight)
            for extra in self.losses:  # layer regularisation losses, if any were added
                total = total + keras.ops.cast(extra, total.dtype)
            return total
        return super().compute_loss(x=x, y=y, y_pred=y_pred, sample_weight=sample_weight, training=training)

    def get_config(self):
        config = {"config": self.rsn_config.to_dict(), "metadata": self.metadata,
                  "name": self.name, "trainable": self.trainable}
        if self._heads is not None:
            config["heads"] = list(self._heads)
        return config

    @classmethod
    def from_config(cls, config, custom_objects=None):
        return cls(**config)


def build_rsn(config: ModelConfig | str, metadata: dict | None = None, **preset_kwargs) -> RSNModel:
    """Build a model from a :class:`ModelConfig` or a preset name (``build_rsn("rsn18")``)."""
    if isinstance(config, str):
        from rsn_tf.model.config import preset_config
        name = config
        config = preset_config(config, **preset_kwargs)
        metadata = {"preset": name, **(metadata or {})}
    return RSNModel(config, metadata=metadata)


def inference_model(model: RSNModel) -> RSNModel:
    """The model of the final head only ([N, H/4, W/4, K]), sharing ``model``'s layers and keeping
    its ``rsn_config`` and ``metadata`` (an :class:`RSNModel` that saves and loads as one).

    The coarse heads are training-time supervision; dropping them saves 5-8% of inference time.
    A model that already outputs only the final head is returned as it is.
    """
    final = head_name(model.rsn_config.num_stages - 1, 3)
    if model._heads == [final]:
        return model
    return model.head_model(final, name=f"{model.name}_final")


def copy_weights_by_name(src: keras.Model, dst: keras.Model) -> None:
    """Copy every layer's weights from ``src`` to the same-named layer of ``dst``.

    For two builds of one architecture whose layer order differs (e.g. ``upconv_before_resize``); a
    stem that differs in ``stem_space_to_depth`` gets its kernel rearranged
    (:func:`rsn_tf.model.blocks.stem_kernel_to_space_to_depth`, one way only: 7x7 -> space-to-depth).
    Raises ``ValueError`` naming the layers that do not pair up.
    """
    src_layers = {l.name: l for l in src.layers if l.weights}
    dst_layers = {l.name: l for l in dst.layers if l.weights}
    if set(src_layers) != set(dst_layers):
        missing = sorted(set(src_layers) ^ set(dst_layers))
        raise ValueError(f"models differ in weighted layers: {missing[:10]}{' ...' if len(missing) > 10 else ''}")
    for name, layer in src_layers.items():
        weights = layer.get_weights()
        if name == "stem_conv_conv" and weights[0].shape[:2] == (7, 7) and dst_layers[name].kernel.shape[0] == 4:
            weights[0] = stem_kernel_to_space_to_depth(weights[0])
        dst_layers[name].set_weights(weights)
