"""Augmentation invariants: crops and keypoints move together (flip, rotation, scale), half body, targets."""
import numpy as np
import pytest

from rsn_tf.codec import MegviiHeatmapCodec, level_kernels
from rsn_tf.data.augment import CropParams, apply_crop, eval_params, half_body_authors, train_params
from rsn_tf.data.config import AugmentConfig
from rsn_tf.data.preprocess import preprocess, preprocess_tf, unpreprocess
from rsn_tf.keypoints import COCO
from rsn_tf.model.config import Preprocessing

OUT = (192, 256)  # crop (W, H)


def _dot_image(rng, k=17, size=(480, 640)):
    """A grey image with a distinct colour dot (radius 3) per keypoint, away from the borders."""
    import cv2

    h, w = size
    img = np.full((h, w, 3), 100, np.uint8)
    pts = np.stack([rng.uniform(150, w - 150, k), rng.uniform(120, h - 120, k)], 1).astype(np.float32)
    # keep dots apart so each crop pixel belongs to one dot
    for i in range(k):
        while any(np.linalg.norm(pts[i] - pts[j]) < 14 for j in range(i)):
            pts[i] = [rng.uniform(150, w - 150), rng.uniform(120, h - 120)]
    colors = [(int(20 + 13 * i), int(250 - 11 * i), int((97 * i) % 256)) for i in range(k)]
    for p, c in zip(pts, colors):
        cv2.circle(img, (int(round(p[0])), int(round(p[1]))), 4, c, -1)
    return img, pts, np.array(colors)


@pytest.mark.parametrize("flip", [False, True])
def test_keypoints_land_on_their_dots_after_crop(flip):
    rng = np.random.default_rng(3)
    img, pts, colors = _dot_image(rng)
    vis = np.full((17,), 2.0)
    box = [pts[:, 0].min(), pts[:, 1].min(), np.ptp(pts[:, 0]), np.ptp(pts[:, 1])]
    for trial in range(4):
        p = eval_params(box, 0.75, (1.3, 1.3))
        params = CropParams(p.center + rng.normal(0, 5, 2), p.scale * rng.uniform(0.8, 1.2), rng.uniform(-45, 45), flip)
        crop, kp, v = apply_crop(img, pts, vis, params, OUT, COCO.flip_pairs)
        perm = COCO.flip_permutation() if flip else np.arange(17)
        checked = 0
        for i in range(17):
            if v[i] == 0:
                continue
            x, y = int(round(kp[i, 0])), int(round(kp[i, 1]))
            # channel i of the flipped crop is the original keypoint perm[i] (its dot, mirrored)
            np.testing.assert_allclose(crop[y, x], colors[perm[i]], atol=12)
            checked += 1
        assert checked >= 10


def test_outside_joints_get_zero_visibility():
    img = np.zeros((100, 100, 3), np.uint8)
    pts = np.array([[50, 50], [-30, 50], [50, 400]] + [[50, 50]] * 14, np.float32)
    vis = np.array([2, 2, 1] + [1] * 14, np.float32)
    _, kp, v = apply_crop(img, pts, vis, eval_params([25, 25, 50, 50], 0.75), OUT, COCO.flip_pairs)
    assert v[0] == 2 and v[1] == 0 and v[2] == 0 and v[3] == 1


class _FixedRng:
    """Stands in for np.random.Generator with chosen draws."""

    def __init__(self, normal, uniform=0.5):
        self.normal, self.uniform = normal, uniform

    def standard_normal(self, size=None):
        return self.normal

    def random(self, size=None):
        return self.uniform


def test_half_body_selects_upper_or_lower_subset():
    rng = np.random.default_rng(0)
    pts = rng.uniform(0, 300, (17, 2)).astype(np.float32)
    vis = np.full(17, 2.0)
    upper = np.array(COCO.upper_body)
    lower = np.array(COCO.lower_body)
    c, s = half_body_authors(_FixedRng(0.0), pts, vis, COCO, (0.0, 0.0), 0.75)  # normal < 0.5 -> upper
    np.testing.assert_allclose(c, pts[upper].mean(0), rtol=1e-5)
    c, s = half_body_authors(_FixedRng(1.0), pts, vis, COCO, (0.0, 0.0), 0.75)  # else lower (has 4 > 3)
    np.testing.assert_allclose(c, pts[lower].mean(0), rtol=1e-5)
    w, h = np.ptp(pts[lower], 0)
    assert s[0] / s[1] == pytest.approx(0.75) and s[0] >= w - 1e-3 and s[1] >= h - 1e-3
    vis2 = vis.copy()
    vis2[lower[0]] = 0  # lower has only 3 -> upper even when the draw says lower
    c, _ = half_body_authors(_FixedRng(1.0), pts, vis2, COCO, (0.0, 0.0), 0.75)
    np.testing.assert_allclose(c, pts[upper].mean(0), rtol=1e-5)
    vis3 = np.zeros(17)
    vis3[[0, 1, 15]] = 2  # 2 upper, 1 lower: too few
    assert half_body_authors(_FixedRng(0.0), pts, vis3, COCO, (0.0, 0.0), 0.75) is None


@pytest.mark.parametrize("recipe", ["authors", "mmpose", "none"])
def test_train_params_ranges(recipe):
    rng = np.random.default_rng(1)
    pts = rng.uniform(100, 300, (17, 2)).astype(np.float32)
    vis = np.full(17, 2.0)
    box = [100, 100, 200, 200]
    aug = AugmentConfig(recipe=recipe).resolved()
    rots, flips = [], []
    for _ in range(300):
        p = train_params(rng, box, pts, vis, COCO, aug, 0.75)
        assert p.scale[0] / p.scale[1] == pytest.approx(0.75, rel=1e-4)
        assert abs(p.rotation) <= aug.rotation_max
        rots.append(p.rotation)
        flips.append(p.flip)
    if recipe == "none":
        assert not any(flips) and not any(rots)
    else:
        assert 0.3 < np.mean(flips) < 0.7
        assert 0.2 < np.mean(np.array(rots) != 0) < 0.8


def test_targets_peaks_and_levels():
    kp = np.array([[10.0, 20.0], [100.5, 130.2], [-5, 10]] + [[0, 0]] * 14, np.float32)
    vis = np.array([2, 1, 2] + [0] * 14)
    for mode in ("authors", "mmpose"):
        codec = MegviiHeatmapCodec((256, 192), encode_mode=mode)
        maps, w = codec.encode_levels(kp, vis if mode == "authors" else np.minimum(vis, 1), level_kernels(2))
        assert maps.shape == (8, 64, 48, 17)
        np.testing.assert_array_equal(w, [1, 1] + [0] * 15)
        for lvl in maps:
            # Interior: peak 255 at the cell (kp / 4). Next to the border OpenCV's BORDER_REFLECT_101
            # folds the Gaussian back onto the edge pixel: mmpose divides by the cell's value (the map
            # exceeds 255 there), the authors by the map's maximum (255 on the edge).
            assert lvl[32, 25, 1] == pytest.approx(255) and lvl[..., 1].max() == pytest.approx(255)
            if mode == "mmpose":
                assert lvl[5, 2, 0] == pytest.approx(255) and lvl[..., 0].max() >= 255
            else:
                assert lvl[..., 0].max() == pytest.approx(255) and lvl[5, 2, 0] <= 255
            assert not lvl[..., 2:].any()
        # coarser kernels spread more: first level (15) wider than the last (5)
        assert (maps[0, ..., 1] > 1).sum() > (maps[-1, ..., 1] > 1).sum()


def test_preprocess_color_order_and_tf_twin():
    crop = np.random.default_rng(0).integers(0, 256, (2, 8, 6, 3), dtype=np.uint8)
    rgb = Preprocessing()
    x = preprocess(crop, rgb, input_order="bgr")
    np.testing.assert_allclose(x[..., 0], (crop[..., 2] - rgb.mean[0]) / rgb.std[0], rtol=1e-5)
    np.testing.assert_allclose(preprocess_tf(crop, rgb, "bgr").numpy(), x, rtol=1e-5, atol=1e-5)
    bgr = Preprocessing(color_order="bgr", mean=rgb.mean[::-1], std=rgb.std[::-1])
    np.testing.assert_allclose(preprocess(crop, bgr, "bgr"), x[..., ::-1], rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(unpreprocess(x, rgb, "bgr"), crop)
