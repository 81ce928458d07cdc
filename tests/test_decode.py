"""The vectorised heatmap decode is the per-map reference loop bit for bit, and mmpose's decode on
mmpose's own heatmaps (the shared topdown fixture)."""
import numpy as np
import pytest
from conftest import shared_path

from rsn_tf.codec import MegviiHeatmapCodec


def _peaked(rng, n, h=64, w=48, k=17):
    """Gaussian peaks (some at or past the border) on smooth noise, weak broad blobs for 'invisible' joints."""
    import cv2
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    out = np.zeros((n, h, w, k), np.float32)
    for i in range(n):
        for j in range(k):
            vis = rng.random() < 0.8
            cx, cy = rng.uniform(-2, w + 1), rng.uniform(-2, h + 1)
            sig = rng.uniform(1.2, 2.5) if vis else rng.uniform(3, 8)
            amp = rng.uniform(80, 260) if vis else rng.uniform(5, 60)
            noise = cv2.GaussianBlur(rng.normal(size=(h, w)).astype(np.float32), (7, 7), 0) * rng.uniform(1, 8)
            out[i, :, :, j] = amp * np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * sig * sig)) + noise - 2
    return out


def _cases():
    rng = np.random.default_rng(0)
    codec = MegviiHeatmapCodec()
    gauss = []
    for _ in range(12):
        kp = rng.uniform([-8, -8], [200, 264], size=(17, 2)).astype(np.float32)
        gauss.append(codec.encode(kp, np.ones(17), kernel=int(rng.choice([5, 7, 9, 11])))[0])
    gauss = np.stack(gauss)
    sym = gauss + gauss[:, :, ::-1]  # mirror-symmetric maps: exact ties in the blur and its gradient
    spikes = np.zeros((12, 64, 48, 17), np.float32)
    for i in range(12):
        for j in range(17):
            spikes[i, rng.integers(0, 64), rng.integers(0, 48), j] = rng.uniform(0.1, 300)
    edges = np.zeros((4, 64, 48, 17), np.float32)
    edges[:, 0, :, :] = 50
    edges[:, :, -1, :] = 60
    nonfinite = rng.normal(size=(3, 64, 48, 17)).astype(np.float32)
    nonfinite[0, 3, 4, 5] = np.nan
    nonfinite[1, :, :, 2] = np.inf
    nonfinite[2, 7, 7, 7] = -np.inf
    return {
        "noise": rng.normal(size=(8, 64, 48, 17)).astype(np.float32),
        "negative": -np.abs(rng.normal(size=(4, 64, 48, 17))).astype(np.float32),
        "zeros": np.zeros((2, 64, 48, 17), np.float32),
        "integers": rng.integers(-3, 4, size=(8, 64, 48, 17)).astype(np.float32),  # many exact ties
        "gauss": gauss, "gauss_noise": gauss + 3 * rng.normal(size=gauss.shape).astype(np.float32),
        "symmetric": sym, "spikes": spikes, "edges": edges, "nonfinite": nonfinite,
        "peaked": _peaked(rng, 16),
        "small": rng.normal(size=(5, 8, 6, 3)).astype(np.float32),
    }


@pytest.mark.parametrize("mode", ["authors", "mmpose"])
@pytest.mark.parametrize("kernel", [5, 9, 3, 11, 13])
def test_fast_decode_is_the_reference_loop_bit_for_bit(mode, kernel):
    for name, hm in _cases().items():
        codec = MegviiHeatmapCodec((hm.shape[1] * 4, hm.shape[2] * 4), decode_mode=mode, decode_kernel=kernel)
        with np.errstate(all="ignore"):
            kp, sc = codec.decode(hm)
            ref_kp, ref_sc = codec.decode_reference(hm)
        np.testing.assert_array_equal(kp, ref_kp, err_msg=f"{name}: keypoints")
        np.testing.assert_array_equal(sc, ref_sc, err_msg=f"{name}: scores")


def test_fast_decode_across_chunks_and_single_map():
    rng = np.random.default_rng(1)
    hm = _peaked(rng, 8)
    hm = np.concatenate([hm] * 32)  # 256 boxes x 17 maps: more than one chunk of the fast path
    hm[100] *= -1
    for mode in ("authors", "mmpose"):
        codec = MegviiHeatmapCodec(decode_mode=mode)
        kp, sc = codec.decode(hm)
        np.testing.assert_array_equal(kp[:8], kp[8:16])
        ref_kp, ref_sc = codec.decode_reference(hm[96:104])
        np.testing.assert_array_equal(kp[96:104], ref_kp)
        np.testing.assert_array_equal(sc[96:104], ref_sc)
        one_kp, one_sc = codec.decode(hm[3])  # [h, w, K] -> [K, 2], [K]
        np.testing.assert_array_equal(one_kp, kp[3])
        np.testing.assert_array_equal(one_sc, sc[3])
    with pytest.raises(ValueError, match=r"\[N, h, w, K\]"):
        MegviiHeatmapCodec().decode(np.zeros((64, 48), np.float32))


def test_mmpose_decode_reproduces_mmpose_on_its_heatmaps():
    """The fixture stores the flip-averaged heatmaps mmpose decoded; our mmpose-mode decode and
    mmpose's crop-to-image formula give its keypoints and scores exactly, fragile ones included."""
    z = np.load(shared_path("fixtures", "mmpose_topdown_coco_sample.npz"))
    hm = z["heatmaps"].transpose(0, 2, 3, 1)
    kp, sc = MegviiHeatmapCodec((256, 192), decode_mode="mmpose", decode_kernel=5).decode(hm)
    scale = z["bbox_scale"][:, None].astype(np.float64)
    center = z["bbox_center"][:, None].astype(np.float64)
    image_kp = (kp / np.array([192, 256]) * scale + center - 0.5 * scale).astype(np.float32)
    assert z["fragile"].sum() > 0
    np.testing.assert_array_equal(image_kp, z["keypoints"])
    np.testing.assert_array_equal(sc, z["keypoint_scores"])
