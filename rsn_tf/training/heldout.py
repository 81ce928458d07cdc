"""Held-out localisation check: mean pixel error of decoded keypoints against the ground truth.

A quick, dependency-free measure of whether a trained model localises people (COCO AP lives in the
evaluation module): ground-truth boxes -> eval crops -> final heatmaps -> codec decode (with the
layout's decode kernel, :func:`rsn_tf.recipes.decode_kernel_for`: 9 for MPII, 5 otherwise) -> image
pixels, compared with the annotated keypoints (labelled joints only, v > 0). A trivial baseline
(every keypoint at the crop centre) is reported beside it for scale.
"""
from __future__ import annotations

import numpy as np


def heldout_keypoint_error(model, data_cfg, split: str = "val", batch_size: int = 32,
                           max_batches: int | None = None) -> dict:
    """Mean/median pixel error of ``model`` on ``split`` of ``data_cfg``.

    Args:
      model: an :class:`~rsn_tf.model.RSNModel` or a ``.keras`` path.
      data_cfg: :class:`~rsn_tf.data.config.DataConfig`.
    Returns:
      dict: ``mean_px``, ``median_px`` (image pixels), ``baseline_center_px`` (crop-centre
      prediction), ``pck_0.1`` (share of joints within 0.1 x the longer box side), ``instances``,
      ``keypoints``, ``decode_kernel``.
    """
    import keras

    from rsn_tf.codec import MegviiHeatmapCodec
    from rsn_tf.data.pipeline import build_dataset, load_instances
    from rsn_tf.geometry import crop_to_image
    from rsn_tf.recipes import decode_kernel_for

    if isinstance(model, str):
        import rsn_tf.model  # noqa: F401  (registers RSNModel)
        model = keras.models.load_model(model)
    cfg = model.rsn_config
    h, w = cfg.input_size
    inst = load_instances(data_cfg, split)
    codec = MegviiHeatmapCodec((h, w), decode_kernel=decode_kernel_for(inst.spec.name))
    ds = build_dataset(data_cfg, cfg, split=split, batch_size=batch_size, shuffle=False, repeat=False, with_meta=True)
    errors, base_errors, sides = [], [], []
    for b, (images, _, meta) in enumerate(ds):
        if max_batches is not None and b >= max_batches:
            break
        heatmaps = model(images, training=False)[-1]
        kpts, _ = codec.decode(np.asarray(heatmaps, np.float32))
        for i, idx in enumerate(meta["index"].numpy()):
            center, scale = meta["center"][i].numpy(), meta["scale"][i].numpy()
            pred = crop_to_image(kpts[i], center, scale, (w, h))
            base = crop_to_image(np.tile([[w / 2, h / 2]], (len(kpts[i]), 1)), center, scale, (w, h))
            vis = inst.visible[idx] > 0
            gt = inst.keypoints[idx]
            errors.append(np.linalg.norm(pred[vis] - gt[vis], axis=-1))
            base_errors.append(np.linalg.norm(base[vis] - gt[vis], axis=-1))
            sides.append(np.full(vis.sum(), max(inst.boxes[idx][2], inst.boxes[idx][3])))
    if not errors:
        raise ValueError(f"{split}: no instances to evaluate")
    err, base, side = np.concatenate(errors), np.concatenate(base_errors), np.concatenate(sides)
    return {"mean_px": float(err.mean()), "median_px": float(np.median(err)),
            "baseline_center_px": float(base.mean()), "pck_0.1": float((err < 0.1 * side).mean()),
            "instances": len(errors), "keypoints": int(err.size), "decode_kernel": codec.decode_kernel}
