"""The repository itself: no generated binaries committed, and fixtures checked through the parity library."""
import os
import subprocess

import pytest

from conftest import REPO, shared_path

MAX_TRACKED_BYTES = 2_000_000  # the largest real file (docs/demo_overlays.jpg) is well under this


def _tracked_files():
    try:
        out = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("not a git checkout")
    return [p for p in out.decode().split("\0") if p]


def test_no_large_or_generated_files_are_tracked():
    files = _tracked_files()
    big = [(p, os.path.getsize(os.path.join(REPO, p))) for p in files
           if os.path.exists(os.path.join(REPO, p)) and os.path.getsize(os.path.join(REPO, p)) > MAX_TRACKED_BYTES]
    assert not big, f"files over {MAX_TRACKED_BYTES} bytes are tracked: {big}"
    generated = [p for p in files if p.endswith((".data", ".onnx", ".tflite", ".npz", ".pth", ".h5", ".keras"))]
    assert not generated, f"generated binaries are tracked: {generated}"


def test_forward_fixture_passes_the_parity_checker():
    from rsn_tf.parity import run_fixture

    report = run_fixture(shared_path("fixtures", "mmpose_rsn18_coco_256x192.npz"))
    assert [c.name for c in report.checks] == [f"output_s0_u{u}" for u in range(4)]
    assert report.ok, report.lines()
    assert report.summary() == "parity: PASS"
