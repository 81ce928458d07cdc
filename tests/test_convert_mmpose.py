"""mmpose checkpoint conversion: fixture parity, architecture inference, file formats, errors, CLI.

The parity test uses ../shared/fixtures/mmpose_rsn18_coco_256x192.npz (real mmpose outputs). Everything
else uses small synthetic checkpoints made by exporting a random Keras model to mmpose keys
(:func:`to_mmpose_state_dict`), so the converter is exercised on architectures it was not written for.
"""
import collections
import datetime
import os

import keras
import numpy as np
import pytest

from conftest import shared_path
from rsn_tf.cli import main
from rsn_tf.convert import (CheckpointError, ConversionError, from_mmpose, from_mmpose_state_dict, infer_config,
                            load_mmpose_weights, load_state_dict, mmpose_shapes, module_path,
                            normalize_state_dict, to_mmpose_state_dict)
from rsn_tf.convert import torch_pickle
from rsn_tf.model import ModelConfig, Preprocessing, RSNModel, preset_config

FIXTURE = ("fixtures", "mmpose_rsn18_coco_256x192.npz")
SMALL = dict(input_size=(64, 64), planes=(16, 32, 64, 128), stem_channels=16, unit_channels=32, num_keypoints=5)
SIZE = (64, 64)


def _randomize(model, seed=0):
    """Non-trivial weights everywhere, BN statistics included (so a swapped order shows)."""
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            k = layer.weights[0].shape
            layer.set_weights([rng.uniform(0.5, 1.5, k), rng.normal(0, 0.1, k), rng.normal(0, 0.1, k),
                               rng.uniform(0.5, 2.0, k)])
        elif layer.weights:
            layer.set_weights([rng.normal(0, 0.3, w.shape) for w in layer.weights])


def _x(size=SIZE, n=2, seed=1):
    return np.random.default_rng(seed).normal(size=(n, *size, 3)).astype(np.float32)


def _assert_same_weights(a, b):
    wa = {l.name: l.get_weights() for l in a.layers if l.weights}
    wb = {l.name: l.get_weights() for l in b.layers if l.weights}
    assert wa.keys() == wb.keys()
    for name in wa:
        for x, y in zip(wa[name], wb[name]):
            np.testing.assert_array_equal(x, y, err_msg=name)


# ------------------------------------------------------------------------------ fixture parity
@pytest.fixture(scope="module")
def rsn18():
    path = shared_path(*FIXTURE)
    return from_mmpose(path), np.load(path)


def test_rsn18_fixture_parity_all_heads(rsn18):
    """Every head output matches mmpose's PyTorch forward pass to <= 1e-4 x max|ref|."""
    model, z = rsn18
    outs = model.predict(z["input"].transpose(0, 2, 3, 1), verbose=0)
    assert len(outs) == 4
    for u, out in enumerate(outs):
        ref = z[f"output_s0_u{u}"].transpose(0, 2, 3, 1)
        assert out.shape == ref.shape == (2, 64, 48, 17)
        diff, scale = float(np.abs(out - ref).max()), float(np.abs(ref).max())
        print(f"output_s0_u{u}: max|diff| {diff:.3g}, max|ref| {scale:.3g}, ratio {diff / scale:.3g}")
        assert diff <= 1e-4 * scale, (u, diff, scale)


def test_rsn18_fixture_inferred_as_the_preset(rsn18):
    model, z = rsn18
    assert model.rsn_config == preset_config("rsn18")
    assert model.count_params() == 9_144_936 + 2 * sum(  # + BN moving stats, counted by Keras only
        l.weights[0].shape[0] for l in model.layers if isinstance(l, keras.layers.BatchNormalization))
    assert model.metadata == {"weights": "mmpose", "recipe": "mmpose", "source": "mmpose_rsn18_coco_256x192.npz",
                              "source_format": "npz",
                              "mmpose_keys": "1.x", "keypoints": "coco"}
    # the fixture's non-state-dict arrays (input, outputs) are skipped, not loaded
    _, info = load_state_dict(shared_path(*FIXTURE))
    assert "input" in info["ignored"] and "output_s0_u3" in info["ignored"]


def test_rsn18_preset_option_matches_inference():
    model = from_mmpose(shared_path(*FIXTURE), preset="rsn18", input_size=(128, 96))
    assert model.rsn_config == preset_config("rsn18", input_size=(128, 96))
    with pytest.raises(ConversionError, match="shape mismatches"):
        from_mmpose(shared_path(*FIXTURE), preset="rsn18_paper", input_size=(64, 64))


# ------------------------------------------------------------------ synthetic architectures
@pytest.mark.parametrize("arch", [
    dict(num_stages=2, num_blocks=(1, 2, 1, 1), num_steps=3, prm="mmpose", prm_heads="all"),
    dict(num_stages=3, num_blocks=(1, 1, 1, 2), num_steps=5),
    dict(num_blocks=(2, 1, 1, 1), num_steps=2, branch_width="planes", prm="mmpose", prm_heads="final",
         num_keypoints=16),
], ids=["2stage-steps3-prm", "3stage-steps5", "steps2-planes-prmfinal-mpii"])
def test_round_trip_infers_architecture(arch):
    config = ModelConfig(**{**SMALL, **arch})
    src = RSNModel(config)
    _randomize(src)
    sd = to_mmpose_state_dict(src)
    assert infer_config(normalize_state_dict(sd)[0], SIZE) == config
    dst = from_mmpose_state_dict(sd, input_size=SIZE)
    assert dst.rsn_config == config
    assert dst.metadata["keypoints"] == {17: "coco", 16: "mpii"}.get(config.num_keypoints)
    _assert_same_weights(src, dst)
    x = _x()
    for a, b in zip(src(x), dst(x)):
        np.testing.assert_array_equal(a.numpy(), b.numpy())


@pytest.mark.parametrize("preset", ["rsn50", pytest.param("2xrsn50", marks=pytest.mark.slow),
                                    pytest.param("3xrsn50", marks=pytest.mark.slow)])
def test_public_architectures_are_inferred(preset):
    """The key/shape structure of each public mmpose RSN gives back its preset (shapes only, no weights)."""
    config = preset_config(preset, input_size=SIZE)
    shapes = mmpose_shapes(RSNModel(config))
    fake = {k: np.broadcast_to(np.float32(0), s) for k, s in shapes.items()}  # no memory for the weights
    assert infer_config(fake, SIZE) == config
    # learnable parameters (BN running stats excluded) == mmpose's count (its model summary)
    params = sum(int(np.prod(s)) for k, s in shapes.items() if not k.endswith(("running_mean", "running_var")))
    assert round(params / 1e6, 3) == {"rsn50": 19.329, "2xrsn50": 39.262, "3xrsn50": 59.195}[preset]


def test_module_paths_follow_mmpose():
    assert module_path("stem_conv_conv") == "backbone.top.top.0.conv"
    assert module_path("s1_layer3_b0_step4_2_bn") == "backbone.multi_stage_rsn.1.downsample.layer3.0.conv_bn_relu2_4_2.bn"
    assert module_path("s0_layer2_b0_shortcut_conv") == "backbone.multi_stage_rsn.0.downsample.layer2.0.downsample.conv"
    assert module_path("s0_up4_cross_conv_bn") == "backbone.multi_stage_rsn.0.upsample.up4.cross_conv.bn"
    assert module_path("head5_conv2_conv") == "head.predict_layers.5.conv_layers.1.conv"
    assert module_path("head3_prm_mid2_bn") == "head.predict_layers.3.prm.middle_path.4"
    assert module_path("head3_prm_bottom_dw_conv") == "head.predict_layers.3.prm.bottom_path.1.depthwise_conv.conv"


# ------------------------------------------------------------------------------ file formats
@pytest.fixture(scope="module")
def small():
    """A random 2-stage RSN with mmpose PRM and its mmpose state dict."""
    model = RSNModel(ModelConfig(**SMALL, num_stages=2, num_blocks=(1, 2, 1, 1), num_steps=3, prm="mmpose",
                                 prm_heads="all"))
    _randomize(model, seed=3)
    return model, to_mmpose_state_dict(model)


@pytest.mark.parametrize("fmt", ["pth", "pth-legacy", "npz", "pth-0.x"])
def test_checkpoint_formats(small, tmp_path, fmt):
    model, sd = small
    path = os.path.join(tmp_path, "ckpt.npz" if fmt == "npz" else "ckpt.pth")
    if fmt == "npz":
        np.savez(path, **sd)
    else:
        if fmt == "pth-0.x":
            sd = to_mmpose_state_dict(model, head_prefix="keypoint_head.")
        # mmpose checkpoints carry meta (with objects of classes we must not import) besides the weights
        meta = {"epoch": 210, "hub": torch_pickle._Global("mmengine.logging.history_buffer", "HistoryBuffer"),
                "time": datetime.datetime(2022, 10, 13), "dtype": np.dtype("float32")}
        torch_pickle.save({"meta": meta, "state_dict": sd}, path, legacy=fmt == "pth-legacy")
    if fmt != "npz":  # classes in meta are never imported: they come back as inert placeholders
        meta_back = torch_pickle.load(path)["meta"]
        assert meta_back["epoch"] == 210 and isinstance(meta_back["time"], torch_pickle.Opaque)
    loaded = from_mmpose(path, input_size=SIZE)
    _assert_same_weights(model, loaded)
    assert loaded.metadata["mmpose_keys"] == ("0.x" if fmt == "pth-0.x" else "1.x")
    assert loaded.metadata["source_format"] == {"pth-0.x": "pth"}.get(fmt, fmt)


def test_cli_writes_keras_that_reloads_identically(small, tmp_path, capsys):
    model, sd = small
    ckpt, out = os.path.join(tmp_path, "rsn.pth"), os.path.join(tmp_path, "rsn.keras")
    torch_pickle.save({"state_dict": sd}, ckpt)
    assert main(["convert-mmpose", ckpt, "--out", out, "--input", "64x64"]) == 0
    assert "2 stage(s)" in capsys.readouterr().out
    loaded = keras.models.load_model(out)
    assert isinstance(loaded, RSNModel)
    assert loaded.rsn_config == model.rsn_config
    # the preprocessing the mmpose weights expect travels with the model
    assert loaded.rsn_config.preprocessing == Preprocessing("rgb", (123.675, 116.28, 103.53), (58.395, 57.12, 57.375))
    assert loaded.metadata["weights"] == "mmpose" and loaded.metadata["source"] == "rsn.pth"
    x = _x()
    for a, b in zip(model(x), loaded(x)):
        np.testing.assert_array_equal(a.numpy(), b.numpy())


# ------------------------------------------------------------------------------------- errors
def _load_error(model, sd):
    with pytest.raises(ConversionError) as e:
        load_mmpose_weights(model, normalize_state_dict(sd)[0])
    return str(e.value)


def test_missing_extra_and_misshapen_tensors_are_errors(small):
    model, sd = small
    key = "backbone.multi_stage_rsn.1.downsample.layer2.1.conv_bn_relu2_3_2.bn.running_var"
    broken = {k: v for k, v in sd.items() if k != key}
    msg = _load_error(model, broken)
    assert "missing from checkpoint (1)" in msg and key in msg

    extra = dict(sd, **{"head.predict_layers.0.extra.weight": np.zeros(3, np.float32)})
    msg = _load_error(model, extra)
    assert "unused checkpoint tensors (1)" in msg and "head.predict_layers.0.extra.weight" in msg

    conv = "backbone.multi_stage_rsn.0.upsample.up2.up_conv.conv.weight"
    wrong = dict(sd, **{conv: np.zeros((32, 31, 1, 1), np.float32)})
    msg = _load_error(model, wrong)
    assert f"{conv}: checkpoint (32, 31, 1, 1), model needs (32, 32, 1, 1)" in msg

    before = model.get_layer("s0_up2_up_conv_conv").get_weights()[0].copy()  # all or nothing: nothing was set
    np.testing.assert_array_equal(model.get_layer("s0_up2_up_conv_conv").get_weights()[0], before)


def test_non_weights_are_ignored_and_0x_prefix_renamed(small):
    _, sd = small
    sd = {("keypoint_head." + k[5:] if k.startswith("head.") else k): v for k, v in sd.items()}
    sd["data_preprocessor.mean"] = np.zeros((3, 1, 1), np.float32)
    norm, fmt = normalize_state_dict(sd)
    assert fmt == "0.x"
    assert not any(k.endswith("num_batches_tracked") or k.startswith(("data_", "keypoint_head.")) for k in norm)


def test_not_an_rsn_checkpoint():
    with pytest.raises(ConversionError, match="not an mmpose RSN checkpoint"):
        infer_config({"backbone.conv1.weight": np.zeros((64, 3, 7, 7), np.float32)})


def test_unreadable_files(tmp_path):
    with pytest.raises(CheckpointError, match="not found"):
        load_state_dict(os.path.join(tmp_path, "nope.pth"))
    junk = os.path.join(tmp_path, "junk.pth")
    with open(junk, "wb") as f:
        f.write(b"this is not a checkpoint")
    with pytest.raises(CheckpointError, match="not a PyTorch checkpoint|could not read"):
        load_state_dict(junk)
    no_sd = os.path.join(tmp_path, "meta_only.pth")
    torch_pickle.save({"meta": {"epoch": 1}}, no_sd)
    with pytest.raises(CheckpointError, match="no state_dict"):
        load_state_dict(no_sd)
    npz = os.path.join(tmp_path, "arrays.npz")
    np.savez(npz, input=np.zeros(3))
    with pytest.raises(CheckpointError, match="no state-dict arrays"):
        load_state_dict(npz)


class _Evil:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.mkdir, (self.marker,)


def test_reader_never_executes_file_content(tmp_path):
    """Like torch.load(weights_only=True): a crafted pickle cannot run code, in either torch format."""
    import pickle
    import zipfile
    marker = os.path.join(tmp_path, "pwned")
    legacy = os.path.join(tmp_path, "legacy.pth")
    with open(legacy, "wb") as f:
        f.write(pickle.dumps(_Evil(marker), protocol=2))
    zipped = os.path.join(tmp_path, "zipped.pth")
    with zipfile.ZipFile(zipped, "w") as zf:
        zf.writestr("archive/data.pkl", pickle.dumps({"state_dict": _Evil(marker)}, protocol=2))
    for path in (legacy, zipped):
        with pytest.raises(CheckpointError):
            load_state_dict(path)
    assert not os.path.exists(marker)


def test_cli_reports_errors(tmp_path, capsys):
    assert main(["convert-mmpose", os.path.join(tmp_path, "missing.pth"), "--out", os.path.join(tmp_path, "m.keras")]) == 2
    assert "checkpoint not found" in capsys.readouterr().err


# --------------------------------------------------------------- torch file reader / writer
def test_torch_pickle_round_trip_dtypes(tmp_path):
    sd = collections.OrderedDict(
        w=np.random.default_rng(0).normal(size=(4, 3, 3, 3)).astype(np.float32),
        half=np.arange(5, dtype=np.float16), n=np.array(7, np.int64),
        strided=np.arange(12, dtype=np.int32).reshape(3, 4).T)
    for legacy in (False, True):
        path = os.path.join(tmp_path, f"t{legacy}.pth")
        torch_pickle.save({"state_dict": sd}, path, legacy=legacy)
        back = torch_pickle.load(path)["state_dict"]
        assert list(back) == list(sd)
        for k in sd:
            assert back[k].dtype == sd[k].dtype and back[k].shape == sd[k].shape
            np.testing.assert_array_equal(back[k], sd[k])


@pytest.mark.parametrize("legacy", [False, True])
def test_torch_cross_check(tmp_path, legacy):
    """Our reader on files torch wrote, and torch on files our writer wrote (needs rsn_tf[torch])."""
    torch = pytest.importorskip("torch")
    sd = collections.OrderedDict(a=torch.randn(3, 4, 5), b=torch.randn(6, 2).t(), n=torch.tensor(3))
    path = os.path.join(tmp_path, "torch.pth")
    torch.save({"state_dict": sd, "meta": {"x": 1}}, path, _use_new_zipfile_serialization=not legacy)
    ours = torch_pickle.load(path)["state_dict"]
    for k in sd:
        np.testing.assert_array_equal(ours[k], sd[k].numpy())
    path2 = os.path.join(tmp_path, "ours.pth")
    torch_pickle.save({"state_dict": ours}, path2, legacy=legacy)
    theirs = torch.load(path2, weights_only=True)["state_dict"]
    for k in sd:
        assert torch.equal(theirs[k], sd[k])
