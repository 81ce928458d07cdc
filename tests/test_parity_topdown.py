"""scripts/mmpose_parity.py on the shared ``topdown`` fixture: converted weights + the real PoseEstimator
reproduce mmpose's inference_topdown end to end (boxes, crops, flip test, decode, image keypoints)."""
import json
import os

import numpy as np
import pytest
from conftest import shared_path

from rsn_tf.parity import run_fixture

FIXTURE = ("fixtures", "mmpose_topdown_coco_sample.npz")


def test_topdown_fixture_passes(capsys):
    import sys
    sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "scripts"))
    import mmpose_parity
    assert mmpose_parity.main([shared_path(*FIXTURE)]) == 0
    out = capsys.readouterr().out
    assert out.rstrip().endswith("parity: PASS")
    for name in ("recipe", "flip_indices", "boxes.from_files", "bbox_center", "bbox_scale", "heatmaps",
                 "keypoints:", "keypoint_scores", "keypoints.fragile"):
        assert f"ok   {name}" in out


def test_topdown_checker_fails_loudly_on_a_wrong_answer_and_on_missing_weights(tmp_path):
    """A fixture whose mmpose keypoints are moved by 0.05 px fails; one whose weights are absent is one error."""
    src = shared_path(*FIXTURE)
    z = dict(np.load(src))
    keep = np.flatnonzero(z["image_index"] == 1)  # one image's boxes keep the test short
    z = {k: (v[keep] if v.ndim and len(v) == len(z["image_index"]) else v) for k, v in z.items()}
    z["keypoints"] = z["keypoints"] + np.float32(0.05)
    man = json.load(open(src[:-4] + ".json"))
    man["boxes"]["per_box"] = [man["boxes"]["per_box"][i] for i in keep]
    man["boxes"].pop("det_file")
    np.savez(tmp_path / "moved.npz", **z)
    man["data_dir"] = os.path.dirname(shared_path("data", "coco_sample", "test_coco.json"))
    json.dump(man, open(tmp_path / "moved.json", "w"))
    with pytest.raises(FileNotFoundError, match="weights it names .*mmpose_rsn18_coco_256x192.npz"):
        run_fixture(str(tmp_path / "moved.npz"))
    os.symlink(shared_path("fixtures", "mmpose_rsn18_coco_256x192.npz"), tmp_path / "mmpose_rsn18_coco_256x192.npz")
    report = run_fixture(str(tmp_path / "moved.npz"))
    assert not report.ok and "keypoints" in report.summary()
    assert [c.name for c in report.failed] == ["keypoints"]
    assert [c.name for c in report.checks if c.name.startswith("boxes")] == ["boxes.from_files"]  # GT boxes only
