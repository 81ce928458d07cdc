"""Every bundled experiment config resolves to exactly what it resolved to before the configs were
made to inherit from the named recipes of ``rsn_tf/training/experiments.py``.

``tests/data/resolved_configs.json`` was written from the flat configs (one file per experiment, every
value spelled out; commit 3e980fe) with the loader of that time: for each config the flattened
``ExperimentConfig.to_dict()`` and the built ``ModelConfig.to_dict()``. Any resolved value that
differs, or a recorded key that disappears, fails. Keys that did not exist then (fields added to the
dataclasses later) are allowed: they are not part of the record.
"""
import json
import os

import pytest

from rsn_tf.training.config import load_experiment

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RECORD = json.load(open(os.path.join(REPO, "tests", "data", "resolved_configs.json")))


def _flatten(d, prefix=""):
    out = {}
    for k, v in d.items():
        key = f"{prefix}.{k}" if prefix else k
        if isinstance(v, dict) and v:
            out.update(_flatten(v, key))
        else:
            out[key] = v
    return out


def _typed(v):
    return (type(v).__name__, [_typed(x) for x in v] if isinstance(v, list) else v)


@pytest.mark.parametrize("name", sorted(RECORD))
def test_config_resolves_as_recorded(name):
    exp = load_experiment(os.path.join(REPO, "configs", f"{name}.yaml"))
    now = {"experiment": _flatten(exp.to_dict()), "model_config": _flatten(exp.model_config().to_dict())}
    for part, recorded in RECORD[name].items():
        changed = {k: (v, now[part].get(k, "<missing>")) for k, v in recorded.items()
                   if k not in now[part] or _typed(now[part][k]) != _typed(v)}
        assert not changed, f"{name} {part}: recorded -> now: {changed}"


def test_base_and_file_errors_name_the_file_and_key(tmp_path):
    from rsn_tf.config import ConfigError

    bad = tmp_path / "mine.yaml"
    bad.write_text("base: authors_coco\nmodel: {preset: rsn50}\ntrain: {optimizer: {lrr: 1.0}}\n")
    with pytest.raises(ConfigError, match=r"mine.yaml: train.optimizer: unknown key\(s\) \['lrr'\]"):
        load_experiment(str(bad))
    bad.write_text("base: authors_cocoo\nmodel: {preset: rsn50}\n")
    with pytest.raises(ConfigError, match=r"mine.yaml: base: 'authors_cocoo' is not one of \['authors_coco'"):
        load_experiment(str(bad))
    bad.write_text("base: authors_coco\nmodel: {preset: rsn50}\ndata: {augment: {flip_prob: yes_please}}\n")
    with pytest.raises(ConfigError, match=r"mine.yaml: data.augment.flip_prob"):
        load_experiment(str(bad))


def test_a_file_overrides_its_base_key_by_key():
    """Mappings merge (the authors' BGR preprocessing stays when a file adds a model override), other
    values replace; --set applies after the merge; the resolved config has no ``base`` left."""
    from rsn_tf.training.config import resolve_experiment

    exp = resolve_experiment({"base": "authors_coco", "model": {"preset": "rsn50", "overrides": {"num_blocks": [1, 1, 1, 1]}},
                              "train": {"schedule": {"warmup_steps": 10}}}, ["train.optimizer.lr=1.0e-3"])
    cfg = exp.model_config()
    assert cfg.num_blocks == (1, 1, 1, 1) and cfg.preprocessing.color_order == "bgr"
    assert cfg.preprocessing.mean == (103.53, 116.28, 123.675)
    assert exp.train.schedule.warmup_steps == 10 and exp.train.schedule.warmup_factor == 0.1
    assert exp.train.optimizer.lr == 1e-3 and exp.train.optimizer.weight_decay == 1e-5
    assert "base" not in exp.to_dict() and exp.data.root == "data/coco"
