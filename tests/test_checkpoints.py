"""Real checkpoint layouts, written by torch from the shared mmpose RSN-18 fixture, convert to the same
model; wrong files (a detector checkpoint, a different head, a truncated file) get one clear error."""
import collections
import os
import sys
import types

import numpy as np
import pytest
from conftest import shared_path

torch = pytest.importorskip("torch")

from rsn_tf.convert import CheckpointError, ConversionError, from_mmpose  # noqa: E402

FIXTURE = ("fixtures", "mmpose_rsn18_coco_256x192.npz")


@pytest.fixture(scope="module")
def state_dict():
    with np.load(shared_path(*FIXTURE)) as z:
        return collections.OrderedDict((k, torch.from_numpy(z[k].copy())) for k in z.files if "." in k)


@pytest.fixture(scope="module")
def reference(state_dict):
    """The model converted from the fixture's own .npz: what every layout must give."""
    model = from_mmpose(shared_path(*FIXTURE))
    probe = ["stem_conv_conv", "s0_layer3_b1_step4_4_bn", "s0_up4_in_skip_conv", "head3_conv2_conv"]
    return {name: [w.copy() for w in model.get_layer(name).get_weights()] for name in probe}


class _FakeMMEngine:
    """mmengine classes a real 1.x checkpoint pickles (message_hub's HistoryBuffer, ConfigDict in meta).

    They exist only while torch.save runs; the reader must never import them (it cannot: gone after)."""

    def __enter__(self):
        self.saved = {n: sys.modules.get(n) for n in ("mmengine", "mmengine.logging",
                                                       "mmengine.logging.history_buffer", "mmengine.config")}
        root, logging, hb, cfg = (types.ModuleType(n) for n in self.saved)

        class HistoryBuffer:
            def __init__(self):
                self._log_history = np.array([0.5, 0.25])
                self._count_history = np.array([1, 1])
                self.max_length = 1000000

        class ConfigDict(dict):
            pass

        for cls, mod in ((HistoryBuffer, hb), (ConfigDict, cfg)):
            cls.__module__, cls.__qualname__ = mod.__name__, cls.__name__
            setattr(mod, cls.__name__, cls)
        for name, mod in zip(self.saved, (root, logging, hb, cfg)):
            sys.modules[name] = mod
        self.HistoryBuffer, self.ConfigDict = HistoryBuffer, ConfigDict
        return self

    def __exit__(self, *exc):
        for name, mod in self.saved.items():
            if mod is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = mod


def _mmpose1x(sd, fake, ema=True):
    ckpt = {"meta": {"epoch": 210, "iter": 117180, "mmengine_version": "0.10.7", "seed": 0,
                     "cfg": fake.ConfigDict(model=dict(type="TopdownPoseEstimator")),
                     "dataset_meta": {"dataset_name": "coco", "flip_indices": list(range(17))}},
            "state_dict": sd,
            "message_hub": {"log_scalars": {"train/loss": fake.HistoryBuffer()}, "runtime_info": {"epoch": 210},
                            "resumed_keys": {"epoch": True}},
            "optimizer": {"state": {0: {"step": torch.tensor(3.0), "exp_avg": torch.zeros(3)}},
                          "param_groups": [{"lr": 2e-3, "params": [0]}]},
            "param_schedulers": [{"base_lrs": [2e-2], "last_step": 210}]}
    if ema:  # mmengine's EMAHook: averaged weights in state_dict, the EMA module's own copy beside
        ckpt["ema_state_dict"] = collections.OrderedDict(
            [("steps", torch.tensor(117180))] + [("module." + k, v) for k, v in sd.items()])
    return ckpt


def _check(path, reference, keys="1.x"):
    model = from_mmpose(path)
    for name, weights in reference.items():
        for a, b in zip(model.get_layer(name).get_weights(), weights):
            np.testing.assert_array_equal(a, b, err_msg=f"{os.path.basename(path)}: {name}")
    assert model.metadata["mmpose_keys"] == keys and model.metadata["recipe"] == "mmpose"
    return model


@pytest.mark.parametrize("layout", ["1.x-zip", "1.x-legacy", "0.x-zip", "bare-zip", "bare-legacy"])
def test_checkpoint_layouts_written_by_torch(layout, state_dict, reference, tmp_path):
    kind, fmt = layout.split("-")
    path = str(tmp_path / f"{layout}.pth")
    with _FakeMMEngine() as fake:
        if kind == "1.x":
            obj = _mmpose1x(state_dict, fake)
        elif kind == "0.x":  # mmpose 0.x: keypoint_head.*, meta with mmcv's config text
            obj = {"meta": {"epoch": 210, "config": "model = dict(type='TopDown')"},
                   "state_dict": collections.OrderedDict(
                       (("keypoint_head." + k[5:]) if k.startswith("head.") else k, v) for k, v in state_dict.items())}
        else:
            obj = state_dict
        # old torch.save format: what mmpose's publish_model.py writes (_use_new_zipfile_serialization=False)
        torch.save(obj, path, _use_new_zipfile_serialization=fmt == "zip")
    _check(path, reference, "0.x" if kind == "0.x" else "1.x")


def test_wrong_files_get_one_clear_error(state_dict, tmp_path):
    g = torch.Generator().manual_seed(0)
    detector = collections.OrderedDict([
        ("backbone.conv1.weight", torch.randn(64, 3, 7, 7, generator=g)),
        ("backbone.layer1.0.conv1.weight", torch.randn(64, 64, 1, 1, generator=g)),
        ("neck.fpn_convs.0.conv.weight", torch.randn(256, 256, 3, 3, generator=g)),
        ("rpn_head.rpn_conv.weight", torch.randn(256, 256, 3, 3, generator=g)),
        ("roi_head.bbox_head.fc_cls.weight", torch.randn(81, 1024, generator=g))])
    path = str(tmp_path / "faster_rcnn.pth")
    torch.save({"meta": {"epoch": 12}, "state_dict": detector}, path)
    with pytest.raises(ConversionError, match=r"detector checkpoint .*expected an mmpose RSN pose checkpoint"):
        from_mmpose(path)

    other_head = collections.OrderedDict((k, v) for k, v in state_dict.items() if k.startswith("backbone."))
    other_head["head.deconv_layers.0.weight"] = torch.randn(256, 256, 4, 4, generator=g)
    other_head["head.final_layer.weight"] = torch.randn(17, 256, 1, 1, generator=g)
    path = str(tmp_path / "rsn_heatmaphead.pth")
    torch.save({"state_dict": other_head}, path)
    with pytest.raises(ConversionError, match=r"not mmpose's MSPNHead: expected 'head.predict_layers.\*'.*"
                                              r"head.final_layer"):
        from_mmpose(path)

    hrnet = {"backbone.stage2.0.branches.0.0.conv1.weight": torch.randn(32, 32, 3, 3, generator=g),
             "head.final_layer.weight": torch.randn(17, 32, 1, 1, generator=g)}
    path = str(tmp_path / "hrnet.pth")
    torch.save({"state_dict": hrnet}, path)
    with pytest.raises(ConversionError, match="not an mmpose RSN checkpoint: expected"):
        from_mmpose(path)

    for fmt in ("zip", "legacy"):
        full = str(tmp_path / f"full_{fmt}.pth")
        torch.save({"meta": {}, "state_dict": state_dict}, full, _use_new_zipfile_serialization=fmt == "zip")
        cut = str(tmp_path / f"cut_{fmt}.pth")
        with open(full, "rb") as f, open(cut, "wb") as g_:
            g_.write(f.read(os.path.getsize(full) // 2))
        with pytest.raises(CheckpointError, match="truncated") as e:
            from_mmpose(cut)
        assert "\n" not in str(e.value) and "download it again" in str(e.value)
    empty = str(tmp_path / "empty.pth")
    open(empty, "wb").close()
    with pytest.raises(CheckpointError, match="empty file"):
        from_mmpose(empty)


def test_keras_files_saved_with_the_stock_batchnorm_still_load(tmp_path, monkeypatch):
    """rsn_tf's BatchNormalization (PyTorch's training statistics) replaced Keras' own layer; a ``.keras``
    file from before (weights stored under ``layers/batch_normalization_N``) must load, weights intact."""
    import keras

    import rsn_tf
    from rsn_tf.model import ModelConfig, build_rsn
    from rsn_tf.model import blocks

    cfg = ModelConfig(input_size=(64, 64), num_blocks=(1, 1, 1, 1), num_keypoints=3)
    with monkeypatch.context() as m:  # build and save as an earlier version did: the stock Keras layer
        m.setattr(blocks, "BatchNormalization",
                  lambda running_variance=None, **kw: keras.layers.BatchNormalization(**kw))
        old = build_rsn(cfg)
        assert type(old.get_layer("stem_conv_bn")) is keras.layers.BatchNormalization
        rng = np.random.default_rng(0)
        for layer in old.layers:
            if isinstance(layer, keras.layers.BatchNormalization):  # distinct statistics, so a mix-up shows
                layer.set_weights([rng.uniform(0.5, 1.5, w.shape).astype(np.float32) for w in layer.get_weights()])
        path = str(tmp_path / "old.keras")
        old.save(path)
    x = rng.normal(size=(2, 64, 64, 3)).astype(np.float32)
    new = rsn_tf.load_model(path)
    assert type(new.get_layer("stem_conv_bn")).__module__ == "rsn_tf.model.layers"
    for a, b in zip(old(x, training=False), new(x, training=False)):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-5)
