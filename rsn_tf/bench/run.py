"""``run_benchmark``: persons per second of every model x runtime x threads x batch, side by side.

1. Each preset (or ``--weights`` model) is exported once to ``OUT/models/<name>/`` with
   :func:`rsn_tf.export.exporter.export_model` (validated; int8 calibrated on synthetic crops) and saved
   as ``model.keras`` for the ``keras`` runtime. ``reuse=True`` keeps exports that are already there.
2. Per thread count, one worker process (:mod:`rsn_tf.bench.worker`) times every cell interleaved,
   plus the fp32 matmul roofline and the ``--peer-tflite`` models (batch 1).
3. Per cell: pps = batch / seconds per invoke, for every block; record the median and the IQR
   (25th-75th percentile); the ratio to each peer is the median (and IQR) of per-round ratios.
   GFLOP/s = 2 x MACs x pps (MACs of the deploy graph, counted on the Keras model; for peers from the
   .tflite's conv/FC ops).
"""
from __future__ import annotations

import datetime
import json
import os
import platform
import subprocess
import sys
import tempfile

import numpy as np

from rsn_tf.export.core import FORMAT_TABLE, require_modules

#: ``keras`` (the .keras model's deploy graph in TF) and every export format.
RUNTIMES = ("keras", *FORMAT_TABLE)


def require_runtimes(runtimes, peers=()) -> None:
    """One clear error naming the extra to install when a runtime (or the peers' TFLite) is missing."""
    formats = [r for r in runtimes if r in FORMAT_TABLE] + (["tflite_fp32"] if peers else [])
    require_modules(formats, "rsn bench")


def parse_list(text, what: str, allowed=None, cast=str) -> list:
    items = [s.strip() for s in (text.split(",") if isinstance(text, str) else text) if str(s).strip()]
    try:
        values = [cast(s) for s in items]
    except ValueError:
        raise ValueError(f"--{what}: expected a comma list of {cast.__name__} (got {text!r})") from None
    if not values:
        raise ValueError(f"--{what}: empty")
    if allowed is not None:
        bad = [v for v in values if v not in allowed]
        if bad:
            raise ValueError(f"--{what}: unknown {bad}; expected some of {', '.join(allowed)}")
    if cast is int and min(values) < 1:
        raise ValueError(f"--{what}: values must be >= 1 (got {values})")
    return list(dict.fromkeys(values))


def machine_info() -> dict:
    cpu = platform.processor() or "?"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    import importlib.metadata

    import tensorflow as tf

    def version(dist):
        try:
            return importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            return "not installed"

    return {"cpu": cpu, "logical_cpus": os.cpu_count(), "platform": platform.platform(),
            "python": platform.python_version(), "tensorflow": tf.__version__,
            "ai_edge_litert": version("ai-edge-litert"), "onnxruntime": version("onnxruntime"),
            "numpy": np.__version__}


def load_average() -> list[float]:
    return [round(v, 2) for v in os.getloadavg()]


def prepare_model(name: str, model, models_dir: str, runtimes, reuse: bool, log=print) -> dict:
    """Export ``model`` for ``runtimes`` under ``models_dir/name``; returns {runtime: (kind, path)} + facts."""
    from rsn_tf.complexity import count_macs
    from rsn_tf.export.crops import synthetic_crops
    from rsn_tf.export.core import FORMAT_TABLE, ExportConfig, artifact_path, file_size
    from rsn_tf.export.exporter import export_model
    from rsn_tf.export.graph import deploy_model

    out = os.path.join(models_dir, name)
    formats = [r for r in runtimes if r != "keras"]
    manifest_path = os.path.join(out, "manifest.json")
    have = {}
    if reuse and os.path.exists(manifest_path):
        with open(manifest_path) as f:
            have = json.load(f).get("formats", {})
    todo = [f for f in formats if f not in have or not os.path.exists(artifact_path(out, f))]
    if todo:
        if os.path.exists(out) and not reuse:
            raise ValueError(f"{out} exists; pass a fresh --out or --reuse to keep its exports")
        calib = synthetic_crops(model.rsn_config, num_images=16, seed=0, limit=32)
        manifest = export_model(model, out, calib, calib[:4], ExportConfig(formats=tuple(todo)), log=log)
        have.update(manifest["formats"])
        manifest["formats"] = have
        from rsn_tf.io_utils import write_json
        write_json(manifest_path, manifest)
    paths = {f: (FORMAT_TABLE[f].runtime, artifact_path(out, f)) for f in formats}
    if "keras" in runtimes:
        keras_path = os.path.join(out, "model.keras")
        if not (reuse and os.path.exists(keras_path)):
            os.makedirs(out, exist_ok=True)
            model.save(keras_path)
        paths["keras"] = ("keras", keras_path)
    return {"paths": paths, "macs": count_macs(deploy_model(model)),
            "bytes": {r: file_size(p) for r, (_, p) in paths.items()}}


def run_benchmark(models: dict, out_dir: str, runtimes=RUNTIMES, threads=(1,), batches=(1,), peers=(),
                  rounds: int = 20, block_seconds: float = 0.25, warmup: int = 5, reuse: bool = False,
                  command: str = "", log=print) -> dict:
    """Benchmark ``models`` ({name: RSNModel}) and write ``bench.json``, ``bench.md``, ``bench.png``.

    Returns the result dict (``records``: one per model x runtime x threads x batch, each with ``pps``).
    """
    from rsn_tf.bench.report import write_outputs
    from rsn_tf.export.tflite import tflite_macs

    runtimes = parse_list(runtimes, "runtimes", RUNTIMES)
    threads = parse_list(threads, "threads", cast=int)
    batches = parse_list(batches, "batch", cast=int)
    require_runtimes(runtimes, peers)
    for p in peers:
        if not os.path.exists(p):
            raise FileNotFoundError(f"--peer-tflite: {p} not found")
    os.makedirs(out_dir, exist_ok=True)
    models_dir = os.path.join(out_dir, "models")
    prepared = {name: prepare_model(name, m, models_dir, runtimes, reuse, log) for name, m in models.items()}
    input_shapes = {name: [*m.rsn_config.input_size, 3] for name, m in models.items()}

    cells = []
    for name, prep in prepared.items():
        for rt in runtimes:
            kind, path = prep["paths"][rt]
            for b in batches:
                cells.append(dict(id=f"{name}|{rt}|{b}", model=name, runtime=rt, kind=kind, path=path, batch=b,
                                  input_shape=input_shapes[name], macs=prep["macs"], bytes=prep["bytes"][rt]))
    from rsn_tf.export.runtimes import TFLiteRunner
    for p in peers:
        name = os.path.splitext(os.path.basename(p))[0]
        shape = [int(d) for d in TFLiteRunner(p).input_shape[1:]]
        cells.append(dict(id=f"{name}|tflite|1", model=name, runtime="tflite", kind="tflite", path=p, batch=1,
                          input_shape=shape, macs=tflite_macs(p), bytes=os.path.getsize(p), peer=True))
    cells.append(dict(id="roofline", model="fp32 matmul 1024", runtime="roofline", batch=1, macs=1024 ** 3))

    info = {"command": command, "date_utc": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "machine": machine_info(), "load_average_before": load_average(),
            "protocol": {"rounds": rounds, "block_seconds": block_seconds, "warmup": warmup}}
    raw = {}
    for t in threads:
        log(f"[bench] threads={t}: {len(cells)} cells x {rounds} rounds (load average {load_average()})")
        raw[t] = _run_worker(cells, t, rounds, block_seconds, warmup)
    info["load_average_after"] = load_average()
    result = {**info, "records": summarise(cells, raw)}
    write_outputs(result, out_dir)
    return result


def _run_worker(cells, threads, rounds, block_seconds, warmup) -> dict:
    spec = {"threads": threads, "cells": cells, "rounds": rounds, "block_seconds": block_seconds, "warmup": warmup}
    repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), OPENBLAS_NUM_THREADS=str(threads),
               MKL_NUM_THREADS=str(threads), TF_CPP_MIN_LOG_LEVEL="2",
               PYTHONPATH=os.pathsep.join(filter(None, [repo, os.environ.get("PYTHONPATH")])))
    with tempfile.TemporaryDirectory(prefix="rsn_bench_") as tmp:
        spec_path, result_path = os.path.join(tmp, "spec.json"), os.path.join(tmp, "result.json")
        with open(spec_path, "w") as f:
            json.dump(spec, f)
        proc = subprocess.run([sys.executable, "-m", "rsn_tf.bench.worker", spec_path, result_path], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        if proc.returncode != 0 or not os.path.exists(result_path):
            tail = "\n".join(proc.stdout.splitlines()[-20:])
            raise RuntimeError(f"benchmark worker (threads={threads}) failed with code {proc.returncode}:\n{tail}")
        with open(result_path) as f:
            return {c["id"]: c for c in json.load(f)["cells"]}


def _stats(values) -> dict:
    v = np.asarray(values, np.float64)
    return {"median": float(np.median(v)), "p25": float(np.percentile(v, 25)), "p75": float(np.percentile(v, 75))}


def summarise(cells, raw: dict) -> list[dict]:
    """One record per cell and thread count (see module docstring)."""
    records = []
    for t, res in raw.items():
        roof = res["roofline"]["block_s_per_invoke"]
        roof_gflops = _stats([2.0 * 1024 ** 3 / s / 1e9 for s in roof])["median"]
        peer_pps = {c["model"]: np.array([1.0 / s for s in res[c["id"]]["block_s_per_invoke"]])
                    for c in cells if c.get("peer")}
        for c in cells:
            if c["runtime"] == "roofline":
                continue
            r = res[c["id"]]
            pps = np.array([c["batch"] / s for s in r["block_s_per_invoke"]])
            st = _stats(pps)
            rec = {"model": c["model"], "runtime": c["runtime"], "threads": t, "batch": c["batch"],
                   "pps": round(st["median"], 2), "pps_p25": round(st["p25"], 2), "pps_p75": round(st["p75"], 2),
                   "ms_per_batch": round(1e3 * float(np.median(r["block_s_per_invoke"])), 3),
                   "blocks": len(pps), "invokes_per_block": r["invokes_per_block"],
                   "gmacs": round(c["macs"] / 1e9, 4),
                   "gflops": round(2.0 * c["macs"] * st["median"] / 1e9, 1),
                   "roofline_gflops": round(roof_gflops, 1),
                   "roofline_fraction": round(2.0 * c["macs"] * st["median"] / 1e9 / roof_gflops, 3),
                   "file": c["path"], "file_mb": round(c["bytes"] / 1e6, 2), "mem_mb": r["mem_mb"],
                   "peer": bool(c.get("peer"))}
            rec["ratio_to_peer"] = {name: {k: round(v, 3) for k, v in _stats(pps / p).items()}
                                    for name, p in peer_pps.items() if name != c["model"]}
            records.append(rec)
    return records
