"""Training input pipeline, side by side: rsn_tf's tf.data pipeline vs mmpose's own train pipeline.

The same images (a COCO-format set, by default ``../shared/data/coco_sample`` repeated ``--repeat`` times),
the same transforms (mmpose's RSN-18 train pipeline: flip, half body, bbox shift/scale/rotation,
affine crop 256x192, 4 MegviiHeatmap target levels, normalisation; rsn_tf in ``loss.mode: mmpose`` data
mode with ``augment.recipe: mmpose``), batch 32, pinned to 1 and 2 cores (``sched_setaffinity``).
mmpose runs in a torch ``DataLoader`` with ``num_workers`` 0 and one process per core. Every cell is a
fresh process timed after warm-up batches; cells are rotated over ``--rounds`` rounds and the median
is reported. A single-core profile of rsn_tf's per-sample work (time inside OpenCV, which releases the
GIL, vs Python/numpy, which holds it) gives the ceiling that stops scaling with cores.

    .venv/bin/python scripts/bench_input_pipeline.py [--cores 1,2] [--rounds 3] [--batches 20] [--out DIR]
    .venv/bin/python scripts/bench_input_pipeline.py --quick      # a fast validation run

mmpose's side needs an mmpose install: ``--mmpose-python`` (default ``/work/mmpose_venv/bin/python``) and
``--mmpose-tools`` (the folder with ``mm_import.py``; default ``../shared/tools``); without it only rsn_tf runs.
"""
from __future__ import annotations

import argparse
import copy
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_common import pin_cores  # noqa: E402

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED = os.path.normpath(os.path.join(REPO, "..", "shared"))


# ----------------------------------------------------------------------------------------- data
def repeated_coco(source_ann: str, out_path: str, repeat: int) -> int:
    """``source_ann`` with every image and annotation repeated (new ids, same files). Returns #annotations."""
    with open(source_ann) as f:
        d = json.load(f)
    images, anns = [], []
    for r in range(repeat):
        for im in d["images"]:
            images.append({**copy.deepcopy(im), "id": im["id"] * 1000 + r})
        for a in d["annotations"]:
            anns.append({**copy.deepcopy(a), "id": a["id"] * 1000 + r, "image_id": a["image_id"] * 1000 + r})
    with open(out_path, "w") as f:
        json.dump({"images": images, "annotations": anns, "categories": d["categories"]}, f)
    return len(anns)


# ----------------------------------------------------------------------------------------- rsn_tf worker
def _data_config(ann: str, images: str):
    from rsn_tf.data.config import AugmentConfig, DataConfig

    return DataConfig(format="coco", train_ann=ann, train_images=images, val_ann=ann, val_images=images,
                      mode="mmpose", augment=AugmentConfig(recipe="mmpose"), test_padding=(1.25, 1.25))


def rsn_tf_worker(args) -> dict:
    cpus = pin_cores(args.cores)
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(args.cores)
    tf.config.threading.set_inter_op_parallelism_threads(args.cores)
    import cv2

    from rsn_tf.data.pipeline import build_dataset
    from rsn_tf.model.config import preset_config

    ds = build_dataset(_data_config(args.ann, args.images), preset_config("rsn18", "256x192"), "train",
                       batch_size=args.batch, seed=0)
    opts = tf.data.Options()
    opts.threading.private_threadpool_size = args.cores
    it = iter(ds.with_options(opts))
    for _ in range(args.warmup):
        next(it)
    t0, c0 = time.perf_counter(), time.process_time()
    for _ in range(args.batches):
        images, targets = next(it)
    wall = time.perf_counter() - t0
    crops = args.batches * args.batch
    return {"framework": "rsn_tf", "cores": len(cpus), "crops": crops, "wall_s": wall, "crops_per_s": crops / wall,
            "cpu_s": time.process_time() - c0, "input_shape": list(images.shape),
            "levels": int(targets["heatmaps"].shape[1]), "opencv": cv2.__version__, "tensorflow": tf.__version__}


def rsn_tf_profile(args) -> dict:
    """One core, no tf.data: per-sample seconds in total and inside OpenCV (GIL released) vs the rest."""
    pin_cores(1)
    import cv2
    import numpy as np

    from rsn_tf.data.pipeline import SampleMaker, load_instances
    from rsn_tf.model.config import preset_config

    inside = {"imdecode": 0.0, "warpAffine": 0.0, "GaussianBlur": 0.0}
    originals = {name: getattr(cv2, name) for name in inside}

    def timed(name):
        fn = originals[name]

        def wrapper(*a, **k):
            t = time.perf_counter()
            try:
                return fn(*a, **k)
            finally:
                inside[name] += time.perf_counter() - t
        return wrapper

    cfg = _data_config(args.ann, args.images)
    maker = SampleMaker(load_instances(cfg, "train"), cfg, preset_config("rsn18", "256x192"), train=True, seed=0)
    n = len(maker.instances)
    for i in range(8):
        maker(i % n, i)
    for name in inside:
        setattr(cv2, name, timed(name))
    samples = max(args.batches * 4, 40)
    t0 = time.perf_counter()
    try:
        for i in range(samples):
            maker(i % n, 100 + i)
    finally:
        for name, fn in originals.items():
            setattr(cv2, name, fn)
    total = (time.perf_counter() - t0) / samples
    opencv = {k: v / samples for k, v in inside.items()}
    gil = total - sum(opencv.values())
    return {"sample_s": total, "opencv_s": opencv, "gil_held_s": gil, "ceiling_crops_per_s": 1.0 / gil,
            "ceiling_cores": total / gil, "samples": samples, "numpy": np.__version__}


# ----------------------------------------------------------------------------------------- orchestration
def _run(cmd, env=None, timeout=900) -> dict:
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout)
    lines = [l for l in out.stdout.splitlines() if l.startswith("{")]
    if out.returncode != 0 or not lines:
        raise RuntimeError(f"{' '.join(cmd[:3])} ... failed ({out.returncode}): {out.stderr.strip()[-800:]}")
    return json.loads(lines[-1])


def cpu_model() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
        return next((l.split(":", 1)[1].strip() for l in out.splitlines() if l.startswith("Model name")), "?")
    except OSError:
        return "?"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0], epilog=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default=os.path.join(SHARED, "data", "coco_sample"),
                   help="folder with the images and the COCO annotation file --ann")
    p.add_argument("--ann", default="test_coco.json", help="annotation file name in --data")
    p.add_argument("--repeat", type=int, default=40, help="repeat the set this many times (12 people -> 480)")
    p.add_argument("--cores", default="1,2")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--batches", type=int, default=20, help="timed batches of 32 per cell")
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--mmpose-python", default=os.environ.get("MMPOSE_PYTHON", "/work/mmpose_venv/bin/python"))
    p.add_argument("--mmpose-tools", default=os.path.join(SHARED, "tools"))
    p.add_argument("--mmpose-opencv-path", default=None, help="an OpenCV to put first on mmpose's sys.path")
    p.add_argument("--out", default=None, help="also write bench_input_pipeline.{json,md} here")
    p.add_argument("--quick", action="store_true", help="1 round, 4 batches, 1 core: validation only")
    p.add_argument("--worker", choices=["rsn_tf", "profile"], help=argparse.SUPPRESS)
    p.add_argument("--images", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:
        args.cores = int(args.cores)
        print(json.dumps(rsn_tf_worker(args) if args.worker == "rsn_tf" else rsn_tf_profile(args)), flush=True)
        return 0
    if args.quick:
        args.rounds, args.batches, args.warmup, args.cores, args.repeat = 1, 4, 1, "1", 10

    cores = [int(c) for c in args.cores.split(",")]
    tmp = tempfile.TemporaryDirectory()
    ann = os.path.join(tmp.name, "repeated.json")
    people = repeated_coco(os.path.join(args.data, args.ann), ann, args.repeat)
    common = ["--ann", ann, "--images", args.data, "--batch", str(args.batch), "--batches", str(args.batches),
              "--warmup", str(args.warmup)]
    me = [sys.executable, os.path.abspath(__file__)]
    env = {**os.environ, "PYTHONPATH": REPO + os.pathsep + os.environ.get("PYTHONPATH", "")}
    have_mmpose = os.path.exists(args.mmpose_python)
    cells = [("rsn_tf", c, None) for c in cores]
    if have_mmpose:
        cells += [("mmpose", c, w) for c in cores for w in sorted({0, c})]
    results = {cell: [] for cell in cells}
    load_before = os.getloadavg()
    t_start = time.time()
    for r in range(args.rounds):
        for cell in cells[r % len(cells):] + cells[:r % len(cells)]:
            fw, c, w = cell
            if fw == "rsn_tf":
                cmd = me + ["--worker", "rsn_tf", "--cores", str(c)] + common
                res = _run(cmd, env)
            else:
                cmd = [args.mmpose_python, os.path.join(REPO, "scripts", "mmpose_bench_worker.py"), "pipeline",
                       "--tools", args.mmpose_tools, "--cores", str(c), "--workers", str(w)] + common
                if args.mmpose_opencv_path:
                    cmd += ["--opencv-path", args.mmpose_opencv_path]
                res = _run(cmd)
            results[cell].append(res)
            print(f"round {r + 1}: {fw} cores={c}{'' if w is None else f' workers={w}'}: "
                  f"{res['crops_per_s']:.1f} crops/s", file=sys.stderr, flush=True)
    profile = _run(me + ["--worker", "profile", "--cores", "1"] + common, env)
    load_after = os.getloadavg()

    def med(cell):
        return statistics.median(x["crops_per_s"] for x in results[cell])

    best_mm = {c: max((med(k) for k in cells if k[0] == "mmpose" and k[1] == c), default=None) for c in cores}
    rows = []
    for cell in cells:
        fw, c, w = cell
        m = med(cell)
        ratio = "" if fw == "mmpose" or best_mm[c] is None else f"{m / best_mm[c]:.2f}x"
        setting = "tf.data, AUTOTUNE" if fw == "rsn_tf" else f"DataLoader num_workers={w}"
        rows.append(f"| {fw} | {setting} | {c} | {m:.1f} | {m / c:.1f} | {ratio} |")
    any_res = results[cells[0]][0]
    mm_res = next((results[k][0] for k in cells if k[0] == "mmpose"), {})
    head = (f"CPU: {cpu_model()}, {os.cpu_count()} logical CPUs visible; load average "
            f"{load_before[0]:.2f} before, {load_after[0]:.2f} after; {args.rounds} round(s) x {args.batches} "
            f"batches of {args.batch} per cell (median); {people} people ({args.repeat}x {args.ann}); rsn_tf: "
            f"TensorFlow {any_res.get('tensorflow')}, OpenCV {any_res.get('opencv')}; mmpose: torch "
            f"{mm_res.get('torch', '-')}, OpenCV {mm_res.get('opencv', '-')}; {time.time() - t_start:.0f} s")
    table = ["| pipeline | setting | cores | crops/s | crops/s per core | rsn_tf / best mmpose |",
             "|---|---|---|---|---|---|", *rows]
    prof = (f"rsn_tf per sample on 1 core: {profile['sample_s'] * 1e3:.2f} ms, of which OpenCV (GIL released) "
            + ", ".join(f"{k} {v * 1e3:.2f}" for k, v in profile["opencv_s"].items())
            + f" ms; Python/numpy holding the GIL {profile['gil_held_s'] * 1e3:.2f} ms -> ceiling "
              f"{profile['ceiling_crops_per_s']:.0f} crops/s whatever the core count (~{profile['ceiling_cores']:.1f} "
              "cores' worth of OpenCV work per GIL)")
    text = "\n".join([head, "", *table, "", prof])
    print(text)
    if args.out:
        os.makedirs(args.out, exist_ok=True)
        with open(os.path.join(args.out, "bench_input_pipeline.json"), "w") as f:
            json.dump({"cells": {f"{k[0]}_c{k[1]}_w{k[2]}": v for k, v in results.items()}, "profile": profile,
                       "load": [load_before, load_after]}, f, indent=1)
        with open(os.path.join(args.out, "bench_input_pipeline.md"), "w") as f:
            f.write(text + "\n")
    tmp.cleanup()
    if not have_mmpose:
        print(f"(mmpose not found at {args.mmpose_python}: rsn_tf only)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
