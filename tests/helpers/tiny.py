"""A tiny experiment for training tests: 64x64 input, one block per level, narrow layers, 17 keypoints."""
TINY_MODEL = {"preset": "rsn18", "input_size": [64, 64],
              "overrides": {"num_blocks": [1, 1, 1, 1], "planes": [16, 32, 48, 64], "stem_channels": 16,
                            "res_top_channels": 16, "unit_channels": 32}}


def tiny_experiment(**train):
    base = {"batch_size": 4, "epochs": 2, "steps_per_epoch": 2, "validation_steps": 1,
            "optimizer": {"lr": 1e-3}, "schedule": {"name": "constant"}, "verbose": 2}
    base.update(train)
    return {"name": "tiny", "model": TINY_MODEL, "train": base}
