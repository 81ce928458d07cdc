"""Subprocess: one SGD step on a global batch of 4 with 1 device vs 2 replicas (2 logical CPUs), through
``fit`` (RSNTrainer) and through the multi-worker loop's ``make_distributed_train_step``: the same
``replica_train_step`` either way.

The batch is [a, b, a, b] so each replica sees [a, b]: BatchNorm statistics are then identical to
the single-device ones (with Keras' biased running variance, below) and any gradient difference is
the loss scaling. Prints a JSON line.
Usage: python dist_mirrored.py
"""
import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
import tensorflow as tf  # noqa: E402

cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import keras  # noqa: E402
import numpy as np  # noqa: E402

from helpers.tiny import tiny_experiment  # noqa: E402
from rsn_tf.losses import LossConfig, RSNLoss  # noqa: E402
from rsn_tf.model import build_rsn  # noqa: E402
from rsn_tf.training.config import resolve_experiment  # noqa: E402
from rsn_tf.training.fake_data import fake_arrays  # noqa: E402
from rsn_tf.training.distribute import make_strategy  # noqa: E402
from rsn_tf.training.step import make_distributed_train_step  # noqa: E402
from rsn_tf.training.trainer import RSNTrainer  # noqa: E402

# Keras' biased running variance: with PyTorch's unbiased one (the default) each replica corrects by
# its own n/(n-1) (n = its local N*H*W, half the single device's), so the moving variances would differ
# by design (~2e-3 on the tiny model's 2x2 maps), as in PyTorch DDP without SyncBatchNorm.
cfg = resolve_experiment(tiny_experiment()).model_config().replace(bn_running_variance="biased")
images, targets = fake_arrays(cfg, 2, seed=3)
images4 = np.concatenate([images, images])
targets4 = {k: np.concatenate([v, v]) for k, v in targets.items()}
keras.utils.set_random_seed(0)
reference = build_rsn(cfg).get_weights()
loss_cfg = LossConfig()


def one_step(strategy, use_fit):
    with strategy.scope():
        rsn = build_rsn(cfg)
        rsn.set_weights(reference)
        before = [v.numpy() for v in rsn.trainable_variables]
        opt = keras.optimizers.SGD(learning_rate=1.0)
        if use_fit:
            trainer = RSNTrainer(rsn, loss_cfg)
            trainer.build()
            trainer.compile(optimizer=opt, jit_compile=False)
    ds = tf.data.Dataset.from_tensors((images4, targets4))
    if use_fit:
        loss = trainer.fit(ds, epochs=1, verbose=0).history["loss"][0]
    else:
        opt.build(rsn.trainable_variables)
        step = make_distributed_train_step(strategy, rsn, opt, RSNLoss(loss_cfg))
        loss = float(step(iter(strategy.experimental_distribute_dataset(ds))))
    grads = np.concatenate([(b - v.numpy()).ravel() for b, v in zip(before, rsn.trainable_variables)])
    moving = np.concatenate([v.numpy().ravel() for v in rsn.non_trainable_variables])
    return grads, moving, loss


mirrored = make_strategy("mirrored")
g1, m1, l1 = one_step(tf.distribute.get_strategy(), True)
g2, m2, l2 = one_step(mirrored, True)
g3, m3, l3 = one_step(mirrored, False)
rel = lambda a, b: float(np.linalg.norm(a - b) / np.linalg.norm(a))  # noqa: E731
print(json.dumps({"replicas": mirrored.num_replicas_in_sync, "grad_norm": float(np.linalg.norm(g1)),
                  "fit_rel": rel(g1, g2), "loop_rel": rel(g1, g3), "fit_ratio": float(np.linalg.norm(g2) / np.linalg.norm(g1)),
                  "moving_rel": rel(m1, m2), "loss": [l1, l2, l3]}))
