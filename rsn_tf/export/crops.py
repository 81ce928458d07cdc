"""Crops that exports are calibrated and checked on, drawn from the real input pipeline.

Every function returns normalised float32 crops [M,H,W,3], exactly what the model sees in training
and evaluation: :func:`rsn_tf.data.pipeline.build_dataset` with eval crops (test padding, no
augmentation, file order). Sources: any COCO-format keypoint file (a user's dataset, the shared COCO
sample) or the built-in synthetic set (:func:`rsn_tf.data.synth.make_synthetic_dataset`).
"""
from __future__ import annotations

import os
import tempfile

import numpy as np

from rsn_tf.data.config import DataConfig, synthetic_data_config


def pipeline_crops(data_cfg: DataConfig, model_cfg, split: str = "val", limit: int | None = None) -> np.ndarray:
    """Up to ``limit`` eval crops of ``split`` from the input pipeline, [M,H,W,3] float32 normalised."""
    from rsn_tf.data.pipeline import build_dataset

    ds = build_dataset(data_cfg, model_cfg, split=split, batch_size=16, seed=0, shuffle=False, repeat=False,
                       drop_remainder=False, augment=False)
    crops, n = [], 0
    for images, _ in ds:
        crops.append(images.numpy())
        n += len(crops[-1])
        if limit and n >= limit:
            break
    out = np.concatenate(crops)
    return out[:limit] if limit else out


def coco_crops(ann_file: str, model_cfg, image_dir: str | None = None, limit: int | None = None) -> np.ndarray:
    """Eval crops of every annotated person in a COCO keypoints json (images beside it by default)."""
    if not os.path.exists(ann_file):
        raise FileNotFoundError(f"COCO annotation file not found: {ann_file}")
    image_dir = image_dir or os.path.dirname(os.path.abspath(ann_file))
    cfg = DataConfig(format="coco", val_ann=os.path.abspath(ann_file), val_images=os.path.abspath(image_dir))
    return pipeline_crops(cfg, model_cfg, "val", limit)


def synthetic_crops(model_cfg, num_images: int = 16, seed: int = 0, limit: int | None = None,
                    root: str | None = None) -> np.ndarray:
    """Eval crops of the synthetic set: ``root`` (written by ``rsn synth``; its val split) or, without
    ``root``, ``num_images`` fresh images of seed ``seed`` rendered into a temporary folder."""
    if root:
        return pipeline_crops(synthetic_data_config(root), model_cfg, "val", limit)
    from rsn_tf.data.synth import make_synthetic_dataset

    with tempfile.TemporaryDirectory(prefix="rsn_synth_") as tmp:
        make_synthetic_dataset(tmp, num_images=num_images, seed=seed, val_fraction=0.0)
        return pipeline_crops(synthetic_data_config(tmp), model_cfg, "train", limit)
