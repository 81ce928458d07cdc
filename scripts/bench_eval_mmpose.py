"""mmpose's side of scripts/bench_eval.py: its decode + keypoint mapping + CocoMetric on the same set.

Run by bench_eval.py with mmpose's Python (``bash ../shared/tools/mmpose_env.sh VENV``); imports nothing
from rsn_tf. Usage: VENV/bin/python scripts/bench_eval_mmpose.py WORKDIR  (writes WORKDIR/mmpose.json)
"""
from __future__ import annotations

import json
import os
import sys
import time

import numpy as np


def main(work: str) -> int:
    here = os.path.dirname(os.path.abspath(__file__))
    sys.path.insert(0, os.path.join(here, "..", "..", "shared", "tools"))
    import mm_import  # noqa: F401
    import mmpose
    from mmpose.codecs import MegviiHeatmap
    from mmpose.datasets.datasets.utils import parse_pose_metainfo
    from mmpose.evaluation.metrics import CocoMetric
    from mmpose.structures.bbox import bbox_xywh2xyxy, bbox_xyxy2cs

    spec = json.load(open(os.path.join(work, "set.json")))
    bank = np.load(os.path.join(work, "bank_nkhw.npy"))  # [B, K, h, w]: the flip-averaged heatmaps
    dets = json.load(open(spec["dets"]))
    order = spec["bank_index"]  # per detection, in rsn_tf's processing order (= file order here)
    codec = MegviiHeatmap(input_size=(192, 256), heatmap_size=(48, 64), kernel_size=5)

    t0 = time.perf_counter()
    kpts, scores = [], []
    for b in order:  # MSPNHead.predict decodes one instance at a time (BaseHead.decode -> codec.decode)
        k, s = codec.decode(bank[b])
        kpts.append(k[0])
        scores.append(s[0])
    t_decode = time.perf_counter() - t0

    t0 = time.perf_counter()
    samples = []
    for i, (d, k, s) in enumerate(zip(dets, kpts, scores)):
        box = bbox_xywh2xyxy(np.asarray([d["bbox"]], np.float32))
        center, scale = bbox_xyxy2cs(box, padding=1.25)
        w, h = np.hsplit(scale, [1])
        scale = np.where(w > h * 0.75, np.hstack([w, w / 0.75]), np.hstack([h * 0.75, h]))  # TopdownAffine
        # TopdownPoseEstimator.add_pred_to_datasample
        k = (k / np.array([192, 256]) * scale + center - 0.5 * scale).astype(np.float32)
        samples.append({"id": i, "img_id": d["image_id"], "category_id": 1,
                        "pred_instances": {"keypoints": k[None], "keypoint_scores": s[None].astype(np.float32),
                                           "bboxes": box},
                        "gt_instances": {"bbox_scores": np.asarray([d["score"]], np.float32),
                                         "bbox_scales": scale.astype(np.float32)}})
    t_map = time.perf_counter() - t0

    coco_py = os.path.join(os.path.dirname(mmpose.__file__), ".mim", "configs", "_base_", "datasets", "coco.py")
    metric = CocoMetric(ann_file=spec["ann"], nms_mode="none", outfile_prefix=os.path.join(work, "mmpose"))
    metric.dataset_meta = parse_pose_metainfo(dict(from_file=coco_py))
    t0 = time.perf_counter()
    metric.process([], samples)
    t_process = time.perf_counter() - t0
    import contextlib
    import io
    t0 = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):
        stats = metric.compute_metrics(metric.results)
    t_metric = time.perf_counter() - t0
    out = {"decode_s": t_decode, "map_s": t_map, "process_s": t_process, "coco_metric_s": t_metric,
           "boxes": len(order), "AP": float(stats["AP"]), "AR": float(stats["AR"]),
           "stats": {k: float(v) for k, v in stats.items()}, "numpy": np.__version__,
           "mmpose": mmpose.__version__}
    with open(os.path.join(work, "mmpose.json"), "w") as f:
        json.dump(out, f, indent=1)
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
