"""Contact sheets: a grid of dataset images with boxes and skeletons drawn, to see what the data looks like."""
from __future__ import annotations

import os

import cv2
import numpy as np

from rsn_tf.io_utils import atomic_path

def draw_instances(image, keypoints, visible, boxes, spec, thickness: int = 2) -> np.ndarray:
    """Draw boxes [N, 4] (x, y, w, h), limbs and joints ([N, K, 2], visible [N, K]) on a copy of ``image``,
    in the ground-truth style and palette of :mod:`rsn_tf.visualize` (the evaluation overlays' colours)."""
    from rsn_tf.visualize import draw_ground_truth

    return draw_ground_truth(image, keypoints, visible, spec, boxes=boxes, thickness=thickness)


def contact_sheet(ann_path: str, image_dir: str, out_png: str, num: int = 8, cols: int = 4,
                  cell: tuple[int, int] = (384, 288), with_original: bool = False) -> str:
    """PNG grid of the first ``num`` images of a COCO keypoint file with every annotation drawn, and a
    legend of the colours underneath.

    with_original: put each raw image next to its annotated copy (pairs per row). Returns ``out_png``.
    """
    from pycocotools.coco import COCO

    from rsn_tf.data.coco import _quiet, check_coco, coco_spec, load_coco_json
    from rsn_tf.data.images import read_image
    from rsn_tf.visualize import legend

    data = load_coco_json(ann_path)
    spec = coco_spec(data, ann_path)
    check_coco(data, ann_path, spec.num_keypoints)
    coco = COCO()
    coco.dataset = data
    with _quiet():
        coco.createIndex()
    tiles = []
    for image_id in sorted(coco.imgs)[:num]:
        info = coco.imgs[image_id]
        image = read_image(os.path.join(image_dir, info["file_name"]))
        anns = coco.loadAnns(coco.getAnnIds(imgIds=[image_id], iscrowd=None))
        kp = np.array([a["keypoints"] for a in anns], np.float32).reshape(len(anns), spec.num_keypoints, 3)
        boxes = np.array([a["bbox"] for a in anns], np.float32).reshape(len(anns), 4)
        drawn = draw_instances(image, kp[..., :2], kp[..., 2], boxes, spec)
        for t in ([image, drawn] if with_original else [drawn]):
            tiles.append(_fit(t, cell))
    if not tiles:
        raise ValueError(f"{ann_path}: no images to draw")
    cols = max(1, min(cols, len(tiles)))
    rows = -(-len(tiles) // cols)
    sheet = np.full((rows * cell[1], cols * cell[0], 3), 255, np.uint8)
    for i, t in enumerate(tiles):
        r, c = divmod(i, cols)
        sheet[r * cell[1]:(r + 1) * cell[1], c * cell[0]:(c + 1) * cell[0]] = t
    sheet = np.concatenate([sheet, legend(sheet.shape[1], ground_truth=True, prediction=False)], axis=0)
    with atomic_path(out_png) as tmp:
        if not cv2.imwrite(tmp + ".png", sheet):
            raise ValueError(f"{out_png}: could not write PNG")
        os.replace(tmp + ".png", tmp)
    return out_png


def _fit(image, cell):
    """Letterbox ``image`` into a (W, H) cell."""
    w, h = cell
    s = min(w / image.shape[1], h / image.shape[0])
    resized = cv2.resize(image, (max(1, int(image.shape[1] * s)), max(1, int(image.shape[0] * s))),
                         interpolation=cv2.INTER_AREA)
    out = np.full((h, w, 3), 255, np.uint8)
    y0, x0 = (h - resized.shape[0]) // 2, (w - resized.shape[1]) // 2
    out[y0:y0 + resized.shape[0], x0:x0 + resized.shape[1]] = resized
    return out


def training_crops_sheet(data_cfg, model_cfg, out_png: str, num: int = 16, cols: int = 8, seed: int = 0,
                         split: str = "train") -> str:
    """PNG grid of ``num`` crops as the network sees them (augmented for ``split="train"``), keypoints drawn.

    Runs :class:`rsn_tf.data.pipeline.SampleMaker` directly (no TensorFlow): the same crops and
    targets ``build_dataset`` would yield for ``seed``; the drawn keypoints are the ones the targets encode.
    """
    from rsn_tf.data.pipeline import SampleMaker, load_instances

    inst = load_instances(data_cfg, split)
    maker = SampleMaker(inst, data_cfg, model_cfg, train=split == "train", seed=seed)
    order = np.random.default_rng([seed, 0, 0]).permutation(len(inst)) if split == "train" else np.arange(len(inst))
    h, w = model_cfg.input_size
    tiles = []
    for n, index in enumerate(order[:num]):
        crop, heatmaps, weights, visible, *_ = maker(index, n)
        kp, _ = maker.codec.decode(heatmaps[-1])  # the keypoints the finest target encodes
        tiles.append(draw_instances(crop, kp[None], visible[None], np.array([[0, 0, w - 1, h - 1]]), inst.spec))
    cols = max(1, min(cols, len(tiles)))
    rows = -(-len(tiles) // cols)
    sheet = np.full((rows * h, cols * w, 3), 255, np.uint8)
    for i, t in enumerate(tiles):
        r, c = divmod(i, cols)
        sheet[r * h:(r + 1) * h, c * w:(c + 1) * w] = t
    with atomic_path(out_png) as tmp:
        if not cv2.imwrite(tmp + ".png", sheet):
            raise ValueError(f"{out_png}: could not write PNG")
        os.replace(tmp + ".png", tmp)
    return out_png
