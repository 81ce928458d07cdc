"""Throughput of the training input pipeline, in augmented crops per second.

Measures ``build_dataset(split="train")`` end to end: JPEG decode, the authors' augmentation
(half body, scale, rotation, flip), the affine crop, normalisation and the multi-level Megvii
targets (4 levels for a single-stage model), batched and prefetched, as a training loop would pull it.
By default on a synthetic dataset of COCO-sized (640x480) JPEGs written to a temp folder.

    PYTHONPATH=. python scripts/bench_input_pipeline.py [--data DIR] [--size 640x480] [--batches 30]
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default=None, help="a synthetic-layout dataset folder (default: write one to a temp dir)")
    p.add_argument("--size", default="640x480", help="synthetic image size WxH (default 640x480, COCO-like)")
    p.add_argument("--images", type=int, default=120)
    p.add_argument("--preset", default="rsn18")
    p.add_argument("--input", default="256x192")
    p.add_argument("--recipe", default="authors", choices=["authors", "mmpose", "none"])
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--batches", type=int, default=30, help="batches timed after 3 warm-up batches")
    p.add_argument("--parallel", type=int, default=-1, help="num_parallel_calls (-1 = AUTOTUNE)")
    p.add_argument("--threads", type=int, default=0, help="tf.data private thread pool size (0 = TF default)")
    args = p.parse_args(argv)

    import tensorflow as tf

    from rsn_tf.data.config import AugmentConfig, synthetic_data_config
    from rsn_tf.data.pipeline import build_dataset, num_instances
    from rsn_tf.data.synth import make_synthetic_dataset
    from rsn_tf.model.config import preset_config

    tmp = None
    root = args.data
    if root is None:
        tmp = tempfile.TemporaryDirectory()
        root = tmp.name
        w, h = (int(v) for v in args.size.split("x"))
        make_synthetic_dataset(root, args.images, seed=0, size=(w, h))
    cfg = synthetic_data_config(root, augment=AugmentConfig(recipe=args.recipe), num_parallel_calls=args.parallel)
    model_cfg = preset_config(args.preset, args.input)
    ds = build_dataset(cfg, model_cfg, "train", batch_size=args.batch, seed=0)
    if args.threads:
        opts = tf.data.Options()
        opts.threading.private_threadpool_size = args.threads
        ds = ds.with_options(opts)
    it = iter(ds)
    for _ in range(3):
        next(it)
    load0 = os.getloadavg()[0]
    t0, c0 = time.perf_counter(), time.process_time()
    for _ in range(args.batches):
        images, targets = next(it)
    wall = time.perf_counter() - t0
    cpu = time.process_time() - c0
    crops = args.batches * args.batch
    result = {
        "crops_per_s": round(crops / wall, 1), "crops": crops, "wall_s": round(wall, 2),
        "process_cpu_s": round(cpu, 2), "cpu_cores_used": round(cpu / wall, 2), "cpus_visible": os.cpu_count(),
        "loadavg_1min_before": round(load0, 2), "loadavg_1min_after": round(os.getloadavg()[0], 2),
        "instances": num_instances(cfg, "train"), "image_size": args.size if args.data is None else "given",
        "crop": args.input, "levels": int(targets["heatmaps"].shape[1]), "recipe": args.recipe,
        "batch": args.batch, "preset": args.preset,
    }
    print(json.dumps(result))
    if tmp is not None:
        tmp.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
