"""The main job's training step: synthetic data -> train ``configs/synthetic_rsn18.yaml`` -> saved model.

:func:`train_synthetic` is what the demo calls; it needs no data or weights from outside.
"""
from __future__ import annotations

import os


def train_synthetic(out_dir: str, num_images: int = 400, seed: int = 0, overrides: list[str] | None = None,
                    config: str = "synthetic_rsn18", heldout: bool = True) -> dict:
    """Write the synthetic set to ``out_dir/synth`` (unless there), train into ``out_dir/train``.

    Returns ``{"model": path of the final .keras, "workdir": ..., "data": ..., "history": [rows],
    "heldout": mean pixel error dict or None}``. Rerunning resumes/reuses what is there.
    """
    from rsn_tf.data.synth import make_synthetic_dataset
    from rsn_tf.training.callbacks import read_history
    from rsn_tf.training.config import load_experiment
    from rsn_tf.training.trainer import train_experiment

    data_dir = os.path.join(out_dir, "synth")
    if not os.path.exists(os.path.join(data_dir, "person_keypoints_val.json")):
        make_synthetic_dataset(data_dir, num_images, seed)
    overrides = [f"data.root={os.path.abspath(data_dir)}", *(overrides or [])]
    workdir = os.path.join(out_dir, "train")
    model_path = train_experiment(config, workdir, overrides)
    result = {"model": model_path, "workdir": workdir, "data": data_dir,
              "history": read_history(os.path.join(workdir, "history.csv")), "heldout": None}
    if heldout:
        from rsn_tf.training.heldout import heldout_keypoint_error

        result["heldout"] = heldout_keypoint_error(model_path, load_experiment(config, overrides).data)
    return result
