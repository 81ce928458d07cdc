"""RSN loss: hand-computed values for both modes, OHKM top-k, masks, stage sum, batch mean."""
import numpy as np
import pytest
import tensorflow as tf

from rsn_tf.losses import LossConfig, mse_per_sample, ohkm_per_sample, rsn_loss, rsn_loss_per_sample

# One sample, maps 1x2 (h x w), K = 3 keypoints. Targets (same at every head):
#   kpt0 = [2, 0] (visible, v=2), kpt1 = [0, 4] (occluded, v=1), kpt2 = [6, 0] (unlabelled, v=0, weight 0).
GT = np.array([[[2, 0, 6], [0, 4, 0]]], np.float32)  # [h=1, w=2, K=3]
VISIBLE = np.array([[2, 1, 0]], np.float32)
WEIGHTS = np.array([[1, 1, 0]], np.float32)


def _targets(num_heads=4, batch=1):
    maps = np.broadcast_to(GT, (batch, num_heads, 1, 2, 3)).copy()
    return {"heatmaps": tf.constant(maps), "visible": tf.constant(np.repeat(VISIBLE, batch, 0)),
            "weights": tf.constant(np.repeat(WEIGHTS, batch, 0))}


def _pred(value_kpt2=0.0, num_heads=4, batch=1):
    p = np.zeros((batch, 1, 2, 3), np.float32)
    p[..., 2] = value_kpt2  # a prediction on the unlabelled keypoint
    return [tf.constant(p) for _ in range(num_heads)]


def test_authors_mode_by_hand():
    cfg = LossConfig(mode="authors", topk=2)
    # heads 0-2: target kept only for v=2 (kpt0): errors 4,0 | 0,0 | 0,0 -> 4/6; x0.25 x3 heads = 0.5
    # head 3: per-kpt MSE 2, 8, 18*0 -> top-2 mean (8+2)/2 = 5
    assert float(rsn_loss(_pred(), _targets(), cfg)) == pytest.approx(5.5, rel=1e-6)
    # prediction 1 on unlabelled kpt2 is NOT masked: heads 0-2 (4+1+1)/6 = 1 -> 0.75; head 3: 13*0 -> still 5
    assert float(rsn_loss(_pred(1.0), _targets(), cfg)) == pytest.approx(5.75, rel=1e-6)


def test_mmpose_mode_by_hand():
    cfg = LossConfig(mode="mmpose", topk=2)
    # heads 0-2: squared error masked by weight (kpt0, kpt1 kept): (4 + 16) / 6 x 0.25 x 3 = 2.5; head 3 = 5
    assert float(rsn_loss(_pred(), _targets(), cfg)) == pytest.approx(7.5, rel=1e-6)
    # the prediction on the unlabelled kpt2 is masked too: unchanged
    assert float(rsn_loss(_pred(1.0), _targets(), cfg)) == pytest.approx(7.5, rel=1e-6)


def test_ohkm_topk_and_weights():
    pred = tf.zeros((1, 1, 2, 3))
    gt = tf.constant(GT[None])
    assert float(ohkm_per_sample(pred, gt, tf.constant([[1.0, 1.0, 1.0]]), topk=1)[0]) == pytest.approx(18.0)
    assert float(ohkm_per_sample(pred, gt, tf.constant([[1.0, 1.0, 1.0]]), topk=3)[0]) == pytest.approx(28 / 3)
    assert float(ohkm_per_sample(pred, gt, tf.constant(WEIGHTS), topk=1)[0]) == pytest.approx(8.0)
    with pytest.raises(ValueError, match="topk"):
        ohkm_per_sample(pred, gt, tf.constant(WEIGHTS), topk=4)


def test_mse_masks():
    pred = tf.ones((1, 1, 2, 3))
    gt = tf.constant(GT[None])
    # unmasked: (1 + 1 + 25) + (1 + 9 + 1) = 38 over 6
    assert float(mse_per_sample(pred, gt)[0]) == pytest.approx(38 / 6)
    # target masked to kpt0 only: (1+1+1) + (1+1+1) = 6 over 6
    assert float(mse_per_sample(pred, gt, mask_target=tf.constant([[1.0, 0, 0]]))[0]) == pytest.approx(1.0)
    # error masked to kpt0 only: 1 + 1 over 6
    assert float(mse_per_sample(pred, gt, mask_error=tf.constant([[1.0, 0, 0]]))[0]) == pytest.approx(2 / 6)


def test_stage_sum_batch_mean_and_dtype():
    cfg = LossConfig(mode="authors", topk=2)
    # two stages: every term twice
    assert float(rsn_loss(_pred(num_heads=8), _targets(8), cfg)) == pytest.approx(11.0, rel=1e-6)
    # a second sample whose prediction equals its target adds 0: batch mean halves
    targets = _targets(4, batch=2)
    preds = [tf.concat([p[:1], tf.constant(GT[None]) * tf.constant([[[[1.0, 0, 0]]]])], 0) for p in _pred(batch=2)]
    per_sample = rsn_loss_per_sample(preds, targets, cfg).numpy()
    # sample 2: heads 0-2 target = kpt0 only, prediction = kpt0 map -> 0; head 3: kpt1 error 8, kpt2 masked -> top2 (8+0)/2
    np.testing.assert_allclose(per_sample, [5.5, 4.0], rtol=1e-6)
    # bfloat16 predictions are computed in float32
    loss = rsn_loss([tf.cast(p, tf.bfloat16) for p in _pred()], _targets(), cfg)
    assert loss.dtype == tf.float32 and float(loss) == pytest.approx(5.5, rel=1e-6)


def test_head_count_mismatch_is_an_error():
    with pytest.raises(ValueError, match="levels"):
        rsn_loss(_pred(num_heads=4), _targets(8), LossConfig(topk=2))
    with pytest.raises(ValueError, match="loss.mode"):
        LossConfig(mode="mse")
