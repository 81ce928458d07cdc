"""Benchmark worker: one process, one thread count, every cell (model x runtime x batch) interleaved.

``python -m rsn_tf.bench.worker SPEC.json RESULT.json``. The parent (:mod:`rsn_tf.bench.run`) starts one
worker per thread count because TF's thread pools are per process; TFLite and onnxruntime get the
count per model. Environment ``OMP_NUM_THREADS``/``OPENBLAS_NUM_THREADS`` is set by the parent so the
numpy matmul roofline uses the same number of threads.

Protocol (interleaved, so that load changes on a shared machine hit every cell alike): every cell is loaded and warmed up, its invokes per block are set
so that a block lasts about ``block_seconds``; then ``rounds`` rounds each time one block of every
cell, the cell order rotated by one each round. Result: per cell the seconds per invoke of every
block (round order), so the parent can take medians and per-round ratios between cells.

Memory: ``mem_mb`` is the growth of this process's resident set (VmRSS, /proc/self/status) while the
cell's model is loaded and warmed up, with every runtime library already imported. Cells are loaded
one after the other and kept, so it is the model's own footprint (weights, arenas, graph), not the
runtime library's.
"""
from __future__ import annotations

import json
import sys
import time

import numpy as np


def rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    return float("nan")


class MatmulCell:
    """fp32 matmul ``[n,n] @ [n,n]`` in numpy (BLAS): the machine's roofline, measured beside the models."""

    def __init__(self, n: int = 1024):
        rng = np.random.default_rng(0)
        self.a = rng.standard_normal((n, n), np.float32)
        self.b = rng.standard_normal((n, n), np.float32)
        self.flops = 2.0 * n ** 3

    def invoke(self):
        self.c = self.a @ self.b


def load_cell(cell: dict, threads: int):
    from rsn_tf.export.runtimes import load_runner

    if cell["runtime"] == "roofline":
        return MatmulCell(cell.get("matmul_n", 1024))
    kind = cell["kind"]
    runner = load_runner(kind, cell["path"], threads=threads, batch=cell["batch"])
    shape = [cell["batch"], *cell["input_shape"]]
    rng = np.random.default_rng(0)
    if cell.get("peer"):  # a peer takes its own input range (BlazePose: RGB in 0..1)
        x = rng.uniform(0, 1, shape).astype(np.float32)
    else:
        x = rng.standard_normal(shape).astype(np.float32)
    runner.set_input(x)
    return runner


def main(spec_path: str, result_path: str) -> int:
    with open(spec_path) as f:
        spec = json.load(f)
    threads = int(spec["threads"])
    cells = spec["cells"]
    kinds = {c.get("kind") for c in cells}
    if kinds & {"keras", "saved_model"}:
        from rsn_tf.export.runtimes import set_tf_threads
        set_tf_threads(threads)
        import tensorflow  # noqa: F401
        import keras  # noqa: F401
    if "tflite" in kinds:
        import ai_edge_litert.interpreter  # noqa: F401
    if "onnx" in kinds:
        import onnxruntime  # noqa: F401

    loaded, results = [], []
    for cell in cells:
        before = rss_mb()
        obj = load_cell(cell, threads)
        for _ in range(spec["warmup"]):
            obj.invoke()
        mem = rss_mb() - before
        t0 = time.perf_counter()
        obj.invoke()
        single = max(time.perf_counter() - t0, 1e-6)
        n = max(1, int(round(spec["block_seconds"] / single)))
        loaded.append((obj, n))
        results.append({"id": cell["id"], "mem_mb": round(mem, 1), "invokes_per_block": n, "block_s_per_invoke": []})
        print(f"[bench t={threads}] loaded {cell['id']}: {single * 1e3:.1f} ms/invoke, {n} per block, "
              f"+{mem:.0f} MB", file=sys.stderr, flush=True)

    order = list(range(len(cells)))
    for r in range(spec["rounds"]):
        rotated = order[r % len(order):] + order[:r % len(order)]
        for i in rotated:
            obj, n = loaded[i]
            t0 = time.perf_counter()
            for _ in range(n):
                obj.invoke()
            results[i]["block_s_per_invoke"].append((time.perf_counter() - t0) / n)
    with open(result_path, "w") as f:
        json.dump({"threads": threads, "cells": results}, f)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))
