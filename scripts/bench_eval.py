"""Time a whole ``rsn eval`` post-processing at COCO-val scale, beside mmpose's decode + CocoMetric.

  python scripts/bench_eval.py [--images 5000] [--dets-per-image 20] [--work DIR] [--mmpose-python PY]

Synthesises a COCO-val-sized set (``--images`` images, ~1.3 annotated persons each, ``--dets-per-image``
detection boxes each: COCO val has 5,000 images and ~104k boxes in its detection file) and a bank of
realistic heatmaps (Gaussian peaks at a pose template's keypoints on smooth noise, weak blobs for
unlabelled joints). A fake fast model returns, for each box, its template's heatmaps (and their
mirror for the flip test, so the flip average is exactly the bank's map), so that only the work
around the network is timed. Then:

* rsn_tf: the real ``rsn_tf.evaluation.runner.evaluate_coco`` (boxes from the detection file, crops,
  the fake network, flip average, the vectorised decode, keypoints to the image, instance scores,
  results, pycocotools), with the stages timed;
* mmpose (with ``--mmpose-python``, default ``/work/mmpose_venv/bin/python`` when it exists): its
  ``MegviiHeatmap.decode`` per instance on the same maps, its keypoint mapping, and ``CocoMetric``
  (``nms_mode='none'`` as its RSN configs) on the same annotation file, via scripts/bench_eval_mmpose.py.

Both decode the same maps with the same rule, so their keypoints and AP must agree (printed). Prints a
markdown table, the CPU (lscpu), thread counts and the load average. ``--images 200`` is a quick check.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

H, W, K = 64, 48, 17
INPUT = (256, 192)


def make_bank(n: int, rng) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pose templates: crop keypoints [n, K, 2] (px of a 192x256 crop), visibility [n, K], heatmaps [n, h, w, K]."""
    import cv2
    yy, xx = np.mgrid[0:H, 0:W].astype(np.float32)
    base = np.array([[96, 40], [104, 34], [88, 34], [114, 38], [78, 38], [126, 72], [66, 72], [136, 110], [56, 110],
                     [140, 146], [52, 146], [118, 150], [74, 150], [120, 192], [72, 192], [122, 232], [70, 232]],
                    np.float32)
    kp = base[None] + rng.normal(0, 8, (n, K, 2)).astype(np.float32)
    vis = rng.random((n, K)) < 0.8
    maps = np.zeros((n, H, W, K), np.float32)
    for i in range(n):
        for j in range(K):
            cx, cy = kp[i, j] / 4.0
            sig, amp = (rng.uniform(1.5, 2.5), rng.uniform(120, 250)) if vis[i, j] else \
                (rng.uniform(3, 8), rng.uniform(5, 50))
            noise = cv2.GaussianBlur(rng.normal(size=(H, W)).astype(np.float32), (7, 7), 0) * rng.uniform(1, 6)
            maps[i, :, :, j] = amp * np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * sig * sig)) + noise - 2
    return kp, vis, maps


def synthesise(work: str, n_images: int, dets_per_image: int, bank_size: int, seed: int) -> dict:
    from rsn_tf import geometry
    from rsn_tf.keypoints import COCO

    rng = np.random.default_rng(seed)
    kp, vis, maps = make_bank(bank_size, rng)
    images, anns, dets, bank_index = [], [], [], []
    aid = 1
    for i in range(1, n_images + 1):
        images.append({"id": i, "file_name": f"{i:012d}.jpg", "width": 640, "height": 480})
        persons = []
        for _ in range(rng.poisson(1.3)):
            w = rng.uniform(40, 300)
            h = min(w * rng.uniform(1.6, 2.6), 470.0)
            x, y = rng.uniform(0, 640 - w), rng.uniform(0, 480 - h)
            t = int(rng.integers(bank_size))
            c, s = geometry.box_to_center_scale((x, y, w, h), INPUT[1] / INPUT[0], 1.25, construction="mmpose")
            img_kp = geometry.crop_to_image_batch(kp[t][None], c[None], s[None], (INPUT[1], INPUT[0]))[0]
            v = np.where(vis[t], 2, 0)
            flat = np.concatenate([img_kp, v[:, None]], axis=1).reshape(-1)
            anns.append({"id": aid, "image_id": i, "category_id": 1, "bbox": [x, y, w, h], "area": w * h * 0.55,
                         "iscrowd": 0, "num_keypoints": int((v > 0).sum()),
                         "keypoints": [round(float(a), 2) for a in flat]})
            aid += 1
            persons.append(((x, y, w, h), t))
        boxes = []
        for (x, y, w, h), t in persons:  # a few detections per person, jittered, high scores
            for _ in range(min(3, dets_per_image)):
                j = rng.normal(0, 0.04, 4) * [w, h, w, h]
                boxes.append(([x + j[0], y + j[1], w + j[2], h + j[3]], float(rng.uniform(0.6, 1.0)), t))
        while len(boxes) < dets_per_image:  # background detections, low scores, random templates
            w = rng.uniform(20, 200)
            h = w * rng.uniform(1.0, 2.5)
            boxes.append(([rng.uniform(0, 600 - w * 0.5), rng.uniform(0, 440 - h * 0.5), w, h],
                          float(rng.uniform(0.01, 0.5)), int(rng.integers(bank_size))))
        for b, score, t in boxes:
            b = [float(min(max(b[0], 0.0), 630.0)), float(min(max(b[1], 0.0), 470.0)), float(max(b[2], 8.0)),
                 float(max(b[3], 8.0))]
            dets.append({"image_id": i, "category_id": 1, "bbox": [round(v, 2) for v in b], "score": round(score, 5)})
            bank_index.append(t)
    cat = {"id": 1, "name": "person", "supercategory": "person", "keypoints": list(COCO.names),
           "skeleton": [[a + 1, b + 1] for a, b in COCO.skeleton]}
    ann_path, det_path = os.path.join(work, "person_keypoints_synth.json"), os.path.join(work, "dets.json")
    with open(ann_path, "w") as f:
        json.dump({"images": images, "annotations": anns, "categories": [cat]}, f)
    with open(det_path, "w") as f:
        json.dump(dets, f)
    np.save(os.path.join(work, "bank_nhwk.npy"), maps)
    np.save(os.path.join(work, "bank_nkhw.npy"), np.ascontiguousarray(maps.transpose(0, 3, 1, 2)))
    spec = {"ann": ann_path, "dets": det_path, "bank_index": bank_index, "images": n_images,
            "annotations": len(anns), "boxes": len(dets)}
    with open(os.path.join(work, "set.json"), "w") as f:
        json.dump(spec, f)
    return spec


class _FakeNet:
    """crops [2n, H, W, 3] (n crops + their mirrors) -> the bank's maps of the next n boxes + their mirrors."""

    def __init__(self, bank, order, flip_perm):
        self.bank, self.order, self.perm, self.next, self.seconds = bank, np.asarray(order), flip_perm, 0, 0.0

    def __call__(self, crops):
        t = time.perf_counter()
        n = len(crops) // 2
        maps = self.bank[self.order[self.next:self.next + n]]
        self.next += n
        out = np.concatenate([maps, np.take(maps[:, :, ::-1], self.perm, axis=-1)])
        self.seconds += time.perf_counter() - t
        return out


class _Timed:
    """Wraps a callable, adding its wall time to ``seconds``."""

    def __init__(self, fn):
        self.fn, self.seconds = fn, 0.0

    def __call__(self, *a, **k):
        t = time.perf_counter()
        try:
            return self.fn(*a, **k)
        finally:
            self.seconds += time.perf_counter() - t


def run_rsn_tf(work: str, spec: dict, batch: int) -> dict:
    from rsn_tf.evaluation import coco as coco_eval
    from rsn_tf.evaluation.runner import evaluate_coco
    from rsn_tf.inference import PoseEstimator
    from rsn_tf.keypoints import COCO
    from rsn_tf.model import ModelConfig

    bank = np.load(os.path.join(work, "bank_nhwk.npy"))
    net = _FakeNet(bank, spec["bank_index"], COCO.flip_permutation())
    est = PoseEstimator(net, config=ModelConfig(), recipe="mmpose", batch_size=batch, keypoints="coco")
    decode = _Timed(est.codec.decode)
    object.__setattr__(est.codec, "decode", decode)  # time the decode inside the real run
    crop_cost = _crop_seconds(est, min(spec["boxes"], 2000)) * spec["boxes"]
    # The fake model ignores its input, so the run makes no crops (placeholders of one pixel): only the
    # work around the network is timed. Real crops' cost is measured apart, above.
    crops = _Timed(lambda image, centers, scales: np.zeros((len(centers), 1, 1, 3), np.float32))
    est.crops = crops
    result = _Timed(coco_eval.CocoKeypointEvaluator.result)
    coco_eval.CocoKeypointEvaluator.result = lambda self, *a, **k: result(self, *a, **k)
    blank = np.zeros((480, 640, 3), np.uint8)
    t0 = time.perf_counter()
    metrics = evaluate_coco(est, spec["ann"], work, boxes=spec["dets"], verbose=False, image_reader=lambda p: blank)
    total = time.perf_counter() - t0
    assert net.next == spec["boxes"], (net.next, spec["boxes"])
    from rsn_tf.geometry import flip_back_heatmaps  # the flip average inside heatmaps(), timed alone
    n = min(spec["boxes"], 2048)
    both = np.concatenate([bank[:batch], bank[:batch]])
    t0 = time.perf_counter()
    for _ in range(max(1, n // batch)):
        _ = (both[:batch] + flip_back_heatmaps(both[batch:], COCO.flip_pairs)) * 0.5
    flip_avg = (time.perf_counter() - t0) / (max(1, n // batch) * batch) * spec["boxes"]
    return {"total_s": total, "decode_s": decode.seconds, "crops_s": crops.seconds, "fake_net_s": net.seconds,
            "real_crops_est_s": crop_cost,
            "coco_eval_s": result.seconds, "flip_average_est_s": flip_avg, "AP": metrics["AP"], "AR": metrics["AR"],
            "stats": {k: metrics[k] for k in coco_eval.STAT_NAMES}}


def _crop_seconds(est, n: int) -> float:
    """Seconds per box of real crops + normalisation (640x480 image, 20 boxes per image)."""
    rng = np.random.default_rng(1)
    image = rng.integers(0, 255, (480, 640, 3), dtype=np.uint8)
    boxes = [[rng.uniform(0, 400), rng.uniform(0, 200), rng.uniform(40, 240), rng.uniform(80, 280)] for _ in range(20)]
    c, s = est.regions_from_boxes(boxes)
    t = time.perf_counter()
    for _ in range(max(1, n // 20)):
        est.crops(image, c, s)
    return (time.perf_counter() - t) / (max(1, n // 20) * 20)


def decode_only(bank: np.ndarray, boxes: int, reps: int = 3) -> dict:
    """Decode time per 1,000 boxes, vectorised vs the reference loop, both modes (best of ``reps``)."""
    from rsn_tf.codec import MegviiHeatmapCodec
    out = {}
    hm = np.concatenate([bank] * max(1, -(-boxes // len(bank))))[:boxes]
    for mode in ("authors", "mmpose"):
        c = MegviiHeatmapCodec(INPUT, decode_mode=mode)
        fast = min(_clock(lambda: c.decode(hm)) for _ in range(reps)) / boxes * 1000
        ref_n = min(boxes, 200)
        ref = min(_clock(lambda: c.decode_reference(hm[:ref_n])) for _ in range(reps)) / ref_n * 1000
        a, s = c.decode(hm[:ref_n])
        b, u = c.decode_reference(hm[:ref_n])
        out[mode] = {"fast_s_per_1000": fast, "loop_s_per_1000": ref,
                     "identical": bool(np.array_equal(a, b) and np.array_equal(s, u))}
    return out


def _clock(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def machine() -> str:
    try:
        cpu = [l.split(":", 1)[1].strip() for l in subprocess.run(["lscpu"], capture_output=True, text=True).stdout
               .splitlines() if l.startswith("Model name")][0]
    except Exception:  # noqa: BLE001
        cpu = platform.processor() or "?"
    import cv2
    load = os.getloadavg()
    return (f"{cpu}, {os.cpu_count()} CPUs, OpenCV threads {cv2.getNumThreads()}, load average "
            f"{load[0]:.2f} / {load[1]:.2f} / {load[2]:.2f} (1 / 5 / 15 min)")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--images", type=int, default=5000)
    p.add_argument("--dets-per-image", type=int, default=20)
    p.add_argument("--bank", type=int, default=256, help="distinct heatmap sets (pose templates)")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--work", default=None, help="folder for the synthetic set (default: a temporary one)")
    p.add_argument("--mmpose-python", default="/work/mmpose_venv/bin/python",
                   help="mmpose's Python for its side ('' to skip)")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    work = args.work or tempfile.mkdtemp(prefix="rsn_bench_eval_")
    os.makedirs(work, exist_ok=True)
    before = machine()
    t = time.perf_counter()
    spec = synthesise(work, args.images, args.dets_per_image, args.bank, args.seed)
    print(f"synthesised {spec['images']} images, {spec['annotations']} persons, {spec['boxes']} boxes in "
          f"{time.perf_counter() - t:.1f} s ({work})", flush=True)
    ours = run_rsn_tf(work, spec, args.batch_size)
    print(f"rsn_tf evaluate_coco: {ours['total_s']:.1f} s, AP {ours['AP']:.4f}", flush=True)
    bank = np.load(os.path.join(work, "bank_nhwk.npy"))
    dec = decode_only(bank, min(spec["boxes"], 5000))
    theirs = None
    if args.mmpose_python and os.path.exists(args.mmpose_python):
        here = os.path.dirname(os.path.abspath(__file__))
        r = subprocess.run([args.mmpose_python, os.path.join(here, "bench_eval_mmpose.py"), work],
                           capture_output=True, text=True)
        if r.returncode == 0:
            theirs = json.load(open(os.path.join(work, "mmpose.json")))
        else:
            print("mmpose side failed:\n" + r.stderr[-3000:], file=sys.stderr)
    n = spec["boxes"]
    per = lambda s: f"{s:.2f} s ({1000 * s / n:.3f} s / 1k boxes)"  # noqa: E731
    glue = ours["total_s"] - ours["decode_s"] - ours["fake_net_s"] - ours["coco_eval_s"]
    rows = [("decode (flip-averaged heatmaps -> crop keypoints)", per(ours["decode_s"]),
             per(theirs["decode_s"]) if theirs else "—"),
            ("keypoints to image, instance scores, results", per(glue) + f" (incl. box reading and the flip average, "
             f"~{ours['flip_average_est_s']:.1f} s)",
             per(theirs["map_s"] + theirs["process_s"]) + " (mapping + CocoMetric.process)" if theirs else "—"),
            ("COCO keypoint evaluation", f"{ours['coco_eval_s']:.2f} s (pycocotools 2.0.11)",
             f"{theirs['coco_metric_s']:.2f} s (CocoMetric: xtcocotools)" if theirs else "—"),
            ("**post-processing total**", f"**{ours['total_s'] - ours['fake_net_s']:.1f} s**",
             f"**{theirs['decode_s'] + theirs['map_s'] + theirs['process_s'] + theirs['coco_metric_s']:.1f} s**"
             if theirs else "—"),
            ("crops + normalisation (pre-processing; not made in the timed run)",
             f"~{ours['real_crops_est_s']:.1f} s (measured on 2,000 boxes)", "not run"),
            ("fake network (bank lookup + mirror)", f"{ours['fake_net_s']:.1f} s", "not run"),
            ("whole `evaluate_coco` (rsn eval) wall time, crops excepted", f"{ours['total_s']:.1f} s", "—"),
            ("AP / AR", f"{ours['AP']:.4f} / {ours['AR']:.4f}",
             f"{theirs['AP']:.4f} / {theirs['AR']:.4f}" if theirs else "—")]
    print(f"\n{spec['images']} images, {spec['annotations']} annotated persons, {n} detection boxes; "
          f"mmpose recipe, flip test, batch {args.batch_size}")
    print(f"machine: {before} (before); {machine()} (after)\n")
    print("| stage | rsn_tf | mmpose 1.3.2 |\n|---|---|---|")
    for r in rows:
        print(f"| {r[0]} | {r[1]} | {r[2]} |")
    print("\n| decode per 1,000 boxes (17 maps of 64x48 each) | vectorised | per-map loop (before) | identical |")
    print("|---|---|---|---|")
    for mode, d in dec.items():
        print(f"| {mode} | {d['fast_s_per_1000']:.3f} s | {d['loop_s_per_1000']:.3f} s | {d['identical']} |")
    if theirs:
        pairs = (("AP", "AP"), ("AP50", "AP .5"), ("AP75", "AP .75"), ("APm", "AP (M)"), ("APl", "AP (L)"),
                 ("AR", "AR"), ("AR50", "AR .5"), ("AR75", "AR .75"), ("ARm", "AR (M)"), ("ARl", "AR (L)"))
        diff = max(abs(ours["stats"][a] - theirs["stats"][b]) for a, b in pairs)
        print(f"\nrsn_tf (pycocotools) vs mmpose (CocoMetric, xtcocotools), all ten COCO stats: largest difference "
              f"{diff:.2g}")
    with open(os.path.join(work, "bench_eval.json"), "w") as f:
        json.dump({"ours": ours, "mmpose": theirs, "decode": dec, "spec": {k: v for k, v in spec.items()
                                                                           if k != "bank_index"}}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
