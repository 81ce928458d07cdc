"""Where the time goes: per-stage timing of the int8 TFLite graph by cumulative truncation.

The deploy graph is cut after the stem, after each of the 4 levels, after the global net and at the
final heatmaps; each prefix is converted to full-int8 TFLite (same calibration crops) and all prefixes
are timed interleaved (1 thread by default). A stage's time is the difference of consecutive prefixes'
medians, its MACs the difference of their MAC counts, so GMAC/s per stage shows which part runs far
below the rest. (The LiteRT Python package ships no op profiler; prefix timing measures the same
XNNPACK partitions the full model runs.)
"""
from __future__ import annotations

import os
import tempfile

import numpy as np

from rsn_tf.io_utils import write_json, write_text


def stage_cuts(deployed) -> list[tuple[str, str]]:
    """(stage label, layer name whose output ends it), in graph order."""
    cfg = deployed.rsn_config
    names = {layer.name for layer in deployed.layers}
    cuts = [("stem (7x7/2 conv + pool)", "stem_pool")]
    for level in range(4):
        n = cfg.num_blocks[level]
        cuts.append((f"level {level + 1} ({n} blocks)", f"s0_layer{level + 1}_b{n - 1}_out"))
    cuts.append(("global net (4 units)", f"s{cfg.num_stages - 1}_up4_relu"))
    cuts.append(("final head", deployed.layers[-1].name))
    missing = [n for _, n in cuts if n not in names]
    if missing:
        raise ValueError(f"stage_cuts: layers {missing} not in the deploy graph (single-stage RSN expected)")
    return cuts


def profile_stages(model, calibration: np.ndarray, out_dir: str, threads: int = 1, rounds: int = 15,
                   block_seconds: float = 0.2, log=print) -> dict:
    """Time int8 prefixes of ``model``'s deploy graph; writes ``profile.json``/``profile.md``."""
    import time

    import keras

    from rsn_tf.complexity import count_macs
    from rsn_tf.export.graph import deploy_model
    from rsn_tf.export.runtimes import TFLiteRunner
    from rsn_tf.export.tflite import export_tflite

    deployed = deploy_model(model)
    cuts = stage_cuts(deployed)
    runners, macs = [], []
    with tempfile.TemporaryDirectory(prefix="rsn_profile_") as tmp:
        for i, (label, layer) in enumerate(cuts):
            sub = keras.Model(deployed.input, deployed.get_layer(layer).output, name=f"prefix{i}")
            path = export_tflite(sub, os.path.join(tmp, f"prefix{i}.tflite"), "int8", calibration)
            runners.append(TFLiteRunner(path, threads=threads))
            macs.append(count_macs(sub))
            log(f"[profile] converted prefix {i}: ... -> {label}")
        x = np.random.default_rng(0).standard_normal((1, *deployed.rsn_config.input_size, 3)).astype(np.float32)
        counts = []
        for r in runners:
            r.set_input(x)
            for _ in range(3):
                r.invoke()
            t0 = time.perf_counter()
            r.invoke()
            counts.append(max(1, int(block_seconds / max(time.perf_counter() - t0, 1e-6))))
        times = [[] for _ in runners]
        for _ in range(rounds):
            for i, (r, n) in enumerate(zip(runners, counts)):
                t0 = time.perf_counter()
                for _ in range(n):
                    r.invoke()
                times[i].append((time.perf_counter() - t0) / n)
    cum = [float(np.median(t)) for t in times]
    rows, prev_t, prev_m = [], 0.0, 0
    for (label, layer), t, m in zip(cuts, cum, macs):
        dt, dm = t - prev_t, m - prev_m
        rows.append({"stage": label, "ends_at": layer, "ms": round(1e3 * dt, 3), "share": round(dt / cum[-1], 3),
                     "gmacs": round(dm / 1e9, 4), "gmac_per_s": round(dm / 1e9 / dt, 1) if dt > 0 else None})
        prev_t, prev_m = t, m
    result = {"threads": threads, "rounds": rounds, "total_ms": round(1e3 * cum[-1], 3),
              "load_average": [round(v, 2) for v in os.getloadavg()], "stages": rows}
    lines = [f"# int8 TFLite stage profile ({threads} thread(s), {rounds} interleaved rounds, load "
             f"{result['load_average']})", "", f"Total {result['total_ms']:.2f} ms per crop.", "",
             "| stage | ms | share | GMACs | GMAC/s |", "|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['stage']} | {r['ms']:.2f} | {100 * r['share']:.0f}% | {r['gmacs']:.3f} | "
                     f"{r['gmac_per_s'] if r['gmac_per_s'] is not None else '—'} |")
    os.makedirs(out_dir, exist_ok=True)
    write_json(os.path.join(out_dir, "profile.json"), result)
    write_text(os.path.join(out_dir, "profile.md"), "\n".join(lines) + "\n")
    return result
