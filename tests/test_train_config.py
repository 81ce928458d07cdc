"""Experiment configs: every file in configs/ validates; unknown keys and bad values name their path."""
import glob
import os

import pytest

from rsn_tf.config import ConfigError
from rsn_tf.training.config import ExperimentConfig, load_experiment, resolve_experiment
from rsn_tf.training.optimizer import AdamL2, build_optimizer, effective_lr

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIGS = sorted(glob.glob(os.path.join(REPO, "configs", "*.yaml")))


def test_every_preset_has_a_config():
    names = {os.path.basename(p)[:-5] for p in CONFIGS}
    for required in ("rsn18_coco_256x192", "rsn50_coco_256x192", "2xrsn50_coco_256x192", "3xrsn50_coco_256x192",
                     "4xrsn50_coco_256x192", "4xrsn50_coco_384x288", "res18_coco_256x192", "rsn18_mpii_256x256",
                     "4xrsn50_mpii_256x256", "synthetic_rsn18"):
        assert required in names


@pytest.mark.parametrize("path", CONFIGS, ids=[os.path.basename(p) for p in CONFIGS])
def test_config_loads_and_builds_model_config(path):
    exp = load_experiment(path)
    cfg = exp.model_config()
    assert exp.name == os.path.basename(path)[:-5]
    h, w = cfg.input_size
    assert f"{h}x{w}" in exp.name or exp.name.startswith("synthetic")
    if "mpii" in exp.name:
        assert cfg.num_keypoints == 16 and exp.data.format == "mpii"
    else:
        assert cfg.num_keypoints == 17
    if exp.name.endswith("_mmpose"):
        assert exp.train.loss.mode == "mmpose" and exp.train.schedule.name == "warmup_step"
        assert cfg.preprocessing.color_order == "rgb"
    elif not exp.name.startswith("synthetic"):
        t = exp.train
        assert (t.loss.mode, t.schedule.name, t.optimizer.weight_decay, t.schedule.warmup_steps) == (
            "authors", "warmup_linear", 1e-5, 2400)
        assert effective_lr(t.optimizer, t.batch_size) == pytest.approx(4e-3)
        assert cfg.preprocessing.color_order == "bgr"
    assert ExperimentConfig.from_dict(exp.to_dict()) == exp  # round trip


def test_unknown_keys_and_bad_values_name_the_path(tmp_path):
    synth = os.path.join(REPO, "configs", "synthetic_rsn18.yaml")
    with pytest.raises(ConfigError, match=r"synthetic_rsn18.yaml: train.optimizer: unknown key\(s\) \['lrr'\]"):
        load_experiment(synth, ["train.optimizer.lrr=1"])
    with pytest.raises(ConfigError, match=r"train.loss.mode"):
        load_experiment(synth, ["train.loss.mode=l1"])
    with pytest.raises(ConfigError, match=r"train.batch_size: expected an integer"):
        load_experiment(synth, ["train.batch_size=big"])
    with pytest.raises(ConfigError, match=r"model.overrides: unknown key\(s\) \['num_blockz'\]"):
        load_experiment(synth, ["model.overrides.num_blockz=[1,1,1,1]"])
    with pytest.raises(ConfigError, match="unknown key"):
        resolve_experiment({"trian": {}})
    bad = tmp_path / "bad.yaml"
    bad.write_text("train: [1, 2]\n")
    with pytest.raises(ConfigError, match="bad.yaml"):
        load_experiment(str(bad))


def test_overrides_and_optimizer():
    exp = load_experiment(os.path.join(REPO, "configs", "rsn18_coco_256x192.yaml"),
                          ["train.batch_size=32", "model.overrides.num_blocks=[1,1,1,1]"])
    assert exp.model_config().num_blocks == (1, 1, 1, 1)
    opt = build_optimizer(exp.train, steps_per_epoch=100)
    assert isinstance(opt, AdamL2) and opt.l2 == pytest.approx(1e-5)
    # linear scaling: 4e-3 at 256 -> 5e-4 at 32 (the authors' 5e-4 per 32-image GPU); warmup starts at 0.1x,
    # and the authors' first optimizer step already runs at lambda(1) (their scheduler steps first)
    assert float(opt.learning_rate) == pytest.approx(5e-4 * (0.1 + 0.9 / 2400))
    dec = resolve_experiment(exp, ["train.optimizer.weight_decay_mode=decoupled"])
    assert type(build_optimizer(dec.train, 100)).__name__ == "AdamW"


def test_bundled_config_by_name():
    assert load_experiment("synthetic_rsn18").name == "synthetic_rsn18"
    with pytest.raises(ConfigError, match="config file not found: no_such_config"):
        load_experiment("no_such_config")


def test_cli_reports_config_errors(tmp_path, capsys):
    from rsn_tf.cli import main

    assert main(["train", "--config", "synthetic_rsn18", "--workdir", str(tmp_path), "--set", "train.epochz=1"]) == 2
    assert "train: unknown key(s) ['epochz']" in capsys.readouterr().err


def test_trained_model_metadata_carries_the_datasets_keypoint_spec(tmp_path):
    """A model trained on a COCO-format set records its keypoint spec, so eval/infer need only the file."""
    from rsn_tf.data.synth import make_synthetic_dataset
    from rsn_tf.keypoints import COCO, KeypointSpec
    from rsn_tf.training.config import load_experiment
    from rsn_tf.training.trainer import experiment_metadata

    make_synthetic_dataset(str(tmp_path), 4, 0)
    exp = load_experiment("synthetic_rsn18", [f"data.root={tmp_path}"])
    meta = experiment_metadata(exp)
    spec = KeypointSpec.from_dict(meta["keypoints"])
    assert spec.names == COCO.names and spec.flip_pairs == COCO.flip_pairs and spec.sigmas == COCO.sigmas
