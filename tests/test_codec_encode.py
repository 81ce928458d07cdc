"""The codec's two encode modes against the references' rules: mmpose's MegviiHeatmap.encode and the
authors' generate_heatmap + JointsDataset bounds rule.

The oracles below follow each reference's documented steps one keypoint at a time (the references
loop per keypoint; the codec blurs all channels in one call), so an exact match also checks the
vectorised arithmetic. The slow test runs the real MegviiHeatmap.encode from an mmpose install.
"""
import json
import os
import subprocess
import sys

import cv2
import numpy as np
import pytest

from conftest import SHARED, shared_path
from rsn_tf.codec import MegviiHeatmapCodec

IN_H, IN_W = 256, 192
H, W = 64, 48
KERNELS = (11, 9, 7, 5)


def mmpose_oracle(kpts, vis, kernel):
    """MegviiHeatmap.encode, step by step: weight = visibility; skip vis < 0.5; cell = (kp / 4) cast to
    int64 (truncation); outside the grid -> weight 0; one-hot, GaussianBlur, / value at the cell * 255."""
    kpts = np.asarray(kpts, np.float32)
    scale = (np.array([IN_W, IN_H]) / np.array([W, H])).astype(np.float32)
    maps = np.zeros((len(kpts), H, W), np.float32)
    weights = np.asarray(vis, np.float32).copy()
    for k, (p, v) in enumerate(zip(kpts, vis)):
        if v < 0.5:
            continue
        kx, ky = (p / scale).astype(np.int64)
        if kx < 0 or kx >= W or ky < 0 or ky >= H:
            weights[k] = 0
            continue
        maps[k, ky, kx] = 1.0
        maps[k] = cv2.GaussianBlur(maps[k], (kernel, kernel), 0)
        maps[k] = maps[k] / maps[k, ky, kx] * 255.0
    return maps.transpose(1, 2, 0), weights


def authors_oracle(kpts, vis, kernel):
    """The authors' rules, step by step: a labelled joint outside [0, W-1] x [0, H-1] becomes invalid;
    valid >= 1 gets a map at (int(y * h / H), int(x * w / W)), blurred, divided by its max / 255;
    the OHKM weight is valid > 0."""
    kpts = np.asarray(kpts, np.float64)
    valid = np.asarray(vis, np.float64).copy()
    maps = np.zeros((len(kpts), H, W), np.float32)
    for k, (x, y) in enumerate(kpts):
        if valid[k] > 0 and (x < 0 or x > IN_W - 1 or y < 0 or y > IN_H - 1):
            valid[k] = 0
        if valid[k] < 1:
            continue
        maps[k, int(y * H / IN_H), int(x * W / IN_W)] = 1
        maps[k] = cv2.GaussianBlur(maps[k], (kernel, kernel), 0)
        maps[k] /= np.amax(maps[k]) / 255
    return maps.transpose(1, 2, 0), (valid > 0).astype(np.float32)


def edge_points():
    """Keypoints on and around every crop border and cell boundary, with visibilities 0/1/2."""
    xs = [-4.0, -3.99, -0.5, -1e-4, 0.0, 0.5, 3.99, 4.0, 95.5, 187.9, 188.0, 190.99, 191.0, 191.0001, 191.5,
          191.99, 192.0, 195.0]
    ys = [-4.5, -0.25, 0.0, 3.0, 128.2, 251.9, 252.0, 254.5, 255.0, 255.3, 255.99, 256.0]
    pts = np.array([(x, y) for x in xs for y in ys], np.float32)
    vis = np.tile([2.0, 1.0, 2.0, 0.0, 1.0, 2.0], len(pts) // 6 + 1)[:len(pts)]
    return pts, vis


@pytest.mark.parametrize("mode", ["mmpose", "authors"])
def test_encode_matches_the_reference_rules_on_borders_and_cells(mode):
    codec = MegviiHeatmapCodec((IN_H, IN_W), encode_mode=mode)
    oracle = mmpose_oracle if mode == "mmpose" else authors_oracle
    pts, vis = edge_points()
    vis_in = np.minimum(vis, 1.0) if mode == "mmpose" else vis  # mmpose reads keypoints_visible = min(1, v)
    for kernel in (15,) + KERNELS:
        for start in range(0, len(pts), 17):  # 17 keypoints at a time, like a person
            p, v = pts[start:start + 17], vis_in[start:start + 17]
            maps, weights = codec.encode(p, v, kernel)
            ref_maps, ref_weights = oracle(p, v, kernel)
            np.testing.assert_array_equal(weights, ref_weights)
            assert np.abs(maps - ref_maps).max() <= 1e-3, (mode, kernel, start)


def test_the_two_modes_differ_where_the_references_do():
    mm = MegviiHeatmapCodec((IN_H, IN_W), encode_mode="mmpose")
    au = MegviiHeatmapCodec((IN_H, IN_W), encode_mode="authors")
    # x = -0.5: mmpose truncates toward zero -> column 0, weight kept; the authors drop it (x < 0).
    m, w = mm.encode([[-0.5, 100.0]], [1.0], 11)
    assert w[0] == 1 and np.unravel_index(m[..., 0].argmax(), (H, W)) == (25, 0)
    m, w = au.encode([[-0.5, 100.0]], [2.0], 11)
    assert w[0] == 0 and not m.any()
    # x = 191.5 (inside the last heatmap column): mmpose keeps it, the authors drop it (x > W - 1).
    assert mm.encode([[191.5, 100.0]], [1.0], 11)[1][0] == 1
    assert au.encode([[191.5, 100.0]], [2.0], 11)[1][0] == 0
    # A cell 2 px from the bottom edge: the reflecting blur peaks on the edge pixel. mmpose divides by
    # the value at the cell (the map exceeds 255: 272.46 for k=11, as in the pipeline fixture's person 4),
    # the authors by the maximum (exactly 255, on the edge).
    m, _ = mm.encode([[110.0, 245.0]], [1.0], 11)
    assert m[61, 27, 0] == pytest.approx(255.0) and m.max() == pytest.approx(272.4575, abs=1e-3)
    assert np.unravel_index(m[..., 0].argmax(), (H, W)) == (63, 27)
    m, _ = au.encode([[110.0, 245.0]], [2.0], 11)
    assert m.max() == pytest.approx(255.0) and m[63, 27, 0] == pytest.approx(255.0)
    assert m[61, 27, 0] < 240
    # mmpose keeps a fractional visibility below 0.5 as the weight (no map); authors: v > 0 is labelled.
    m, w = mm.encode([[50.0, 50.0]], [0.3], 5)
    assert w[0] == pytest.approx(0.3) and not m.any()


def test_mmpose_mode_reproduces_the_pipeline_fixture_targets():
    z = np.load(shared_path("fixtures", "mmpose_pipeline_coco_sample.npz"))
    codec = MegviiHeatmapCodec((IN_H, IN_W), encode_mode="mmpose")
    for i in range(len(z["heatmaps"])):
        maps, weights = codec.encode_levels(z["transformed_keypoints"][i], z["keypoints_visible"][i], KERNELS)
        np.testing.assert_array_equal(maps, z["heatmaps"][i].transpose(0, 2, 3, 1))  # bit-identical
        np.testing.assert_array_equal(np.repeat(weights[None], 4, 0), z["keypoint_weights"][i])


def test_bad_encode_input_is_one_clear_error():
    with pytest.raises(ValueError, match="encode_mode"):
        MegviiHeatmapCodec(encode_mode="megvii")
    with pytest.raises(ValueError, match="2 keypoints but 3"):
        MegviiHeatmapCodec().encode(np.zeros((2, 2)), np.ones(3), 5)


MMPOSE_PYTHON = os.environ.get("MMPOSE_PYTHON", "/work/mmpose_venv/bin/python")
_MMPOSE_ENCODE = """
import sys, json
sys.path.insert(0, sys.argv[1]); import mm_import  # noqa
import numpy as np
from mmpose.codecs import MegviiHeatmap
case = np.load(sys.argv[2])
out = {}
for kernel in (15, 11, 9, 7, 5):
    enc = MegviiHeatmap(input_size=(192, 256), heatmap_size=(48, 64), kernel_size=kernel)
    maps, weights = [], []
    for p, v in zip(case["keypoints"], case["visible"]):
        r = enc.encode(p[None], v[None])
        maps.append(r["heatmaps"]); weights.append(r["keypoint_weights"][0])
    out[f"maps{kernel}"] = np.stack(maps); out[f"weights{kernel}"] = np.stack(weights)
np.savez(sys.argv[3], **out)
"""


@pytest.mark.slow
def test_mmpose_mode_equals_the_real_megviiheatmap_encode(tmp_path):
    """Random people with keypoints spread over and beyond the crop, through mmpose's own encoder."""
    if not os.path.exists(MMPOSE_PYTHON):
        pytest.skip(f"needs an mmpose install ({MMPOSE_PYTHON}; set MMPOSE_PYTHON)")
    tools = shared_path("tools")
    rng = np.random.default_rng(7)
    n = 60
    kpts = np.stack([rng.uniform(-12, IN_W + 12, (n, 17)), rng.uniform(-12, IN_H + 12, (n, 17))], -1)
    kpts[:, :4] = np.round(kpts[:, :4] / 4) * 4 + rng.choice([-1e-3, 0.0, 1e-3], (n, 4, 2))  # on cell edges
    vis = rng.choice([0.0, 1.0, 1.0, 1.0], (n, 17))
    case = tmp_path / "case.npz"
    np.savez(case, keypoints=kpts.astype(np.float32), visible=vis.astype(np.float32))
    script = tmp_path / "encode.py"
    script.write_text(_MMPOSE_ENCODE)
    out = tmp_path / "out.npz"
    subprocess.run([MMPOSE_PYTHON, str(script), tools, str(case), str(out)], check=True, capture_output=True)
    ref = np.load(out)
    codec = MegviiHeatmapCodec((IN_H, IN_W), encode_mode="mmpose")
    for kernel in (15,) + KERNELS:
        for i in range(n):
            maps, weights = codec.encode(kpts[i].astype(np.float32), vis[i].astype(np.float32), kernel)
            np.testing.assert_array_equal(weights, ref[f"weights{kernel}"][i])
            assert np.abs(maps - ref[f"maps{kernel}"][i].transpose(1, 2, 0)).max() <= 1e-3
