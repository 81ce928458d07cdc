"""Parameter/MAC counts against the reference PyTorch networks (spec 2.1), within 1%."""
import json

import pytest

from rsn_tf.cli import main
from rsn_tf.complexity import preset_complexity

REFERENCE = {  # preset: (params, GMACs) measured on mmpose / the official skeleton
    "rsn18": (9.145e6, 2.245),
    "rsn50": (19.329e6, 4.068),
    "2xrsn50": (39.262e6, 8.215),
    "3xrsn50": (59.195e6, 12.362),
    "4xrsn50": (79.129e6, 16.509),
    "res18": (8.56e6, 2.07),
    "4xrsn50_paper": (107.9e6, 29.12),
}


@pytest.mark.parametrize("preset", list(REFERENCE))
def test_counts_match_reference(preset):
    params, gmacs = REFERENCE[preset]
    r = preset_complexity(preset)
    assert abs(r.params - params) / params < 0.01, (r.params, params)
    assert abs(r.gmacs - gmacs) / gmacs < 0.01, (r.gmacs, gmacs)


def test_rsn18_exact_mmpose_parameter_count():
    assert preset_complexity("rsn18").params == 9_144_936  # mmpose fixture manifest


def test_cli_json_and_table(capsys):
    assert main(["complexity", "--preset", "rsn18", "--json"]) == 0
    rec = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert rec["preset"] == "rsn18" and rec["input"] == "256x192"
    assert rec["params"] == 9_144_936 and abs(rec["macs"] / 1e9 - 2.245) < 0.01
    assert main(["complexity", "--preset", "rsn18", "--input", "384x288"]) == 0
    out = capsys.readouterr().out
    assert "| rsn18 | 384x288 |" in out


def test_cli_unknown_preset_is_clear_error(capsys):
    assert main(["complexity", "--preset", "rsn19"]) == 2
    assert "unknown preset 'rsn19'" in capsys.readouterr().err


def test_mac_count_agrees_with_tf_profiler():
    """The analytic count equals TF's own profiler on the frozen graph (incl. PRM dense/depthwise)."""
    from rsn_tf.complexity import count_macs, profiler_macs
    from rsn_tf.model import ModelConfig, RSNModel

    model = RSNModel(ModelConfig(input_size=(64, 64), num_blocks=(1, 1, 1, 1), unit_channels=32, num_keypoints=5,
                                 num_stages=2, prm="mmpose", prm_heads="all"))
    assert profiler_macs(model) == count_macs(model) > 0
