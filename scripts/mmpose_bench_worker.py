"""mmpose's side of the side-by-side benchmarks (run with an mmpose install, not rsn_tf's environment).

Started by ``scripts/bench_input_pipeline.py`` and ``scripts/bench_training.py``; never imports rsn_tf.

    MMPOSE_PY mmpose_bench_worker.py pipeline --ann A.json --images DIR --cores N --workers W --batches B
        mmpose's own RSN-18 train pipeline (the config's ``train_pipeline``: LoadImage, GetBBoxCenterScale,
        RandomFlip, RandomHalfBody, RandomBBoxTransform, TopdownAffine, GenerateTarget(4 x MegviiHeatmap),
        PackPoseInputs) in a torch DataLoader (``num_workers`` W, ``pseudo_collate``, batch 32) plus the
        model's ``PoseDataPreprocessor`` (normalisation), on N cores; prints one JSON line: crops/s.
    MMPOSE_PY mmpose_bench_worker.py train --ann A.json --images DIR --threads T --batch 32
        builds the RSN-18 ``TopdownPoseEstimator`` and its ``OptimWrapper`` from the config, one batch from
        the val pipeline + targets, prints ``ready``; then each stdin line ``run N`` runs N
        ``model.train_step`` calls and prints their seconds as JSON; ``quit`` ends.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_common import pin_cores, serve_timed_steps  # noqa: E402


def _imports(tools: str, opencv_path: str | None):
    if opencv_path:
        sys.path.insert(0, opencv_path)
    sys.path.insert(0, tools)
    import mm_import  # noqa: F401  (stubs mmcv.ops before mmpose imports)


def _config():
    import mmpose
    from mmengine.config import Config

    path = os.path.join(os.path.dirname(mmpose.__file__), ".mim", "configs", "body_2d_keypoint", "topdown_heatmap",
                        "coco", "td-hm_rsn18_8xb32-210e_coco-256x192.py")
    return Config.fromfile(path)


def _dataset(cfg, ann: str, images: str, pipeline):
    import mmpose
    from mmpose.datasets import CocoDataset

    meta = os.path.join(os.path.dirname(mmpose.__file__), ".mim", "configs", "_base_", "datasets", "coco.py")
    return CocoDataset(ann_file=os.path.abspath(ann), data_root="", data_prefix=dict(img=os.path.abspath(images) + "/"),
                       data_mode="topdown", test_mode=False, pipeline=pipeline, metainfo=dict(from_file=meta))


def run_pipeline(args) -> int:
    cpus = pin_cores(args.cores)
    _imports(args.tools, args.opencv_path)
    import cv2
    import torch
    from mmengine.dataset import pseudo_collate
    from mmpose.registry import MODELS
    from mmpose.utils import register_all_modules

    register_all_modules()
    torch.set_num_threads(args.cores)
    cv2.setNumThreads(0)  # mmpose's default env_cfg: mp_cfg.opencv_num_threads=0
    cfg = _config()
    ds = _dataset(cfg, args.ann, args.images, cfg.train_pipeline)
    pre = MODELS.build(cfg.model.data_preprocessor)
    loader = torch.utils.data.DataLoader(ds, batch_size=args.batch, shuffle=True, num_workers=args.workers,
                                         collate_fn=pseudo_collate, drop_last=True,
                                         persistent_workers=args.workers > 0,
                                         generator=torch.Generator().manual_seed(0))

    def batches():
        while True:
            yield from loader

    it = batches()
    for _ in range(args.warmup):
        pre(next(it), training=True)
    t0 = time.perf_counter()
    for _ in range(args.batches):
        out = pre(next(it), training=True)
    wall = time.perf_counter() - t0
    crops = args.batches * args.batch
    print(json.dumps({"framework": "mmpose", "cores": len(cpus), "workers": args.workers, "crops": crops,
                      "wall_s": wall, "crops_per_s": crops / wall, "input_shape": list(out["inputs"].shape),
                      "opencv": cv2.__version__, "torch": torch.__version__}), flush=True)
    return 0


def run_train(args) -> int:
    cpus = pin_cores(args.threads)
    _imports(args.tools, args.opencv_path)
    import torch
    from mmengine.dataset import pseudo_collate
    from mmengine.optim import build_optim_wrapper
    from mmpose.registry import MODELS
    from mmpose.utils import register_all_modules

    register_all_modules()
    torch.set_num_threads(args.threads)
    cfg = _config()
    pipeline = [dict(type="LoadImage"), dict(type="GetBBoxCenterScale"),
                dict(type="TopdownAffine", input_size=cfg.codec[0]["input_size"]),
                dict(type="GenerateTarget", multilevel=True, encoder=cfg.codec), dict(type="PackPoseInputs")]
    ds = _dataset(cfg, args.ann, args.images, pipeline)
    data = pseudo_collate([ds[i % len(ds)] for i in range(args.batch)])
    model = MODELS.build(cfg.model)
    model.train()
    optim = build_optim_wrapper(model, cfg.optim_wrapper)
    for _ in range(args.warmup):
        model.train_step(data, optim)
    print(json.dumps({"ready": True, "framework": "mmpose", "threads": torch.get_num_threads(), "cores": cpus,
                      "batch": args.batch, "torch": torch.__version__}), flush=True)
    serve_timed_steps(lambda: model.train_step(data, optim))
    return 0


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("mode", choices=["pipeline", "train"])
    p.add_argument("--ann", required=True)
    p.add_argument("--images", required=True)
    p.add_argument("--tools", required=True, help="folder with mm_import.py")
    p.add_argument("--opencv-path", default=None, help="put this OpenCV first on sys.path")
    p.add_argument("--cores", type=int, default=1)
    p.add_argument("--workers", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--batches", type=int, default=20)
    p.add_argument("--warmup", type=int, default=2)
    args = p.parse_args(argv)
    return run_pipeline(args) if args.mode == "pipeline" else run_train(args)


if __name__ == "__main__":
    sys.exit(main())
