"""Whole-network tests: outputs, naming, serialisation, training step, PRM, presets."""
import os

import keras
import numpy as np
import pytest

from rsn_tf.config import ConfigError
from rsn_tf.model import ModelConfig, RSNModel, build_rsn, copy_weights_by_name, inference_model, preset_config
from rsn_tf.model.config import PRESETS
from rsn_tf.complexity import count_params

SMALL = dict(input_size=(64, 64), num_blocks=(1, 1, 1, 1), unit_channels=32, num_keypoints=5)


def _x(model, n=2, seed=0):
    h, w = model.rsn_config.input_size
    return np.random.default_rng(seed).normal(size=(n, h, w, 3)).astype(np.float32)


def test_rsn18_outputs_and_names():
    model = build_rsn("rsn18")
    assert [o.shape[1:] for o in model.outputs] == [(64, 48, 17)] * 4
    assert list(model.output_names) == model.output_names_ordered
    assert model.output_names_ordered == [f"heatmap_s0_u{u}" for u in range(4)]
    assert model.metadata["preset"] == "rsn18"


def test_multi_stage_output_order_and_inference_model():
    cfg = ModelConfig(num_stages=2, **SMALL)
    model = RSNModel(cfg)
    assert len(model.outputs) == 8
    assert model.output_names_ordered[-1] == "heatmap_s1_u3"
    x = _x(model)
    full = model(x)
    final = inference_model(model)(x)
    np.testing.assert_allclose(final.numpy(), full[-1].numpy(), atol=1e-6)
    # the final-only model drops the 7 coarse heads
    assert count_params(inference_model(model)) < count_params(model)


def test_keras_save_and_reload_identical(tmp_path):
    cfg = ModelConfig(num_stages=2, prm="paper", **SMALL)
    model = RSNModel(cfg, metadata={"keypoints": "coco", "note": "x"})
    x = _x(model)
    ref = [o.numpy() for o in model(x)]
    path = os.path.join(tmp_path, "m.keras")
    model.save(path)
    loaded = keras.models.load_model(path)
    assert isinstance(loaded, RSNModel)
    assert loaded.rsn_config == cfg
    assert loaded.metadata == {"keypoints": "coco", "note": "x"}
    for a, b in zip(ref, loaded(x)):
        np.testing.assert_array_equal(a, b.numpy())
    clone = RSNModel.from_config(model.get_config())
    assert clone.rsn_config == cfg and len(clone.weights) == len(model.weights)


def test_one_training_step_lowers_loss():
    model = RSNModel(ModelConfig(**SMALL))
    x = _x(model, n=4)
    y = [np.random.default_rng(1).random((4, 16, 16, 5)).astype(np.float32)] * 4
    model.compile(optimizer=keras.optimizers.Adam(1e-2), loss=["mse"] * 4, jit_compile=False)
    first = model.train_on_batch(x, y)
    for _ in range(5):
        last = model.train_on_batch(x, y)
    first = first[0] if isinstance(first, list) else first
    last = last[0] if isinstance(last, list) else last
    assert np.isfinite(last) and last < first


@pytest.mark.parametrize("style,heads,expected_prm", [("paper", "final", 1), ("mmpose", "all", 4)])
def test_prm_variants(style, heads, expected_prm):
    cfg = ModelConfig(prm=style, prm_heads=heads, **SMALL)
    model = RSNModel(cfg)
    gates = [l for l in model.layers if l.__class__.__name__ == "PRMGate"]
    assert len(gates) == expected_prm
    assert gates[-1].name == "heatmap_s0_u3"
    out = model(_x(model))
    assert out[-1].shape == (2, 16, 16, 5)


def test_prm_parameter_counts_match_reference():
    """mmpose PRM for K=17 has 5,068 parameters (spec 1.6); the paper form without conv biases 5,015."""
    base = count_params(RSNModel(ModelConfig(**{**SMALL, "num_keypoints": 17})))
    mm = count_params(RSNModel(ModelConfig(prm="mmpose", **{**SMALL, "num_keypoints": 17})))
    paper = count_params(RSNModel(ModelConfig(prm="paper", **{**SMALL, "num_keypoints": 17})))
    assert mm - base == 5068
    assert paper - base == 5100 - 5 * 17  # the authors' convs carry biases (5 convs x 17); ours do not


def test_upconv_before_resize_is_exact():
    cfg = ModelConfig(**SMALL)
    a = RSNModel(cfg)
    b = RSNModel(cfg.replace(upconv_before_resize=True))
    copy_weights_by_name(a, b)
    x = _x(a)
    for ya, yb in zip(a(x), b(x)):
        np.testing.assert_allclose(ya.numpy(), yb.numpy(), atol=1e-4 * np.abs(ya.numpy()).max())


@pytest.mark.parametrize("block", ["basic", "bottleneck"])
def test_resnet_baseline_blocks(block):
    model = RSNModel(ModelConfig(block=block, expansion=4 if block == "bottleneck" else 1, **SMALL))
    assert model(_x(model))[-1].shape == (2, 16, 16, 5)


def test_presets_and_input_sizes():
    assert set(PRESETS) >= {"rsn18", "rsn50", "rsn101", "2xrsn50", "3xrsn50", "4xrsn50", "res18", "res50",
                            "4xrsn50_paper"}
    assert preset_config("4xrsn50").num_stages == 4
    mpii = preset_config("rsn18", "256x256")
    assert mpii.input_size == (256, 256) and mpii.num_keypoints == 16
    assert preset_config("RSN50", "384x288").input_size == (384, 288)
    with pytest.raises(ConfigError, match="unknown preset 'rsn19'"):
        preset_config("rsn19")
    with pytest.raises(ConfigError, match="divisible by 32"):
        preset_config("rsn18", "250x192")
    with pytest.raises(ConfigError, match="num_steps"):
        preset_config("rsn18", num_steps=7)


def test_model_config_from_dict_rejects_unknown_keys():
    d = ModelConfig().to_dict()
    assert ModelConfig.from_dict(d) == ModelConfig()
    d["num_step"] = 3
    with pytest.raises(ConfigError, match="unknown key"):
        ModelConfig.from_dict(d)
