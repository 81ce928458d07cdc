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
