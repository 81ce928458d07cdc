"""``export_model``: one trained RSN -> every requested format, each validated before it is reported good.

Layout of ``out_dir``::

    saved_model/1/            TF-Serving versioned SavedModel (uint8 ``serving_default`` + ``normalized``)
    rsn_fp32.tflite           TFLite float32
    rsn_fp16.tflite           TFLite float16 weights
    rsn_int8.tflite           TFLite full-integer int8 (float I/O), per-channel
    rsn_int8_io.tflite        same with int8 input/output (only when asked for: tflite_int8_io)
    rsn.onnx                  ONNX (tf2onnx, opset 17)
    rsn_int8.onnx             ONNX QDQ int8 (only when asked for: onnx_int8)
    manifest.json             per format: path, bytes, op counts, validation numbers, ok
    agreement.json / .md      the agreement report (see :mod:`rsn_tf.export.agreement`)

Validation of each export: it loads in its own runtime, its op list passes the checks (no Flex/custom,
no TILE, one resize op per resize), and its heatmaps on the validation crops match the Keras fp32
model within the bound of :data:`VALIDATION`.
"""
from __future__ import annotations

import os
import time

import numpy as np

from rsn_tf.io_utils import write_json

FORMATS = ("saved_model", "tflite_fp32", "tflite_fp16", "tflite_int8", "onnx")
# Formats exported only on request (not in "all"): int8 with int8 input/output tensors (no float
# QUANTIZE/DEQUANTIZE at the ends; the caller quantises with the input tensor's scale/zero point).
# onnx_int8: onnxruntime static QDQ quantisation of the ONNX export (per-channel, uint8 activations).
EXTRA_FORMATS = ("tflite_int8_io", "onnx_int8")
# Export-time bounds, met by any model (random weights included): (measure, bound). rel_max = max |diff| /
# max |Keras|; mean_over_range = mean |diff| / (max - min of Keras): int8 quantisation noise against the
# output range it is quantised over (one int8 step is 1/255 of it; 0.05 allows ~13 steps of accumulated
# error, and catches a broken calibration). The keypoint targets are judged in the agreement report
# (agreement.TARGETS).
VALIDATION = {"saved_model": ("heatmap_rel_max", 1e-4), "tflite_fp32": ("heatmap_rel_max", 1e-4),
              "onnx": ("heatmap_rel_max", 1e-4), "tflite_fp16": ("heatmap_rel_max", 1e-2),
              "tflite_int8": ("heatmap_mean_over_range", 0.05), "tflite_int8_io": ("heatmap_mean_over_range", 0.05),
              "onnx_int8": ("heatmap_mean_over_range", 0.05)}
FILES = {"saved_model": os.path.join("saved_model", "1"), "tflite_fp32": "rsn_fp32.tflite",
         "tflite_fp16": "rsn_fp16.tflite", "tflite_int8": "rsn_int8.tflite", "tflite_int8_io": "rsn_int8_io.tflite",
         "onnx": "rsn.onnx", "onnx_int8": "rsn_int8.onnx"}
RUNTIME_OF = {"saved_model": "saved_model", "tflite_fp32": "tflite", "tflite_fp16": "tflite",
              "tflite_int8": "tflite", "tflite_int8_io": "tflite", "onnx": "onnx", "onnx_int8": "onnx",
              "keras": "keras"}


def parse_formats(text: str | list[str]) -> list[str]:
    """``"all"`` (= :data:`FORMATS`) or a comma list of :data:`FORMATS` and :data:`EXTRA_FORMATS` -> list
    (order kept, duplicates dropped)."""
    items = text.split(",") if isinstance(text, str) else list(text)
    items = [s.strip() for s in items if s.strip()]
    if items == ["all"]:
        return list(FORMATS)
    bad = [s for s in items if s not in FORMATS + EXTRA_FORMATS]
    if bad or not items:
        raise ValueError(f"--formats: unknown {bad or items}; expected 'all' or a comma list of "
                         f"{', '.join(FORMATS + EXTRA_FORMATS)}")
    return list(dict.fromkeys(items))


def artifact_path(out_dir: str, fmt: str) -> str:
    return os.path.join(out_dir, FILES[fmt])


def file_size(path: str) -> int:
    """Bytes of a file, or of every file under a directory (SavedModel)."""
    if os.path.isdir(path):
        return sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(path) for f in fs)
    return os.path.getsize(path)


def export_model(model, out_dir: str, formats, representative: np.ndarray, validation: np.ndarray,
                 decode_kernel: int = 5, opset: int = 17, input_order: str = "bgr", log=print) -> dict:
    """Export ``model`` (an :class:`rsn_tf.model.RSNModel`) to ``formats`` under ``out_dir``.

    representative: normalised crops [M,H,W,3] float32 for int8 calibration. validation: normalised
    crops [V,H,W,3] the exports are checked on. input_order: channel order of the SavedModel's uint8
    ``images`` ("bgr", the project's OpenCV convention, or "rgb"). Returns (and writes) the manifest;
    raises ValueError if any export fails validation (after writing the manifest).
    """
    from rsn_tf.complexity import count_macs
    from rsn_tf.export.graph import deploy_model, num_resizes
    from rsn_tf.model import inference_model

    formats = parse_formats(formats)
    os.makedirs(out_dir, exist_ok=True)
    validation = np.asarray(validation, np.float32)
    reference = inference_model(model).predict(validation, verbose=0, batch_size=8)
    scale = float(np.abs(reference).max()) or 1.0
    deployed = deploy_model(model)
    rewrite = float(np.abs(deployed.predict(validation, verbose=0, batch_size=8) - reference).max()) / scale
    if not rewrite <= VALIDATION["saved_model"][1]:  # the deploy rewrites are exact up to float rounding
        raise ValueError(f"deploy graph differs from the model: relative max difference {rewrite:.2e}")
    resizes = num_resizes(deployed)
    manifest = {
        "model": model.name, "config": model.rsn_config.to_dict(), "metadata": model.metadata,
        "input": {"shape": [None, *model.rsn_config.input_size, 3], "dtype": "float32 normalised (TFLite/ONNX); "
                  f"uint8 {input_order.upper()} 0..255 for the SavedModel serving_default"},
        "deploy_rewrite_rel_max": rewrite, "deploy_macs": count_macs(deployed), "resizes": resizes,
        "representative_crops": int(len(representative)), "validation_crops": int(len(validation)),
        "formats": {},
    }
    for fmt in formats:
        path = artifact_path(out_dir, fmt)
        t0 = time.perf_counter()
        log(f"[export] {fmt} -> {path}")
        _export_one(fmt, deployed, path, representative, decode_kernel, opset, input_order)
        entry = {"path": os.path.relpath(path, out_dir), "bytes": file_size(path),
                 "export_s": round(time.perf_counter() - t0, 1)}
        entry.update(_validate(fmt, path, deployed, validation, reference, resizes, decode_kernel, input_order))
        manifest["formats"][fmt] = entry
        status = "ok" if entry["ok"] else "FAILED: " + "; ".join(entry["problems"])
        log(f"[export] {fmt}: {entry['bytes'] / 1e6:.2f} MB, heatmap diff rel max {entry['heatmap_rel_max']:.2e} "
            f"mean/range {entry['heatmap_mean_over_range']:.2e}, {status}")
    write_json(os.path.join(out_dir, "manifest.json"), manifest)
    failed = [f for f, e in manifest["formats"].items() if not e["ok"]]
    if failed:
        raise ValueError(f"export validation failed for {failed}; see {os.path.join(out_dir, 'manifest.json')}")
    return manifest


def _export_one(fmt, deployed, path, representative, decode_kernel, opset, input_order):
    if fmt == "saved_model":
        from rsn_tf.export.saved_model import save_serving_model
        save_serving_model(deployed, path, decode_kernel, input_order)
    elif fmt.startswith("tflite_"):
        from rsn_tf.export.tflite import export_tflite
        export_tflite(deployed, path, fmt.split("_")[1], representative, int8_io=fmt == "tflite_int8_io")
    elif fmt == "onnx":
        from rsn_tf.export.onnx import export_onnx
        export_onnx(deployed, path, opset)
    elif fmt == "onnx_int8":
        import tempfile

        from rsn_tf.export.onnx import export_onnx, quantize_onnx
        with tempfile.TemporaryDirectory(prefix="rsn_onnx_") as tmp:
            quantize_onnx(export_onnx(deployed, os.path.join(tmp, "fp32.onnx"), opset), path, representative)


def _validate(fmt, path, deployed, validation, reference, resizes, decode_kernel, input_order) -> dict:
    from rsn_tf.export.runtimes import load_runner

    problems = []
    ops = None
    partitions = None
    if fmt.startswith("tflite_"):
        from rsn_tf.export.tflite import check_ops, op_counts, xnnpack_partitions
        ops = op_counts(path)
        problems += check_ops(ops, resizes, os.path.basename(path))
        partitions = xnnpack_partitions(path)
    elif fmt.startswith("onnx"):
        from rsn_tf.export.onnx import check_onnx_ops, onnx_op_counts
        ops = onnx_op_counts(path)
        problems += check_onnx_ops(ops, resizes, os.path.basename(path))
    out = load_runner(RUNTIME_OF[fmt], path, batch=len(validation)).predict(validation)
    entry = {"ops": ops, "xnnpack_partitions": partitions, "heatmap_rel_max": float("inf"),
             "heatmap_mean_over_range": float("inf")}
    if out.shape != reference.shape or not np.all(np.isfinite(out)):
        problems.append(f"{fmt}: output shape {out.shape} / finite={np.all(np.isfinite(out))}, "
                        f"expected {reference.shape} finite")
    else:
        diff = np.abs(out - reference)
        entry["heatmap_rel_max"] = float(diff.max()) / (float(np.abs(reference).max()) or 1.0)
        entry["heatmap_mean_over_range"] = float(diff.mean()) / (float(reference.max() - reference.min()) or 1.0)
        measure, bound = VALIDATION[fmt]
        if not entry[measure] <= bound:
            problems.append(f"{fmt}: {measure} {entry[measure]:.2e} > {bound:g}")
    if fmt == "saved_model":
        entry.update(_validate_serving(path, deployed, decode_kernel, input_order, problems))
    entry["problems"] = problems
    entry["ok"] = not problems
    return entry


def _validate_serving(path, deployed, decode_kernel, input_order, problems) -> dict:
    """The uint8 signature (in-graph preprocessing) and the in-graph decode against numpy twins."""
    from rsn_tf.codec import MegviiHeatmapCodec
    from rsn_tf.data.preprocess import preprocess
    from rsn_tf.export.saved_model import load_serving_model

    cfg = deployed.rsn_config
    images = np.random.default_rng(0).integers(0, 256, (2, *cfg.input_size, 3), dtype=np.uint8)
    sig = load_serving_model(path)["serving_default"]
    out = {k: v.numpy() for k, v in sig(images=images).items()}
    ref = deployed.predict(preprocess(images, cfg.preprocessing, input_order), verbose=0)
    uint8_rel = float(np.abs(out["heatmaps"] - ref).max()) / (float(np.abs(ref).max()) or 1.0)
    if not uint8_rel <= VALIDATION["saved_model"][1]:
        problems.append(f"saved_model serving_default (uint8): heatmap rel max diff {uint8_rel:.2e}")
    codec = MegviiHeatmapCodec(cfg.input_size, decode_kernel=decode_kernel)
    kpts, scores = codec.decode(out["heatmaps"])
    decode = in_graph_decode_agreement(out["keypoints"], out["scores"], kpts, scores)
    return {"serving_default_rel_max": uint8_rel, "in_graph_decode": decode}


def in_graph_decode_agreement(kpts_graph, scores_graph, kpts_codec, scores_codec) -> dict:
    """How far in-graph keypoints/scores are from :class:`MegviiHeatmapCodec` on the same heatmaps."""
    d = np.linalg.norm(np.asarray(kpts_graph) - np.asarray(kpts_codec), axis=-1).ravel()
    return {"keypoints": int(d.size), "mean_crop_px": float(d.mean()), "max_crop_px": float(d.max()),
            "identical_fraction": float((d < 1e-3).mean()),
            "score_max_abs": float(np.abs(np.asarray(scores_graph) - np.asarray(scores_codec)).max())}


def load_model(weights: str | None = None, preset: str | None = None, input_size: str | None = None):
    """An RSNModel from a ``.keras`` file, or a preset with random weights (for speed work only)."""
    if weights:
        from rsn_tf.inference.estimator import load_model as load_keras

        model = load_keras(weights)
        if not hasattr(model, "rsn_config"):
            raise ValueError(f"{weights}: not an rsn_tf RSN model (no rsn_config)")
        return model
    from rsn_tf.model import build_rsn

    return build_rsn(preset, input_size=input_size, metadata={"weights": "random (untrained)"})


def load_exported_estimator(out_dir: str, fmt: str = "tflite_int8", threads: int = 1, **estimator_kwargs):
    """A :class:`rsn_tf.inference.PoseEstimator` running export ``fmt`` of ``out_dir``.

    Boxes, crops, flip test, decoding and the inverse affine are the estimator's shared numpy code; only
    the network call is the exported model (``rsn_tf.export.runtimes``). Config and keypoint metadata come
    from ``out_dir/manifest.json``.
    """
    from rsn_tf.export.runtimes import load_runner
    from rsn_tf.inference.estimator import PoseEstimator, resolve_keypoint_spec
    from rsn_tf.io_utils import read_json
    from rsn_tf.model import ModelConfig

    manifest = read_json(os.path.join(out_dir, "manifest.json"), "export manifest")
    if fmt not in manifest.get("formats", {}):
        raise ValueError(f"{out_dir}: no {fmt!r} export (have {sorted(manifest.get('formats', {}))})")
    config = ModelConfig.from_dict(manifest["config"])
    runner = load_runner(RUNTIME_OF[fmt], artifact_path(out_dir, fmt), threads=threads)
    estimator_kwargs.setdefault("keypoints", resolve_keypoint_spec(config.num_keypoints, manifest.get("metadata")))
    return PoseEstimator(runner.predict, config=config, **estimator_kwargs)


def export_and_report(model, out_dir: str, formats, calibration: np.ndarray, check_sets: dict[str, np.ndarray],
                      decode_kernel: int = 5, opset: int = 17, input_order: str = "bgr", log=print,
                      extra: dict | None = None) -> tuple[dict, dict | None]:
    """:func:`export_model` (validated on the first 8 crops of the first check set, or of ``calibration``)
    then, if ``check_sets`` is not empty, the agreement report on them. Returns (manifest, report)."""
    from rsn_tf.export.agreement import write_agreement_report

    formats = parse_formats(formats)
    first = next(iter(check_sets.values()), calibration)
    manifest = export_model(model, out_dir, formats, calibration, first[:8], decode_kernel, opset, input_order, log)
    report = None
    if check_sets:
        log(f"[export] agreement report on {', '.join(f'{k} ({len(v)})' for k, v in check_sets.items())}")
        report = write_agreement_report(model, out_dir, formats, check_sets, decode_kernel, extra)
    return manifest, report


def export_with_crops(model, out_dir: str, formats="all", calib_coco: str | None = None,
                      calib_images: str | None = None, calib_synth: str | None = None, calib_count: int = 64,
                      check_coco: str | None = None, check_synth: int = 16, decode_kernel: int = 5, opset: int = 17,
                      input_order: str = "bgr", weights_note: str = "", log=print) -> tuple[dict, dict | None]:
    """:func:`export_and_report` with crops drawn from the input pipeline (what ``rsn export`` and the
    demo call).

    Calibration (int8): ``calib_coco`` (a user's COCO keypoints json, images beside it or in
    ``calib_images``), else ``calib_synth`` (a folder written by ``rsn synth``), else fresh synthetic
    images (seed 0); ``calib_count`` crops. Agreement report: real crops of ``check_coco`` (if given) and
    ``check_synth`` fresh synthetic images of seed 1000 (unseen by calibration).
    """
    from rsn_tf.export.crops import coco_crops, synthetic_crops

    cfg = model.rsn_config
    if calib_coco:
        calibration, source = coco_crops(calib_coco, cfg, calib_images, calib_count), calib_coco
    elif calib_synth:
        calibration, source = synthetic_crops(cfg, root=calib_synth, limit=calib_count), calib_synth
    else:
        n_images = max(4, calib_count // 2)
        calibration = synthetic_crops(cfg, num_images=n_images, seed=0, limit=calib_count)
        source = f"synthetic set (seed 0, {n_images} images)"
    checks = {}
    if check_coco:
        checks["coco (real)"] = coco_crops(check_coco, cfg)
    if check_synth > 0:
        checks["synthetic"] = synthetic_crops(cfg, num_images=check_synth, seed=1000)
    extra = {"weights": weights_note or model.metadata.get("weights", ""),
             "calibration": f"{len(calibration)} crops from {source}"}
    return export_and_report(model, out_dir, formats, calibration, checks, decode_kernel, opset, input_order, log,
                             extra)
