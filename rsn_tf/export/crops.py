"""Crops that exports are calibrated and checked on: real COCO person crops and synthetic crops.

Every function returns uint8 RGB crops [M,H,W,3] (0..255) as a deployed model receives them; use
:func:`rsn_tf.export.graph.preprocess_numpy` for the normalised float input.
"""
from __future__ import annotations

import os

import cv2
import numpy as np

from rsn_tf.geometry import box_to_center_scale, warp_to_crop
from rsn_tf.io_utils import read_json


def coco_crops(ann_file: str, input_size, image_dir: str | None = None, limit: int | None = None,
               padding: float = 1.25, min_keypoints: int = 1) -> np.ndarray:
    """Person crops from a COCO keypoints json's ground-truth boxes (``num_keypoints >= min_keypoints``).

    input_size: (H, W) of the crop. image_dir: where ``file_name`` lives (default: the json's folder).
    Boxes get the mmpose padding (1.25) and the aspect fix of :func:`rsn_tf.geometry.box_to_center_scale`.
    """
    data = read_json(ann_file, "COCO annotation file")
    for key in ("images", "annotations"):
        if key not in data:
            raise ValueError(f"{ann_file}: no {key!r} list (expected COCO keypoints format)")
    image_dir = image_dir or os.path.dirname(os.path.abspath(ann_file))
    files = {img["id"]: img["file_name"] for img in data["images"]}
    h, w = input_size
    crops, cache = [], {}
    for ann in data["annotations"]:
        if ann.get("num_keypoints", 0) < min_keypoints or ann.get("iscrowd", 0):
            continue
        if ann["image_id"] not in files:
            raise ValueError(f"{ann_file}: annotation {ann.get('id')} refers to unknown image_id {ann['image_id']}")
        path = os.path.join(image_dir, files[ann["image_id"]])
        if path not in cache:
            image = cv2.imread(path, cv2.IMREAD_COLOR)
            if image is None:
                raise FileNotFoundError(f"image not found or unreadable: {path} (from {ann_file})")
            cache[path] = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
        center, scale = box_to_center_scale(ann["bbox"], w / h, padding)
        crops.append(warp_to_crop(cache[path], center, scale, 0.0, (w, h)))
        if limit and len(crops) >= limit:
            break
    if not crops:
        raise ValueError(f"{ann_file}: no person annotation with >= {min_keypoints} keypoints")
    return np.stack(crops).astype(np.uint8)
