"""Is a high val_loss BatchNorm's moving statistics? Score a checkpoint four ways and print a markdown table.

    PYTHONPATH=. python scripts/bn_statistics_check.py W/checkpoints/last.keras \
        --config configs/synthetic_rsn18.yaml --set data.root=S [--val-batches 4 --train-batches 8]

Rows: val and train batches in inference mode (moving statistics: what ``val_loss`` reports) and with
batch statistics; then inference mode after putting each BatchNorm layer's statistics of the current
weights (its input's mean and variance over the train batches, batch-statistics forward) into the
layer. If the last row is close to the batch-statistics rows, the moving statistics were the cause.
Also prints how far the moving variances are from those statistics per layer. See docs/training.md,
"val_loss in the first epochs". Loss: rsn_tf.losses.rsn_loss (heatmap peak 255), mean over batches.
"""
from __future__ import annotations

import argparse
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("model", help="a .keras checkpoint (e.g. WORKDIR/checkpoints/last.keras)")
    p.add_argument("--config", required=True, help="the experiment config it was trained with")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--val-batches", type=int, default=4)
    p.add_argument("--train-batches", type=int, default=8)
    args = p.parse_args(argv)

    import keras
    import numpy as np
    import tensorflow as tf

    import rsn_tf.model  # noqa: F401  (registers RSNModel)
    from rsn_tf.data.pipeline import build_dataset
    from rsn_tf.losses import rsn_loss
    from rsn_tf.training.config import load_experiment

    exp = load_experiment(args.config, args.overrides)
    model = keras.models.load_model(args.model)
    cfg, bs = model.rsn_config, exp.train.batch_size
    val = list(build_dataset(exp.data, cfg, split="val", batch_size=bs, seed=0).take(args.val_batches))
    train = list(build_dataset(exp.data, cfg, split="train", batch_size=bs, seed=0).take(args.train_batches))
    moving = [v.numpy() for v in model.non_trainable_variables]

    def score(batches, training):
        out = float(np.mean([float(rsn_loss(model(x, training=training), y)) for x, y in batches]))
        for v, value in zip(model.non_trainable_variables, moving):  # training=True updates them
            v.assign(value)
        return out

    rows = [(f"{len(val)} val batches, inference mode (moving statistics): what val_loss reports", score(val, False)),
            (f"the same {len(val)} val batches, batch statistics", score(val, True)),
            (f"{len(train)} train batches, inference mode", score(train, False)),
            (f"the same {len(train)} train batches, batch statistics", score(train, True))]

    bns = [layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)]
    probe = keras.Model(model.input, [layer.input for layer in bns])
    means = [0.0] * len(bns)
    variances = [0.0] * len(bns)
    for x, _ in train:
        for i, a in enumerate(probe(x, training=True)):
            axes = list(range(a.shape.rank - 1))
            means[i] = means[i] + tf.reduce_mean(a, axes).numpy() / len(train)
            variances[i] = variances[i] + tf.math.reduce_variance(a, axes).numpy() / len(train)
    for v, value in zip(model.non_trainable_variables, moving):
        v.assign(value)
    ratios = [float(np.median(var / layer.moving_variance.numpy())) for layer, var in zip(bns, variances)]
    for layer, m, var in zip(bns, means, variances):
        layer.moving_mean.assign(m)
        layer.moving_variance.assign(var)
    rows.append((f"the {len(val)} val batches, inference mode with each BN layer's statistics of the current "
                 f"weights (from the {len(train)} train batches)", score(val, False)))

    print(f"model: {args.model}\n\n| scored | loss |\n|---|---|")
    for name, value in rows:
        print(f"| {name} | {value:,.1f} |")
    q = np.quantile(ratios, [0.1, 0.5, 0.9])
    worst = sorted(zip(ratios, (layer.name for layer in bns)), reverse=True)[:4]
    print(f"\n{len(bns)} BatchNorm layers; (variance of the current weights) / (moving variance), median per layer: "
          f"10% {q[0]:.2f}, median {q[1]:.2f}, 90% {q[2]:.2f}; > 1.2 in {sum(r > 1.2 for r in ratios)}; largest: "
          + ", ".join(f"{n} {r:.2f}" for r, n in worst))
    return 0


if __name__ == "__main__":
    sys.exit(main())
