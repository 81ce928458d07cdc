"""Benchmark outputs: ``bench.json`` (everything), ``bench.md`` (the table) and ``bench.png`` (bar chart)."""
from __future__ import annotations

import os

from rsn_tf.io_utils import atomic_path, write_json, write_text


def markdown(result: dict) -> str:
    m = result["machine"]
    p = result["protocol"]
    lines = ["# Persons per second (pps)", "",
             f"- command: `{result['command']}`" if result.get("command") else "- command: (library call)",
             f"- machine: {m['cpu']}, {m['logical_cpus']} logical CPUs; {m['platform']}",
             f"- software: TF {m['tensorflow']}, ai-edge-litert {m['ai_edge_litert']} (XNNPACK), "
             f"onnxruntime {m['onnxruntime']}, numpy {m['numpy']}",
             f"- date: {result['date_utc']}; load average (1/5/15 min) before {result['load_average_before']}, "
             f"after {result['load_average_after']}",
             f"- protocol: every cell interleaved in one process per thread count, {p['rounds']} rounds of one "
             f"~{p['block_seconds']} s block each (after {p['warmup']} warm-up invokes); pps = median over blocks, "
             "[IQR]; ratio = median of per-round ratios to the peer [IQR]",
             "- GFLOP/s = 2 x MACs x pps; roofline = numpy fp32 1024x1024 matmul GFLOP/s in the same process; "
             "mem = resident-set growth while loading + warming up that model", ""]
    peers = sorted({name for r in result["records"] for name in r["ratio_to_peer"]})
    head = "| model | runtime | threads | batch | pps [IQR] | ms/batch | GMACs | GFLOP/s | % fp32 roofline | file MB | mem MB |"
    sep = "|---|---|---|---|---|---|---|---|---|---|---|"
    for name in peers:
        head += f" × {name} |"
        sep += "---|"
    lines += [head, sep]
    for r in sorted(result["records"], key=lambda r: (r["threads"], r["batch"], not r["peer"], r["model"])):
        row = (f"| {r['model']} | {r['runtime']} | {r['threads']} | {r['batch']} | {r['pps']:.1f} "
               f"[{r['pps_p25']:.1f}–{r['pps_p75']:.1f}] | {r['ms_per_batch']:.1f} | {r['gmacs']:.3f} | {r['gflops']:.1f} "
               f"| {100 * r['roofline_fraction']:.0f}% | {r['file_mb']:.1f} | {r['mem_mb']:.0f} |")
        for name in peers:
            q = r["ratio_to_peer"].get(name)
            row += f" {q['median']:.2f} [{q['p25']:.2f}–{q['p75']:.2f}] |" if q else " — |"
        lines.append(row)
    roof = sorted({(r["threads"], r["roofline_gflops"]) for r in result["records"]})
    lines += ["", "Roofline (fp32 matmul GFLOP/s): " + ", ".join(f"{t} thread(s): {g:.0f}" for t, g in roof)]
    return "\n".join(lines) + "\n"


def bar_chart(result: dict, path: str) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    recs = sorted(result["records"], key=lambda r: (r["threads"], r["batch"], not r["peer"], r["model"], r["runtime"]))
    labels = [f"{r['model']} {r['runtime']} t{r['threads']} b{r['batch']}" for r in recs]
    pps = [r["pps"] for r in recs]
    err = [[r["pps"] - r["pps_p25"] for r in recs], [r["pps_p75"] - r["pps"] for r in recs]]
    colors = ["tab:orange" if r["peer"] else "tab:blue" for r in recs]
    fig, ax = plt.subplots(figsize=(9, 0.3 * len(recs) + 1.2))
    ax.barh(range(len(recs)), pps, xerr=err, color=colors)
    ax.set_yticks(range(len(recs)), labels, fontsize=7)
    ax.invert_yaxis()
    ax.set_xlabel("persons per second (median, IQR bars); orange = peer")
    ax.set_title(f"{result['machine']['cpu']}, load {result['load_average_before']}", fontsize=8)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)
    return path


def write_outputs(result: dict, out_dir: str) -> dict:
    return {"json": write_json(os.path.join(out_dir, "bench.json"), result),
            "markdown": write_text(os.path.join(out_dir, "bench.md"), markdown(result)),
            "chart": bar_chart(result, os.path.join(out_dir, "bench.png"))}
