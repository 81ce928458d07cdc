"""Where Keras differs from PyTorch, rsn_tf trains as PyTorch (both references): BatchNorm's running
variance and accurate batch sums, Adam's epsilon placement, mmengine's per-iteration warm-up, the
authors' scheduler-before-optimizer order. Each is checked against PyTorch itself where it is
installed (CI installs the CPU wheel) and against the closed form otherwise."""
import keras
import numpy as np
import pytest
import tensorflow as tf

from rsn_tf.model.layers import BatchNormalization
from rsn_tf.training.optimizer import AdamL2
from rsn_tf.training.schedules import WarmupLinearDecay, WarmupStepDecay


def _torch():
    return pytest.importorskip("torch")


def _bn_pair(c, rng):
    layer = BatchNormalization(epsilon=1e-5, momentum=0.9)
    layer.build((None, 8, 6, c))
    layer.gamma.assign(rng.uniform(0.5, 1.5, c).astype(np.float32))
    layer.beta.assign(rng.normal(0, 0.1, c).astype(np.float32))
    layer.moving_mean.assign(rng.normal(0, 0.1, c).astype(np.float32))
    layer.moving_variance.assign(rng.uniform(0.5, 2.0, c).astype(np.float32))
    return layer


def _bn_train_step(layer, x, w):
    xt = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(xt)
        y = layer(xt, training=True)
        loss = tf.reduce_sum(y * w)
    dx, dg, db = tape.gradient(loss, [xt, layer.gamma, layer.beta])
    return y.numpy(), dx.numpy(), dg.numpy(), db.numpy()


def test_batchnorm_moving_variance_is_the_unbiased_batch_variance():
    rng = np.random.default_rng(0)
    x = (rng.standard_normal((6, 8, 6, 4)) * 3 + 1).astype(np.float32)
    layer = _bn_pair(4, rng)
    old_m, old_v = layer.moving_mean.numpy(), layer.moving_variance.numpy()
    layer(x, training=True)
    n = 6 * 8 * 6
    x64 = x.astype(np.float64)
    np.testing.assert_allclose(layer.moving_mean.numpy(), 0.9 * old_m + 0.1 * x64.mean((0, 1, 2)), rtol=1e-6)
    np.testing.assert_allclose(layer.moving_variance.numpy(), 0.9 * old_v + 0.1 * x64.var((0, 1, 2)) * n / (n - 1),
                               rtol=1e-6)
    biased = BatchNormalization(running_variance="biased", epsilon=1e-5, momentum=0.9)
    biased.build(x.shape)
    biased.moving_variance.assign(old_v)
    biased(x, training=True)
    np.testing.assert_allclose(biased.moving_variance.numpy(), 0.9 * old_v + 0.1 * x64.var((0, 1, 2)), rtol=1e-6)


def test_batchnorm_gradients_equal_autodiff_and_inference_is_the_stock_layer():
    rng = np.random.default_rng(1)
    x = (rng.standard_normal((4, 8, 6, 5)) * 2 + 0.5).astype(np.float32)
    w = tf.constant(rng.standard_normal(x.shape).astype(np.float32))
    ours = _bn_pair(5, rng)
    stock = keras.layers.BatchNormalization(epsilon=1e-5, momentum=0.9)
    stock.build(x.shape)
    stock.set_weights(ours.get_weights())
    for a, b in zip(_bn_train_step(ours, x, w), _bn_train_step(stock, x, w)):
        np.testing.assert_allclose(a, b, atol=2e-5, rtol=1e-5)
    ours.set_weights(stock.get_weights())
    np.testing.assert_array_equal(ours(x, training=False).numpy(), stock(x, training=False).numpy())


def test_batchnorm_sums_are_accurate_where_one_float32_pass_is_not():
    """6 x 128 x 96 values per channel with a large mean: tf.nn.moments loses ~1e-3 of the variance."""
    rng = np.random.default_rng(2)
    x = (rng.standard_normal((6, 128, 96, 3)) * 0.5 + 4.0).astype(np.float32)
    layer = BatchNormalization(epsilon=1e-5, momentum=0.0)  # moving stats = this batch's
    layer.build(x.shape)
    layer(x, training=True)
    n = x[..., 0].size
    exact = x.astype(np.float64).var((0, 1, 2)) * n / (n - 1)
    ours = np.abs(layer.moving_variance.numpy() - exact).max() / exact.min()
    _, one_pass = tf.nn.moments(tf.constant(x), [0, 1, 2])
    stock = np.abs(one_pass.numpy() * n / (n - 1) - exact).max() / exact.min()
    assert ours < 1e-5 and ours < stock / 10, (ours, stock)


def test_batchnorm_matches_torch_batchnorm2d_in_training():
    torch = _torch()
    rng = np.random.default_rng(3)
    x = (rng.standard_normal((6, 16, 12, 4)) * 2 + 1).astype(np.float32)
    w = rng.standard_normal(x.shape).astype(np.float32)
    ours = _bn_pair(4, rng)
    gamma, beta, mean, var = ours.get_weights()
    tbn = torch.nn.BatchNorm2d(4, eps=1e-5, momentum=0.1)
    with torch.no_grad():
        tbn.weight.copy_(torch.from_numpy(gamma))
        tbn.bias.copy_(torch.from_numpy(beta))
        tbn.running_mean.copy_(torch.from_numpy(mean))
        tbn.running_var.copy_(torch.from_numpy(var))
    tbn.train()
    tx = torch.from_numpy(x.transpose(0, 3, 1, 2).copy()).requires_grad_(True)
    ty = tbn(tx)
    (ty * torch.from_numpy(w.transpose(0, 3, 1, 2).copy())).sum().backward()
    y, dx, dg, db = _bn_train_step(ours, x, tf.constant(w))
    np.testing.assert_allclose(y, ty.detach().numpy().transpose(0, 2, 3, 1), atol=2e-6)
    np.testing.assert_allclose(dx, tx.grad.numpy().transpose(0, 2, 3, 1), atol=2e-6)
    np.testing.assert_allclose(dg, tbn.weight.grad.numpy(), atol=2e-5, rtol=1e-5)
    np.testing.assert_allclose(db, tbn.bias.grad.numpy(), atol=2e-5, rtol=1e-5)
    np.testing.assert_allclose(ours.moving_mean.numpy(), tbn.running_mean.numpy(), atol=1e-7)
    np.testing.assert_allclose(ours.moving_variance.numpy(), tbn.running_var.numpy(), rtol=1e-6)


def test_batchnorm_saves_and_reloads(tmp_path):
    inp = keras.Input((8, 6, 3))
    model = keras.Model(inp, BatchNormalization(running_variance="biased", epsilon=1e-5, name="bn")(inp))
    model.save(tmp_path / "m.keras")
    back = keras.saving.load_model(tmp_path / "m.keras")
    assert isinstance(back.get_layer("bn"), BatchNormalization) and back.get_layer("bn").running_variance == "biased"


def _torch_adam_reference(grads, w0, lr, steps, eps=1e-8, l2=0.0, b1=0.9, b2=0.999):
    """PyTorch's Adam update in float64 (torch.optim.Adam, amsgrad=False)."""
    w, m, v = w0.astype(np.float64).copy(), 0.0, 0.0
    for t in range(1, steps + 1):
        g = grads[t - 1] + l2 * w
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        w = w - lr / (1 - b1 ** t) * m / (np.sqrt(v) / np.sqrt(1 - b2 ** t) + eps)
    return w


def _keras_steps(opt, grads, w0):
    var = keras.Variable(w0.astype(np.float32))
    for g in grads:
        opt.apply_gradients([(tf.constant(g.astype(np.float32)), var)])
    return var.numpy().astype(np.float64), opt, var


def test_adam_epsilon_is_placed_as_pytorch_places_it():
    """Gradients near eps: PyTorch's placement and Keras' give different steps; AdamL2 is PyTorch's."""
    rng = np.random.default_rng(4)
    w0 = rng.standard_normal(64) * 1e-2  # small weights: float32 ulps far below the steps
    grads = [rng.standard_normal(64) * 10.0 ** rng.uniform(-10, -6, 64) for _ in range(3)]
    ref = _torch_adam_reference(grads, w0, 1e-3, 3, l2=1e-5)
    ours, opt, var = _keras_steps(AdamL2(learning_rate=1e-3, l2=1e-5, epsilon=1e-8), grads, w0)
    keras_way, _, _ = _keras_steps(AdamL2(learning_rate=1e-3, l2=1e-5, epsilon=1e-8, epsilon_mode="keras"), grads, w0)
    assert np.abs(ours - ref).max() < 3e-9  # float32 rounding of 1e-3-sized steps
    assert np.abs(keras_way - ref).max() > 1e-5  # Keras' effective eps is ~0.03 eps at these steps
    # After one step the first moment is exactly (1 - beta_1) * (g + l2 * w): what the parity check reads.
    one, opt1, var1 = _keras_steps(AdamL2(learning_rate=1e-3, epsilon=1e-8), grads[:1], w0)
    np.testing.assert_allclose(opt1.first_moment(var1).numpy() / 0.1, grads[0], rtol=2e-7)


def test_adam_matches_torch_optim_adam():
    torch = _torch()
    rng = np.random.default_rng(5)
    w0 = (rng.standard_normal(200) * 1e-2).astype(np.float32)
    grads = [(rng.standard_normal(200) * 10.0 ** rng.uniform(-9, 0, 200)).astype(np.float32) for _ in range(4)]
    grads[0][:10] = 0.0
    p = torch.nn.Parameter(torch.from_numpy(w0.copy()))
    topt = torch.optim.Adam([p], lr=2e-2, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-5)
    for g in grads:
        p.grad = torch.from_numpy(g.copy())
        topt.step()
    ours, _, _ = _keras_steps(AdamL2(learning_rate=2e-2, l2=1e-5, epsilon=1e-8), [g.astype(np.float64) for g in grads], w0)
    np.testing.assert_allclose(ours, p.detach().numpy(), atol=3e-8, rtol=0)


def test_mmengine_linear_warmup_per_iteration():
    """LinearLR(start_factor=0.001, begin=0, end=500, by_epoch=False): factor at step k is
    0.001 + 0.999 k / 499 (the start factor before step 0, denominator end - begin - 1)."""
    s = WarmupStepDecay(2e-2, [], 1.0, warmup_steps=500, warmup_factor=0.001)
    k = np.array([0, 1, 2, 5, 498, 499, 500, 10_000])
    want = 2e-2 * (0.001 + 0.999 * np.minimum(k, 499) / 499)
    np.testing.assert_allclose([float(s(i)) for i in k], want, rtol=1e-6)
    with pytest.raises(ValueError, match="warmup_steps=1"):
        WarmupStepDecay(1.0, warmup_steps=1)


def test_mmengine_linear_warmup_equals_the_train_fixture_lr(shared):
    z = np.load(shared("fixtures", "mmpose_rsn_train_tiny.npz"))
    s = WarmupStepDecay(2e-2, [], 1.0, warmup_steps=500, warmup_factor=0.001)
    np.testing.assert_allclose([float(s(i)) for i in range(len(z["lr"]))], z["lr"], rtol=1e-6)


def test_authors_schedule_steps_before_the_optimizer():
    """The authors call scheduler.step() before optimizer.step(): optimizer step i runs at lambda(i + 1)."""
    s = WarmupLinearDecay(1.0, total_steps=110, warmup_steps=10, warmup_factor=0.1)
    np.testing.assert_allclose([float(s(i)) for i in (0, 8, 9, 59, 109)], [0.19, 0.91, 1.0, 0.5, 0.0], atol=1e-6)
    torch = pytest.importorskip("torch")
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([p], lr=1.0)
    lam = lambda it: 0.1 + 0.9 * it / 10 if it < 10 else 1 - (it - 10) / 100  # noqa: E731  (solver.py)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lam)
    used = []
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch warns about this order; it is the authors'
        for _ in range(110):
            sched.step()
            used.append(opt.param_groups[0]["lr"])
            opt.step()
    np.testing.assert_allclose([float(s(i)) for i in range(110)], used, atol=1e-6)
