"""A tiny experiment for training tests: 64x64 input, one basic block per level, narrow layers, 17 keypoints.

The basic (ResNet) block keeps the graph small: tracing the train step dominates these tests' time, and
they test the training machinery, not the RSB (tests/test_model.py does).
"""
TINY_MODEL = {"preset": "rsn18", "input_size": [64, 64],
              "overrides": {"block": "basic", "num_blocks": [1, 1, 1, 1], "planes": [16, 32, 48, 64], "stem_channels": 16,
                            "res_top_channels": 16, "unit_channels": 32}}


def tiny_experiment(**train):
    base = {"batch_size": 4, "epochs": 2, "steps_per_epoch": 2, "validation_steps": 1,
            "optimizer": {"lr": 1e-3}, "schedule": {"name": "constant"}, "verbose": 2}
    base.update(train)
    return {"name": "tiny", "model": TINY_MODEL, "train": base}


def scalar_tags(log_dir: str) -> set[str]:
    """``{"train/epoch_loss", "validation/epoch_loss", ...}``: every scalar tag in a run's TensorBoard
    event files (``log_dir/<split>/events.out.tfevents.*``), prefixed with its split."""
    import glob
    import os

    import tensorflow as tf

    tags = set()
    for f in glob.glob(os.path.join(log_dir, "*", "events.out.tfevents.*")):
        for e in tf.compat.v1.train.summary_iterator(f):
            tags.update(f"{os.path.basename(os.path.dirname(f))}/{v.tag}" for v in e.summary.value)
    return tags
