"""Make a ``pipeline`` fixture with the real mmpose, on a new COCO-format image set derived from a sample.

Run with an mmpose install (not rsn_tf's environment)::

    /work/mmpose_venv/bin/python tests/helpers/make_mmpose_pipeline_fixture.py \
        --source ../shared/data/coco_sample --out /tmp/pipe2 [--input-size 256x192] [--opencv-path DIR]

It writes ``OUT/data/`` (images + ``person_keypoints.json``) and ``OUT/NAME.{npz,json}`` in the layout of
``../shared/fixtures/mmpose_pipeline_coco_sample`` (see that folder's README): mmpose's
``LoadImage -> GetBBoxCenterScale -> TopdownAffine -> GenerateTarget(MegviiHeatmap x4) -> PackPoseInputs``
and ``PoseDataPreprocessor``, every stage per person. The image set differs from the source on purpose:
every image mirrored, and a cropped copy in which people run off the image (raw boxes beyond the
border, so mmpose's box clipping and the encoders' border rules are exercised), boxes enlarged
at random, PNG files. ``--opencv-path`` puts another OpenCV first on ``sys.path`` (the shared fixtures
were made with OpenCV 4.11; OpenCV 5 rounds ``cv2.warpAffine`` differently).
"""
from __future__ import annotations

import argparse
import copy
import json
import os
import sys


def derive_dataset(source: str, out_dir: str, seed: int, box_scale=(0.9, 1.3)) -> str:
    """New images + annotation file in ``out_dir``; returns the annotation file name."""
    import cv2
    import numpy as np

    rng = np.random.default_rng(seed)
    with open(os.path.join(source, "test_coco.json")) as f:
        coco = json.load(f)
    images, anns = [], []
    next_img, next_ann = 1, 1
    by_image = {}
    for a in coco["annotations"]:
        by_image.setdefault(a["image_id"], []).append(a)
    for img in coco["images"]:
        pixels = cv2.imread(os.path.join(source, img["file_name"]), cv2.IMREAD_COLOR)
        h, w = pixels.shape[:2]
        variants = [("flip", pixels[:, ::-1]), ("crop", pixels[h // 8: h // 8 + int(0.7 * h), w // 5: w // 5 + int(0.6 * w)])]
        for tag, pix in variants:
            ph, pw = pix.shape[:2]
            name = f"{os.path.splitext(img['file_name'])[0]}_{tag}.png"
            cv2.imwrite(os.path.join(out_dir, name), np.ascontiguousarray(pix))
            images.append({"id": next_img, "file_name": name, "width": pw, "height": ph})
            for a in by_image.get(img["id"], []):
                b = copy.deepcopy(a)
                kp = np.asarray(a["keypoints"], np.float64).reshape(-1, 3)
                x, y, bw, bh = a["bbox"]
                if tag == "flip":
                    kp[:, 0] = np.where(kp[:, 2] > 0, w - kp[:, 0], 0.0)
                    x = w - x - bw
                else:
                    dx, dy = w // 5, h // 8
                    kp[:, :2] -= (dx, dy)
                    outside = (kp[:, 0] < 0) | (kp[:, 0] >= pw) | (kp[:, 1] < 0) | (kp[:, 1] >= ph)
                    kp[outside | (kp[:, 2] == 0)] = 0
                    x, y = x - dx, y - dy  # the raw box may now start before / end after the image
                grow = rng.uniform(*box_scale, 2)
                x, y = x - bw * (grow[0] - 1) / 2, y - bh * (grow[1] - 1) / 2
                b.update(id=next_ann, image_id=next_img, keypoints=[float(v) for v in kp.ravel()],
                         num_keypoints=int((kp[:, 2] > 0).sum()), bbox=[x, y, bw * grow[0], bh * grow[1]])
                anns.append(b)
                next_ann += 1
            next_img += 1
    out = {"images": images, "annotations": anns, "categories": coco["categories"]}
    with open(os.path.join(out_dir, "person_keypoints.json"), "w") as f:
        json.dump(out, f)
    return "person_keypoints.json"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--source", required=True, help="a COCO-sample folder (images + test_coco.json)")
    p.add_argument("--out", required=True)
    p.add_argument("--name", default="mmpose_pipeline_derived")
    p.add_argument("--input-size", default="256x192", help="HxW")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--padding", type=float, default=1.25, help="GetBBoxCenterScale padding (mmpose's RSN: 1.25)")
    p.add_argument("--box-scale", default="0.9,1.3", help="boxes resized by U(lo, hi) per side (lo < 1: "
                   "keypoints fall outside the crop, exercising the encoders' border rules)")
    p.add_argument("--opencv-path", default=None)
    p.add_argument("--tools", default=os.path.join(os.path.dirname(__file__), "..", "..", "..", "shared", "tools"),
                   help="folder with mm_import.py")
    args = p.parse_args(argv)
    if args.opencv_path:
        sys.path.insert(0, args.opencv_path)
    sys.path.insert(0, os.path.abspath(args.tools))
    import mm_import  # noqa: F401  (stubs mmcv.ops before mmpose imports)
    import cv2
    import numpy as np
    import torch
    import mmpose
    import mmpose.datasets.transforms.topdown_transforms as tdt
    from mmpose.datasets import CocoDataset
    from mmpose.datasets.transforms import GenerateTarget, GetBBoxCenterScale, LoadImage, PackPoseInputs, TopdownAffine
    from mmpose.models.data_preprocessors import PoseDataPreprocessor

    h, w = (int(v) for v in args.input_size.lower().split("x"))
    data_dir = os.path.join(args.out, "data")
    os.makedirs(data_dir, exist_ok=True)
    ann_file = derive_dataset(os.path.abspath(args.source), data_dir, args.seed,
                              tuple(float(v) for v in args.box_scale.split(",")))
    meta = os.path.join(os.path.dirname(mmpose.__file__), ".mim", "configs", "_base_", "datasets", "coco.py")
    ds = CocoDataset(ann_file=ann_file, data_root=data_dir, data_prefix=dict(img=""), data_mode="topdown",
                     test_mode=False, pipeline=[], metainfo=dict(from_file=meta))
    kernels = [11, 9, 7, 5]
    encoders = [dict(type="MegviiHeatmap", input_size=(w, h), heatmap_size=(w // 4, h // 4), kernel_size=k)
                for k in kernels]
    steps = [LoadImage(), GetBBoxCenterScale(padding=args.padding), TopdownAffine(input_size=(w, h), use_udp=False),
             GenerateTarget(encoder=encoders, multilevel=True), PackPoseInputs()]
    mean, std = [123.675, 116.28, 103.53], [58.395, 57.12, 57.375]
    pre = PoseDataPreprocessor(mean=mean, std=std, bgr_to_rgb=True)
    captured = []
    real = tdt.get_warp_matrix

    def spy(*a, **k):
        m = real(*a, **k)
        captured.append(np.array(m))
        return m

    tdt.get_warp_matrix = spy
    rows = {k: [] for k in ("bbox_xyxy", "bbox_center", "bbox_scale_padded", "bbox_scale", "warp_mat", "crop_hwc_bgr",
                            "input_normalised", "keypoints", "keypoints_visible", "transformed_keypoints", "heatmaps",
                            "keypoint_weights", "img_shape_hw")}
    people = []
    for i in range(len(ds)):
        info = ds.get_data_info(i)
        r = steps[0](copy.deepcopy(info))
        rows["img_shape_hw"].append(np.array(r["img"].shape[:2], np.int64))
        rows["bbox_xyxy"].append(r["bbox"][0].astype(np.float32))
        r = steps[1](r)
        rows["bbox_center"].append(r["bbox_center"][0])
        rows["bbox_scale_padded"].append(r["bbox_scale"][0].copy())
        r = steps[2](r)
        rows["bbox_scale"].append(r["bbox_scale"][0])
        rows["warp_mat"].append(captured[-1])
        rows["crop_hwc_bgr"].append(r["img"].copy())
        rows["keypoints"].append(r["keypoints"][0])
        rows["keypoints_visible"].append(r["keypoints_visible"][0])
        rows["transformed_keypoints"].append(r["transformed_keypoints"][0])
        r = steps[3](r)
        rows["heatmaps"].append(np.asarray(r["heatmaps"]).reshape(len(kernels), 17, h // 4, w // 4))
        rows["keypoint_weights"].append(np.asarray(r["keypoint_weights"]).reshape(len(kernels), 17))
        packed = steps[4](r)
        out = pre({"inputs": [packed["inputs"]], "data_samples": [packed["data_samples"]]}, training=False)
        rows["input_normalised"].append(out["inputs"][0].numpy())
        people.append({"index": i, "ann_id": int(info["id"]), "img_id": int(info["img_id"]),
                       "img_file": os.path.basename(info["img_path"]),
                       "raw_bbox_xywh": [float(v) for v in info["raw_ann_info"]["bbox"]]})
    arrays = {k: np.stack(v) for k, v in rows.items()}
    np.savez_compressed(os.path.join(args.out, f"{args.name}.npz"), **arrays)
    manifest = {
        "kind": "pipeline", "name": args.name,
        "description": "mmpose top-down pipeline + GenerateTarget(multilevel) on a derived image set "
                       "(mirrored + cropped COCO-sample images, enlarged boxes)",
        "mmpose_version": mmpose.__version__,
        "dataset": {"type": "CocoDataset", "data_mode": "topdown", "ann_file": ann_file, "n_people": len(people)},
        "pipeline": [{"type": "LoadImage"}, {"type": "GetBBoxCenterScale", "padding": args.padding},
                     {"type": "TopdownAffine", "input_size": [w, h], "use_udp": False},
                     {"type": "GenerateTarget", "multilevel": True, "encoder": encoders}, {"type": "PackPoseInputs"}],
        "data_preprocessor": {"type": "PoseDataPreprocessor", "mean": mean, "std": std, "bgr_to_rgb": True},
        "people": people, "levels": [{"level": i, "kernel_size": k} for i, k in enumerate(kernels)],
        "environment": {"opencv": cv2.__version__, "numpy": np.__version__, "torch": torch.__version__},
        "arrays": {k: {"shape": list(v.shape), "dtype": str(v.dtype)} for k, v in arrays.items()},
    }
    with open(os.path.join(args.out, f"{args.name}.json"), "w") as f:
        json.dump(manifest, f, indent=1)
    print(f"{len(people)} people -> {os.path.join(args.out, args.name)}.npz; data in {data_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
