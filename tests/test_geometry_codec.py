"""Geometry (affine crop and its inverse, flips) and the heatmap codec round trip."""
import cv2
import numpy as np
import pytest

from rsn_tf import geometry
from rsn_tf.codec import MegviiHeatmapCodec, level_kernels
from rsn_tf.keypoints import COCO


def test_box_to_center_scale_aspect_fix():
    c, s = geometry.box_to_center_scale([10, 20, 30, 100], aspect_ratio=0.75)
    np.testing.assert_allclose(c, [25, 70])
    np.testing.assert_allclose(s, [75, 100])  # narrow box: width enlarged to 0.75 * h
    c, s = geometry.box_to_center_scale([0, 0, 90, 60], 0.75, padding=(1.09, 1.135))
    np.testing.assert_allclose(s, [98.1, 98.1 / 0.75], rtol=1e-5)


@pytest.mark.parametrize("rot", [0.0, 30.0, -45.0])
def test_affine_round_trip_and_centre(rot):
    center, scale = np.array([120.0, 80.0]), np.array([96.0, 128.0])
    m = geometry.get_affine_transform(center, scale, rot, (192, 256))
    np.testing.assert_allclose(geometry.transform_points(center, m), [96, 128], atol=1e-4)
    pts = np.random.default_rng(0).uniform(0, 200, size=(17, 2))
    crop = geometry.transform_points(pts, m)
    back = geometry.crop_to_image(crop, center, scale, (192, 256), rot)
    np.testing.assert_allclose(back, pts, atol=1e-3)
    # scale w maps to W pixels: 2x zoom here
    d = geometry.transform_points(center + [10, 0], m) - geometry.transform_points(center, m)
    assert abs(np.linalg.norm(d) - 20.0) < 1e-3


def test_warp_to_crop_moves_a_dot_where_transform_points_says():
    img = np.zeros((200, 300), np.float32)
    img[50, 140] = 1.0
    center, scale = np.array([150.0, 100.0]), np.array([150.0, 200.0])
    crop = geometry.warp_to_crop(img, center, scale, 20.0, (192, 256))
    expected = geometry.transform_points([140, 50], geometry.get_affine_transform(center, scale, 20.0, (192, 256)))
    y, x = np.unravel_index(crop.argmax(), crop.shape)
    assert abs(x - expected[0]) <= 1 and abs(y - expected[1]) <= 1


def test_flips_are_involutions():
    pts = np.random.default_rng(1).uniform(0, 100, size=(17, 2)).astype(np.float32)
    vis = np.arange(17)
    f, fv = geometry.flip_points(pts, 100, COCO.flip_pairs, vis)
    assert fv[1] == 2 and fv[2] == 1 and abs(f[1, 0] - (99 - pts[2, 0])) < 1e-5
    ff, ffv = geometry.flip_points(f, 100, COCO.flip_pairs, fv)
    np.testing.assert_allclose(ff, pts, atol=1e-5)
    np.testing.assert_array_equal(ffv, vis)
    hm = np.random.default_rng(2).random((2, 8, 6, 17))
    np.testing.assert_array_equal(geometry.flip_back_heatmaps(geometry.flip_back_heatmaps(hm, COCO.flip_pairs), COCO.flip_pairs), hm)


def test_encode_peak_kernel_and_weights():
    codec = MegviiHeatmapCodec()
    kpts = np.array([[100.0, 130.0], [-5.0, 10.0], [50.0, 60.0]])
    maps, w = codec.encode(kpts, [2, 1, 0], kernel=11)
    assert maps.shape == (64, 48, 3)
    assert w.tolist() == [1, 0, 0]  # outside the map -> 0, unlabelled -> 0
    assert maps[..., 0].max() == pytest.approx(255.0)
    assert np.unravel_index(maps[..., 0].argmax(), (64, 48)) == (32, 25)  # floor(130/4), floor(100/4)
    assert maps[..., 1:].max() == 0
    # sigma = 0.3*((k-1)/2-1)+0.8: wider kernels give wider blobs
    wide, _ = codec.encode(kpts[:1], [1], kernel=15)
    assert (wide > 1).sum() > (maps[..., 0] > 1).sum()


def test_level_kernels():
    assert level_kernels(1) == (11, 9, 7, 5)
    assert level_kernels(2) == (15, 11, 9, 7, 11, 9, 7, 5)


@pytest.mark.parametrize("mode", ["authors", "mmpose"])
def test_round_trip_within_a_heatmap_pixel(mode):
    codec = MegviiHeatmapCodec(decode_mode=mode)
    rng = np.random.default_rng(3)
    kpts = rng.uniform([12, 12], [180, 244], size=(17, 2)).astype(np.float32)
    maps, _ = codec.encode(kpts, np.ones(17), kernel=5)
    dec, scores = codec.decode(maps[None])
    err = np.linalg.norm(dec[0] - kpts, axis=-1)
    assert err.max() <= 4.0 * np.sqrt(2)  # within one heatmap pixel (stride 4) on both axes
    assert err.mean() < 2.5
    assert np.all(scores[0] > 1.2)  # peak 255 -> score ~1.5


def test_authors_decode_quarter_step_toward_second_max():
    codec = MegviiHeatmapCodec(decode_kernel=5)
    hm = np.zeros((64, 48, 1), np.float32)
    hm[20, 10, 0] = 255
    hm[20, 11, 0] = 200  # second maximum to the right
    (x, y), s = codec.decode(hm)[0][0], codec.decode(hm)[1][0]
    assert x == pytest.approx(4 * 10.25 + 2) and y == pytest.approx(4 * 20 + 2)
    assert s == pytest.approx(1.5)


def test_decode_matches_cv2_reference_for_mmpose_mode():
    """mmpose mode: blur renormalised; interior +0.25*sign(grad)+0.5."""
    codec = MegviiHeatmapCodec(decode_mode="mmpose", decode_kernel=5)
    hm = np.zeros((64, 48, 1), np.float32)
    hm[30, 20, 0] = 255
    hm[29, 20, 0] = 100  # up
    kp, sc = codec.decode(hm)
    assert kp[0, 0] == pytest.approx(4 * (20 + 0.5)) and kp[0, 1] == pytest.approx(4 * (30 - 0.25 + 0.5))
    assert sc[0] == pytest.approx(1.5, abs=1e-5)


def test_default_recipe_follows_the_model_metadata():
    from rsn_tf.recipes import default_recipe

    assert default_recipe(None) == "authors"
    assert default_recipe({"weights": "mmpose"}) == "mmpose"
    assert default_recipe({"experiment": {"train": {"loss": {"mode": "mmpose"}}}}) == "mmpose"
    assert default_recipe({"experiment": {"train": {"loss": {"mode": "authors"}}}}) == "authors"
    assert default_recipe({"weights": "mmpose", "recipe": "authors"}) == "authors"
