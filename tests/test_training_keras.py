"""Keras conventions: ``RSNLoss`` is a ``keras.losses.Loss`` that ``compile``/``fit`` use on a plain
``RSNModel``; the heads are addressable by name; ``inference_model`` keeps the config and metadata.
(Its division by the replicas in sync under a strategy: tests/test_distributed.py.)"""
import keras
import numpy as np
import pytest

from helpers.tiny import tiny_experiment
from rsn_tf.losses import LossConfig, RSNLoss, rsn_loss, rsn_loss_per_sample
from rsn_tf.model import RSNModel, inference_model
from rsn_tf.training.config import resolve_experiment
from rsn_tf.training.fake_data import fake_arrays, fake_dataset

CFG = resolve_experiment(tiny_experiment()).model_config()


def test_rsn_loss_is_a_keras_loss():
    model = RSNModel(CFG)
    images, targets = fake_arrays(CFG, 3, seed=2)
    outputs = model(images)
    for mode in ("authors", "mmpose"):
        loss = RSNLoss(mode=mode)
        assert isinstance(loss, keras.losses.Loss)
        want = float(rsn_loss(outputs, targets, LossConfig(mode=mode)))
        assert float(loss(targets, outputs)) == pytest.approx(want, rel=1e-6)
        np.testing.assert_allclose(loss.per_sample(targets, outputs),
                                   rsn_loss_per_sample(outputs, targets, LossConfig(mode=mode)), rtol=1e-6)
        clone = keras.losses.deserialize(keras.losses.serialize(loss))
        assert isinstance(clone, RSNLoss) and clone.config == loss.config
    assert RSNLoss(LossConfig(topk=4)).config.topk == 4 and RSNLoss({"mode": "mmpose"}).config.mode == "mmpose"
    with pytest.raises(ValueError, match="loss.mode"):
        RSNLoss(mode="l1")


def test_plain_rsn_model_compiles_and_fits_with_the_loss(tmp_path):
    keras.utils.set_random_seed(0)
    model = RSNModel(CFG, metadata={"note": "plain"})
    model.compile(optimizer=keras.optimizers.Adam(1e-2), loss=RSNLoss(), jit_compile=False)
    ds = fake_dataset(CFG, 4, n=4, seed=0)  # the same batch every step: the loss must fall
    history = model.fit(ds, epochs=2, steps_per_epoch=3, verbose=0, shuffle=False).history["loss"]
    assert np.isfinite(history).all() and history[1] < history[0]
    images, targets = fake_arrays(CFG, 4, seed=0)
    want = float(rsn_loss(model(images), targets))
    assert float(model.compute_loss(y=targets, y_pred=model(images))) == pytest.approx(want, rel=1e-6)
    path = str(tmp_path / "compiled.keras")
    model.save(path)
    loaded = keras.models.load_model(path)  # compiled with the RSN loss again
    assert isinstance(loaded.loss, RSNLoss) and loaded.metadata == {"note": "plain"}
    assert float(loaded.compute_loss(y=targets, y_pred=loaded(images))) == pytest.approx(want, rel=1e-5)


def test_heads_by_name_and_inference_model(tmp_path):
    model = RSNModel(CFG, metadata={"keypoints": "coco"})
    assert model.heads == [f"heatmap_s0_u{u}" for u in range(4)] == model.output_names_ordered
    x = np.random.default_rng(0).normal(size=(2, *CFG.input_size, 3)).astype(np.float32)
    named = model.named(model(x))
    assert list(named) == model.heads
    two = model.head_model("heatmap_s0_u1", "heatmap_s0_u3")
    a, b = two(x)
    np.testing.assert_allclose(a.numpy(), named["heatmap_s0_u1"].numpy(), atol=1e-6)
    np.testing.assert_allclose(b.numpy(), named["heatmap_s0_u3"].numpy(), atol=1e-6)
    with pytest.raises(ValueError, match="heatmap_s1_u3"):
        model.head_model("heatmap_s1_u3")

    final = inference_model(model)
    assert isinstance(final, RSNModel) and final.rsn_config == CFG and final.metadata == {"keypoints": "coco"}
    assert final.heads == ["heatmap_s0_u3"] and inference_model(final) is final
    np.testing.assert_allclose(final(x).numpy(), named["heatmap_s0_u3"].numpy(), atol=1e-6)
    assert len(final.weights) < len(model.weights)  # the coarse heads are not part of it
    path = str(tmp_path / "final.keras")
    final.save(path)
    loaded = keras.models.load_model(path)
    assert isinstance(loaded, RSNModel) and loaded.heads == ["heatmap_s0_u3"] and loaded.rsn_config == CFG
    assert loaded.metadata == {"keypoints": "coco"}
    np.testing.assert_allclose(loaded(x).numpy(), final(x).numpy(), atol=1e-6)
