"""Make a ``topdown`` parity fixture with the real mmpose, for any images and COCO-results box file.

Run it with mmpose's Python (``bash ../shared/tools/mmpose_env.sh VENV``), never rsn_tf's; it imports
nothing from rsn_tf. Use the OpenCV rsn_tf pins (setup.py): OpenCV 5.0 crops differently.

  VENV/bin/python scripts/mmpose_topdown_case.py --images DIR --boxes BOXES.json --weights STATE.npz \\
      --out OUT/NAME [--det-threshold 0.0] [--no-flip]

DIR holds the images; BOXES.json is a COCO results file (``[{"image_id", "bbox": [x, y, w, h],
"score"}]``) whose image ids map to files through ``--ann`` (a COCO file with ``images``) or, without
it, through ``{"image_id": n, "file_name": ...}`` fields in the box entries. STATE.npz is an mmpose
RSN state dict (the forward fixture's). Writes ``OUT/NAME.npz`` + ``OUT/NAME.json`` in the layout
of ``shared/fixtures/mmpose_topdown_coco_sample`` (kind ``topdown``; see rsn_tf/parity/topdown.py)
and copies the box file beside them, so ``python scripts/mmpose_parity.py OUT/NAME.npz --data DIR``
checks rsn_tf against it.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys

import numpy as np

CONFIG = "configs/body_2d_keypoint/topdown_heatmap/coco/td-hm_rsn18_8xb32-210e_coco-256x192.py"
FRAGILE_REL = 1e-4


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--images", required=True)
    p.add_argument("--boxes", required=True, help="COCO results-format box file")
    p.add_argument("--ann", default=None, help="COCO file whose 'images' map ids to file names")
    p.add_argument("--weights", required=True, help="mmpose RSN state dict (.npz)")
    p.add_argument("--out", required=True, help="OUT/NAME (without extension)")
    p.add_argument("--det-threshold", type=float, default=0.0)
    p.add_argument("--no-flip", action="store_true")
    p.add_argument("--config", default=CONFIG, help="mmpose config, relative to the installed mmpose's .mim")
    args = p.parse_args(argv)

    here = os.path.dirname(os.path.abspath(__file__))
    sys.path.insert(0, os.path.join(here, "..", "..", "shared", "tools"))
    import cv2
    import mm_import  # noqa: F401
    import mmpose
    import torch
    from mmpose.apis import inference_topdown, init_model
    from mmpose.codecs.utils.post_processing import gaussian_blur

    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    cfg_path = os.path.join(os.path.dirname(mmpose.__file__), ".mim", args.config)
    test_cfg = {"output_heatmaps": True, "flip_test": not args.no_flip}
    model = init_model(cfg_path, None, device="cpu", cfg_options={"model": {"test_cfg": test_cfg}})
    z = np.load(args.weights)
    sd = {k: torch.from_numpy(z[k]) for k in z.files if "." in k}
    print(model.load_state_dict(sd, strict=True))
    model.eval()

    dets = json.load(open(args.boxes))
    if args.ann:
        files = {int(im["id"]): im["file_name"] for im in json.load(open(args.ann))["images"]}
    else:
        files = {int(d["image_id"]): d["file_name"] for d in dets}
    order = []
    for d in dets:
        i = int(d["image_id"])
        if i not in order:
            order.append(i)
    images, rows = [], {k: [] for k in ("bbox_xywh", "image_index", "bbox_center", "bbox_scale", "keypoints",
                                          "keypoint_scores", "heatmaps", "box_score")}
    per_box = []
    for idx, image_id in enumerate(order):
        path = os.path.join(args.images, files[image_id])
        img = cv2.imread(path)
        images.append({"index": idx, "file": files[image_id], "id": image_id, "width": img.shape[1],
                       "height": img.shape[0]})
        mine = [d for d in dets if int(d["image_id"]) == image_id and d.get("score", 1.0) >= args.det_threshold]
        if not mine:
            continue
        boxes = np.asarray([d["bbox"] for d in mine], np.float32)
        samples = inference_topdown(model, path, boxes, bbox_format="xywh")
        for d, b, s in zip(mine, boxes, samples):
            rows["bbox_xywh"].append(b)
            rows["image_index"].append(idx)
            rows["bbox_center"].append(np.asarray(s.metainfo["input_center"], np.float32).reshape(2))
            rows["bbox_scale"].append(np.asarray(s.metainfo["input_scale"], np.float32).reshape(2))
            rows["keypoints"].append(s.pred_instances.keypoints[0].astype(np.float32))
            rows["keypoint_scores"].append(s.pred_instances.keypoint_scores[0].astype(np.float32))
            rows["heatmaps"].append(s.pred_fields.heatmaps.detach().cpu().numpy().astype(np.float32))
            rows["box_score"].append(float(d.get("score", 1.0)))
            per_box.append({"i": len(per_box), "source": "det", "image": files[image_id], "image_id": image_id,
                            "bbox_xywh": [float(v) for v in b], "det_score": float(d.get("score", 1.0))})
    arrays = {k: np.stack(v) if k != "box_score" else np.asarray(v, np.float32) for k, v in rows.items()}
    arrays["image_index"] = arrays["image_index"].astype(np.int64)
    arrays["source"] = np.ones(len(per_box), np.int64)
    # Fragile keypoints, decided on the blurred map exactly as MegviiHeatmap.decode sees it.
    hm = arrays["heatmaps"]
    n, k, h, w = hm.shape
    fa, fs = np.zeros((n, k), bool), np.zeros((n, k), bool)
    for i in range(n):
        blurred = gaussian_blur(hm[i].copy(), 5)
        for j in range(k):
            m = blurred[j]
            flat = np.sort(m.ravel())
            top = abs(flat[-1])
            fa[i, j] = flat[-1] - flat[-2] <= FRAGILE_REL * top
            y, x = np.unravel_index(int(m.argmax()), m.shape)
            if 1 < x < w - 1 and 1 < y < h - 1:
                fs[i, j] = (abs(m[y, x + 1] - m[y, x - 1]) <= FRAGILE_REL * top or
                            abs(m[y + 1, x] - m[y - 1, x]) <= FRAGILE_REL * top)
    arrays["fragile_argmax"], arrays["fragile_sign"], arrays["fragile"] = fa, fs, fa | fs
    for b in per_box:
        b["fragile_keypoints"] = np.flatnonzero(arrays["fragile"][b["i"]]).tolist()
    out_dir = os.path.dirname(os.path.abspath(args.out))
    os.makedirs(out_dir, exist_ok=True)
    name = os.path.basename(args.out)
    np.savez_compressed(args.out + ".npz", **arrays)
    box_file = os.path.basename(args.boxes)
    if os.path.abspath(os.path.join(out_dir, box_file)) != os.path.abspath(args.boxes):
        shutil.copy(args.boxes, os.path.join(out_dir, box_file))
    manifest = {
        "kind": "topdown", "name": name,
        "description": f"mmpose.apis.inference_topdown with {os.path.basename(args.weights)} on {args.images}",
        "mmpose_version": mmpose.__version__, "opencv": cv2.__version__, "config": args.config,
        "test_cfg": {"flip_test": not args.no_flip, "flip_mode": "heatmap", "shift_heatmap": False},
        "weights": {"file": os.path.basename(args.weights)},
        "input_size": [256, 192],
        "dataset_meta": {"name": "coco", "flip_indices": list(model.dataset_meta["flip_indices"])},
        "boxes": {"sources": ["det"], "det_file": box_file, "det_score_threshold": args.det_threshold,
                  "per_box": per_box},
        "fragile": {"rule": f"top1-top2 <= {FRAGILE_REL}*|top1| or interior |neighbour difference| <= "
                            f"{FRAGILE_REL}*|top1| on gaussian_blur(heatmap, 5)",
                    "n_fragile": int(arrays["fragile"].sum()), "n_total": int(n * k)},
        "images": images,
    }
    with open(args.out + ".json", "w") as f:
        json.dump(manifest, f, indent=1)
    print(f"wrote {args.out}.npz/.json: {n} boxes on {len(images)} images, {manifest['fragile']['n_fragile']} "
          f"fragile keypoints of {n * k}; opencv {cv2.__version__}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
