"""Layer-level tests: align-corners resize, channel split, PRM gate, conv_bn padding, RSB wiring."""
import keras
import numpy as np
import pytest
import tensorflow as tf

from rsn_tf.model import ModelConfig
from rsn_tf.model.blocks import apply_rsb, apply_stem
from rsn_tf.model.layers import ChannelSplit, PRMGate, ResizeAlignCorners


def _align_corners_reference(x, out_h, out_w):
    """Direct numpy bilinear interpolation with PyTorch align_corners=True coordinates."""
    n, h, w, c = x.shape
    ys = np.linspace(0, h - 1, out_h) if out_h > 1 else np.zeros(1)
    xs = np.linspace(0, w - 1, out_w) if out_w > 1 else np.zeros(1)
    out = np.zeros((n, out_h, out_w, c), np.float64)
    for i, y in enumerate(ys):
        y0 = int(np.floor(y)); y1 = min(y0 + 1, h - 1); fy = y - y0
        for j, xx in enumerate(xs):
            x0 = int(np.floor(xx)); x1 = min(x0 + 1, w - 1); fx = xx - x0
            out[:, i, j] = ((1 - fy) * (1 - fx) * x[:, y0, x0] + (1 - fy) * fx * x[:, y0, x1]
                            + fy * (1 - fx) * x[:, y1, x0] + fy * fx * x[:, y1, x1])
    return out


def test_resize_align_corners_matches_pytorch_semantics():
    x = np.random.default_rng(0).normal(size=(2, 8, 6, 3)).astype(np.float32)
    y = ResizeAlignCorners((16, 12))(x).numpy()
    np.testing.assert_allclose(y, _align_corners_reference(x, 16, 12), atol=1e-5)
    # corners are copied exactly (the defining property of align_corners=True)
    np.testing.assert_allclose(y[:, [0, -1]][:, :, [0, -1]], x[:, [0, -1]][:, :, [0, -1]], atol=1e-6)
    # and it is NOT what Keras' half-pixel bilinear upsampling gives
    keras_up = keras.layers.UpSampling2D(2, interpolation="bilinear")(x).numpy()
    assert np.abs(keras_up - y).max() > 1e-2


def test_resize_identity_and_config_round_trip():
    layer = ResizeAlignCorners((4, 5), name="r")
    x = np.ones((1, 4, 5, 2), np.float32)
    assert layer(x).numpy().tolist() == x.tolist()
    clone = ResizeAlignCorners.from_config(layer.get_config())
    assert clone.size == (4, 5) and clone.name == "r"


def test_channel_split_and_prm_gate():
    x = np.arange(2 * 3 * 3 * 8, dtype=np.float32).reshape(2, 3, 3, 8)
    parts = ChannelSplit(4)(x)
    assert len(parts) == 4
    np.testing.assert_array_equal(np.concatenate([p.numpy() for p in parts], -1), x)
    np.testing.assert_array_equal(parts[1].numpy(), x[..., 2:4])
    assert ChannelSplit.from_config(ChannelSplit(4).get_config()).num_splits == 4
    a = np.full((2, 1, 1, 8), 0.5, np.float32)
    b = np.full((2, 3, 3, 1), 0.5, np.float32)
    np.testing.assert_allclose(PRMGate()([x, a, b]).numpy(), x * 1.25)


def test_stem_matches_pytorch_padding():
    """7x7/2 pad 3 then 3x3/2 pad 1: output 64x48 at 256x192 and the first row sees pad=3 zeros."""
    cfg = ModelConfig()
    inp = keras.Input((256, 192, 3))
    model = keras.Model(inp, apply_stem(inp, cfg))
    assert model.output.shape[1:] == (64, 48, 64)
    conv = model.get_layer("stem_conv_conv")
    # PyTorch pads 3 on both sides: conv output (0,0) is centred on input pixel (0,0).
    # With a kernel that is 1 only at its centre tap, the conv copies input[2*i, 2*j].
    k = np.zeros(conv.kernel.shape, np.float32)
    k[3, 3, 0, :] = 1.0
    conv.kernel.assign(k)
    sub = keras.Model(inp, conv.output)
    x = np.random.default_rng(1).normal(size=(1, 256, 192, 3)).astype(np.float32)
    y = sub(x).numpy()
    np.testing.assert_allclose(y[0, :, :, 0], x[0, ::2, ::2, 0], atol=1e-6)


def _branch_receptive_fields(num_steps):
    """Max receptive field of each RSB branch output, measured by gradient support."""
    cfg = ModelConfig(num_steps=num_steps)
    size = 41
    inp = keras.Input((size, size, 8))
    apply_rsb(inp, 64, strides=1, name="blk", config=cfg)
    graph = keras.Model(inp, [inp])  # only to reach the layers by name below
    del graph
    layer_outputs = []
    model_all = keras.Model(inp, apply_rsb(inp, 64, strides=1, name="probe", config=cfg))
    for i in range(1, num_steps + 1):
        layer_outputs.append(model_all.get_layer(f"probe_step{i}_{i}_relu").output)
    probe = keras.Model(inp, layer_outputs)
    rng = np.random.default_rng(0)
    for w in probe.weights:  # positive kernels + unit BN keep every ReLU open: support == receptive field
        if "kernel" in w.path:
            w.assign(np.abs(rng.normal(size=w.shape)).astype(np.float32) + 0.1)
    x = tf.constant(np.ones((1, size, size, 8), np.float32))
    rfs = []
    for i in range(num_steps):
        with tf.GradientTape() as tape:
            tape.watch(x)
            out = probe(x)[i]
            target = tf.reduce_sum(out[0, size // 2, size // 2])
        g = tape.gradient(target, x).numpy()[0].sum(-1)
        rows = np.nonzero(np.abs(g).sum(1))[0]
        rfs.append(int(rows.max() - rows.min() + 1))
    return rfs


def test_rsb_receptive_fields_match_paper_table1():
    # Paper Table 1: y1..y4 reach 3, 7, 11, 15 (max of {3}, {5,7}, {7,9,11}, {9,11,13,15}).
    assert _branch_receptive_fields(4) == [3, 7, 11, 15]


def test_rsb_num_steps_configurable():
    assert _branch_receptive_fields(2) == [3, 7]
    cfg = ModelConfig(num_steps=6)
    inp = keras.Input((16, 16, 64))
    out = apply_rsb(inp, 64, strides=2, name="b", config=cfg)
    assert out.shape[1:] == (8, 8, 64)
    model = keras.Model(inp, out)
    # 6 branches -> 21 step convs, branch width 64*26//64 = 26 -> 156 split channels
    steps = [l for l in model.layers if "_step" in l.name and l.name.endswith("_conv")]
    assert len(steps) == 21
    assert model.get_layer("b_conv1_conv").kernel.shape == (1, 1, 64, 156)


@pytest.mark.parametrize("bad", [dict(num_steps=1), dict(num_steps=7), dict(input_size=(250, 192)),
                                 dict(num_blocks=(2, 2, 2)), dict(num_stages=0)])
def test_bad_model_config_raises_clear_error(bad):
    with pytest.raises(ValueError) as e:
        ModelConfig(**bad)
    key = next(iter(bad))
    assert key in str(e.value)
