"""Agreement of every exported format with the Keras fp32 model, as JSON and markdown.

Per format and crop set, one :func:`rsn_tf.export.core.compare` row:
- heatmaps: ``max_abs``/``mean_abs`` difference, and ``rel_max`` = max_abs / max |Keras heatmap|
  (target <= 1e-4 for fp32 formats).
- keypoints: both heatmap sets decoded by the same :class:`rsn_tf.codec.MegviiHeatmapCodec` in the
  model's recipe (:class:`rsn_tf.export.core.DecodeChoice`); the distance between the two keypoints of
  every (crop, joint), in heatmap pixels (crop pixels / stride) — mean, p95, max. Target for int8:
  mean <= 1 heatmap pixel.
- ``saved_model`` also reports its in-graph keypoints against the codec's on the same heatmaps.

Targets are the ``target`` bounds of :data:`rsn_tf.export.core.FORMAT_TABLE`. The reference is the Keras
model as trained (all heads built, final head read), so the deploy rewrite
(:func:`rsn_tf.export.graph.deploy_model`) is covered by every row.
"""
from __future__ import annotations

import os

import numpy as np

from rsn_tf.export.core import FORMAT_TABLE, DecodeChoice, artifact_path, compare, decode_agreement


def target_check(fmt: str, row: dict) -> dict | None:
    """{"field", "bound", "value", "ok"} for formats with a target, else None."""
    target = FORMAT_TABLE[fmt].target
    return target.check(row) if target else None


def agreement_report(reference_fn, runners: dict, crop_sets: dict[str, np.ndarray], codec, batch: int = 8,
                     extra: dict | None = None) -> dict:
    """Compare every runner with ``reference_fn`` on every crop set.

    reference_fn: normalised crops [B,H,W,3] -> heatmaps [B,h,w,K]. runners: {format: Runner} (see
    :mod:`rsn_tf.export.runtimes`; each is fed batches of ``batch`` or fewer). crop_sets: {name: normalised
    crops [M,H,W,3]}. codec: the :class:`rsn_tf.codec.MegviiHeatmapCodec` both sides are decoded with.
    """
    report = {"decode": {"mode": codec.decode_mode, "kernel": codec.decode_kernel}, "sets": {}, **(extra or {})}
    for set_name, crops in crop_sets.items():
        ref = _batched(reference_fn, crops, batch)
        rows = {}
        for fmt, runner in runners.items():
            row = compare(ref, _batched(runner.predict, crops, batch), codec)
            row["target"] = target_check(fmt, row)
            rows[fmt] = row
        report["sets"][set_name] = rows
    report["all_targets_met"] = all(r["target"]["ok"] for rows in report["sets"].values()
                                    for r in rows.values() if r["target"])
    return report


def _batched(fn, x, batch):
    return np.concatenate([np.asarray(fn(x[i:i + batch])) for i in range(0, len(x), batch)])


def report_markdown(report: dict) -> str:
    """The agreement report as markdown tables (one per crop set)."""
    lines = ["# Export agreement with Keras fp32", ""]
    for key in ("model", "weights", "calibration", "note"):
        if report.get(key):
            lines.append(f"- {key}: {report[key]}")
    d = report["decode"]
    recipe = f"recipe {d['recipe']} ({d['recipe_from']}), " if "recipe" in d else ""
    lines += [f"- keypoints decoded by MegviiHeatmapCodec(mode={d['mode']}, kernel={d['kernel']}) on both sides "
              f"({recipe}kernel from {d.get('kernel_from', '?')}); distances in heatmap pixels (1 hm px = 4 crop px)",
              ""]
    for set_name, rows in report["sets"].items():
        first = next(iter(rows.values()), None)
        n = f" ({first['crops']} crops, {first['keypoints']} keypoints)" if first else ""
        lines += [f"## {set_name}{n}", "",
                  "| format | heatmap max abs | heatmap mean abs | rel max | kp mean (hm px) | kp p95 | kp max | target |",
                  "|---|---|---|---|---|---|---|---|"]
        for fmt, r in rows.items():
            t = r["target"]
            target = "—" if not t else f"{t['field']} ≤ {t['bound']:g}: {'PASS' if t['ok'] else 'FAIL'}"
            lines.append(f"| {fmt} | {r['heatmap_max_abs']:.3g} | {r['heatmap_mean_abs']:.3g} | {r['heatmap_rel_max']:.2e} "
                         f"| {r['keypoint_mean_hm_px']:.3f} | {r['keypoint_p95_hm_px']:.3f} | {r['keypoint_max_hm_px']:.3f} "
                         f"| {target} |")
        lines.append("")
    if "in_graph_decode" in report:
        g = report["in_graph_decode"]
        lines += [f"## SavedModel in-graph decode ({d['mode']}) vs MegviiHeatmapCodec (same heatmaps)", "",
                  f"- {g['keypoints']} keypoints: mean {g['mean_crop_px']:.2e} crop px, max {g['max_crop_px']:.2e}, "
                  f"identical (<1e-3 px) {g['identical_fraction'] * 100:.1f}%; scores max diff {g['score_max_abs']:.2e}", ""]
    lines.append(f"All targets met: {'yes' if report['all_targets_met'] else 'NO'}")
    return "\n".join(lines) + "\n"


def write_agreement_report(model, out_dir: str, formats, crop_sets: dict[str, np.ndarray], decode: DecodeChoice,
                           extra: dict | None = None) -> dict:
    """Agreement of the exports under ``out_dir`` (see :mod:`rsn_tf.export.exporter`) with ``model`` (an
    :class:`rsn_tf.model.RSNModel`), keypoints decoded as ``decode`` says.

    Writes ``out_dir/agreement.json`` and ``agreement.md``; returns the report.
    """
    from rsn_tf.export.graph import heatmap_fn
    from rsn_tf.export.runtimes import load_runner
    from rsn_tf.io_utils import write_json, write_text
    from rsn_tf.model import inference_model

    cfg = model.rsn_config
    codec = decode.codec(cfg.input_size, cfg.heatmap_size)
    runners = {fmt: load_runner(FORMAT_TABLE[fmt].runtime, artifact_path(out_dir, fmt)) for fmt in formats}
    report = agreement_report(heatmap_fn(inference_model(model)), runners, crop_sets, codec,
                              extra={"model": model.name, **(extra or {})})
    report["decode"] = decode.to_dict()
    if "saved_model" in runners:  # in-graph keypoints vs the codec, on the SavedModel's own heatmaps
        sig = runners["saved_model"].signature
        crops = np.concatenate(list(crop_sets.values()))
        outs = [{k: v.numpy() for k, v in sig(crops=crops[i:i + 8]).items()} for i in range(0, len(crops), 8)]
        hm, kp, sc = (np.concatenate([o[k] for o in outs]) for k in ("heatmaps", "keypoints", "scores"))
        report["in_graph_decode"] = decode_agreement(kp, sc, *codec.decode(hm))
    write_json(os.path.join(out_dir, "agreement.json"), report)
    write_text(os.path.join(out_dir, "agreement.md"), report_markdown(report))
    return report
