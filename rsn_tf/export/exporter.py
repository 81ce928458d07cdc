"""``export_model``: one trained RSN -> every requested format, each validated before it is reported good.

Layout of ``out_dir`` (file names: :data:`rsn_tf.export.core.FORMAT_TABLE`)::

    saved_model/1/            TF-Serving versioned SavedModel (uint8 ``serving_default`` + ``normalized``)
    rsn_fp32.tflite           TFLite float32
    rsn_fp16.tflite           TFLite float16 weights
    rsn_int8.tflite           TFLite full-integer int8 (float I/O), per-channel
    rsn_int8_io.tflite        same with int8 input/output (only when asked for: tflite_int8_io)
    rsn.onnx                  ONNX (tf2onnx, opset 17)
    rsn_int8.onnx             ONNX QDQ int8 (only when asked for: onnx_int8)
    manifest.json             config, metadata, the decode (recipe, mode, kernel); per format: path, bytes,
                              op counts, validation numbers, ok
    agreement.json / .md      the agreement report (see :mod:`rsn_tf.export.agreement`)

Validation of each export: it loads in its own runtime, its op list passes the checks (no Flex/custom,
no TILE, one resize op per resize), and its heatmaps on the validation crops match the Keras fp32
model within the format's ``validation`` bound (:data:`rsn_tf.export.core.FORMAT_TABLE`).

Everything the export decides is one :class:`rsn_tf.export.core.ExportConfig`.
"""
from __future__ import annotations

import os
import time

import numpy as np

from rsn_tf.export.core import (FORMAT_TABLE, FP32_REL_MAX, DecodeChoice, ExportConfig, artifact_path, compare,
                                decode_agreement, file_size, resolve_decode)
from rsn_tf.io_utils import write_json


def _require_rsn_model(model):
    from rsn_tf.model import RSNModel

    if not isinstance(model, RSNModel):
        raise ValueError(f"export expects an rsn_tf RSNModel (a .keras file written by rsn_tf), got "
                         f"{type(model).__name__}")


def model_decode(model, config: ExportConfig) -> DecodeChoice:
    """The decode of ``model``'s exports: ``config.recipe``/``config.decode_kernel`` when given, else the
    model's recipe (from its metadata) and its keypoint layout's kernel."""
    return resolve_decode(model.rsn_config.num_keypoints, model.metadata, config.recipe, config.decode_kernel)


def export_model(model, out_dir: str, representative: np.ndarray, validation: np.ndarray,
                 config: ExportConfig = ExportConfig(), log=print) -> dict:
    """Export ``model`` (an :class:`rsn_tf.model.RSNModel`) to ``config.formats`` under ``out_dir``.

    representative: normalised crops [M,H,W,3] float32 for int8 calibration. validation: normalised
    crops [V,H,W,3] the exports are checked on. Returns (and writes) the manifest; raises ValueError if
    any export fails validation (after writing the manifest).
    """
    from rsn_tf.complexity import count_macs
    from rsn_tf.export.graph import deploy_model, heatmap_fn, num_resizes
    from rsn_tf.model import inference_model

    _require_rsn_model(model)
    decode = model_decode(model, config)
    os.makedirs(out_dir, exist_ok=True)
    validation = np.asarray(validation, np.float32)
    reference = heatmap_fn(inference_model(model))(validation)
    deployed = deploy_model(model)
    deployed_fn = heatmap_fn(deployed)
    rewrite = compare(reference, deployed_fn(validation))["heatmap_rel_max"]
    if not rewrite <= FP32_REL_MAX:  # the deploy rewrites are exact up to float rounding
        raise ValueError(f"deploy graph differs from the model: relative max difference {rewrite:.2e}")
    resizes = num_resizes(deployed)
    cfg = model.rsn_config
    manifest = {
        "model": model.name, "config": cfg.to_dict(), "metadata": model.metadata, "decode": decode.to_dict(),
        "input": {"shape": [None, *cfg.input_size, 3], "dtype": "float32 normalised (TFLite/ONNX); "
                  f"uint8 {config.input_order.upper()} 0..255 for the SavedModel serving_default"},
        "deploy_rewrite_rel_max": rewrite, "deploy_macs": count_macs(deployed), "resizes": resizes,
        "representative_crops": int(len(representative)), "validation_crops": int(len(validation)),
        "formats": {},
    }
    log(f"[export] decode: recipe {decode.recipe} ({decode.recipe_from}), kernel {decode.kernel} "
        f"({decode.kernel_from}: {decode.layout})")
    for fmt in config.formats:
        path = artifact_path(out_dir, fmt)
        t0 = time.perf_counter()
        log(f"[export] {fmt} -> {path}")
        _export_one(fmt, deployed, path, representative, decode, config)
        entry = {"path": os.path.relpath(path, out_dir), "bytes": file_size(path),
                 "export_s": round(time.perf_counter() - t0, 1)}
        entry.update(_validate(fmt, path, deployed, deployed_fn, validation, reference, resizes, decode, config))
        manifest["formats"][fmt] = entry
        status = "ok" if entry["ok"] else "FAILED: " + "; ".join(entry["problems"])
        log(f"[export] {fmt}: {entry['bytes'] / 1e6:.2f} MB, heatmap diff rel max {entry['heatmap_rel_max']:.2e} "
            f"mean/range {entry['heatmap_mean_over_range']:.2e}, {status}")
    write_json(os.path.join(out_dir, "manifest.json"), manifest)
    failed = [f for f, e in manifest["formats"].items() if not e["ok"]]
    if failed:
        raise ValueError(f"export validation failed for {failed}; see {os.path.join(out_dir, 'manifest.json')}")
    return manifest


def _export_one(fmt, deployed, path, representative, decode: DecodeChoice, config: ExportConfig):
    if fmt == "saved_model":
        from rsn_tf.export.saved_model import save_serving_model
        save_serving_model(deployed, path, decode.kernel, config.input_order, decode.mode)
    elif fmt.startswith("tflite_"):
        from rsn_tf.export.tflite import export_tflite
        export_tflite(deployed, path, fmt.split("_")[1], representative, int8_io=fmt == "tflite_int8_io")
    elif fmt == "onnx":
        from rsn_tf.export.onnx import export_onnx
        export_onnx(deployed, path, config.opset)
    elif fmt == "onnx_int8":
        import tempfile

        from rsn_tf.export.onnx import export_onnx, quantize_onnx
        with tempfile.TemporaryDirectory(prefix="rsn_onnx_") as tmp:
            quantize_onnx(export_onnx(deployed, os.path.join(tmp, "fp32.onnx"), config.opset), path, representative)
    else:
        raise ValueError(f"unknown export format {fmt!r}")


def _validate(fmt, path, deployed, deployed_fn, validation, reference, resizes, decode, config) -> dict:
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
    out = load_runner(FORMAT_TABLE[fmt].runtime, path, batch=len(validation)).predict(validation)
    entry = {"ops": ops, "xnnpack_partitions": partitions, "heatmap_rel_max": float("inf"),
             "heatmap_mean_over_range": float("inf")}
    if out.shape != reference.shape or not np.all(np.isfinite(out)):
        problems.append(f"{fmt}: output shape {out.shape} / finite={np.all(np.isfinite(out))}, "
                        f"expected {reference.shape} finite")
    else:
        row = compare(reference, out)
        entry["heatmap_rel_max"] = row["heatmap_rel_max"]
        entry["heatmap_mean_over_range"] = row["heatmap_mean_over_range"]
        check = FORMAT_TABLE[fmt].validation.check(row)
        if not check["ok"]:
            problems.append(f"{fmt}: {check['field']} {check['value']:.2e} > {check['bound']:g}")
    if fmt == "saved_model":
        entry.update(_validate_serving(path, deployed.rsn_config, deployed_fn, decode, config.input_order, problems))
    entry["problems"] = problems
    entry["ok"] = not problems
    return entry


def _validate_serving(path, cfg, deployed_fn, decode: DecodeChoice, input_order, problems) -> dict:
    """The uint8 signature (in-graph preprocessing) and the in-graph decode against numpy twins."""
    from rsn_tf.data.preprocess import preprocess
    from rsn_tf.export.saved_model import load_serving_model

    images = np.random.default_rng(0).integers(0, 256, (2, *cfg.input_size, 3), dtype=np.uint8)
    sig = load_serving_model(path)["serving_default"]
    out = {k: v.numpy() for k, v in sig(images=images).items()}
    ref = deployed_fn(preprocess(images, cfg.preprocessing, input_order))
    uint8 = FORMAT_TABLE["saved_model"].validation.check(compare(ref, out["heatmaps"]))
    if not uint8["ok"]:
        problems.append(f"saved_model serving_default (uint8): heatmap rel max diff {uint8['value']:.2e}")
    kpts, scores = decode.codec(cfg.input_size, cfg.heatmap_size).decode(out["heatmaps"])
    return {"serving_default_rel_max": uint8["value"],
            "in_graph_decode": decode_agreement(out["keypoints"], out["scores"], kpts, scores)}


def load_exported_estimator(out_dir: str, fmt: str = "tflite_int8", threads: int = 1, **estimator_kwargs):
    """A :class:`rsn_tf.inference.PoseEstimator` running export ``fmt`` of ``out_dir``.

    Boxes, crops, flip test, decoding and the inverse affine are the estimator's shared numpy code; only
    the network call is the exported model (``rsn_tf.export.runtimes``). Config, keypoint metadata and the
    decode (recipe, kernel) come from ``out_dir/manifest.json``; keyword arguments override them.
    """
    from rsn_tf.export.runtimes import load_runner
    from rsn_tf.inference.estimator import PoseEstimator, resolve_keypoint_spec
    from rsn_tf.io_utils import read_json
    from rsn_tf.model import ModelConfig

    manifest = read_json(os.path.join(out_dir, "manifest.json"), "export manifest")
    if fmt not in manifest.get("formats", {}):
        raise ValueError(f"{out_dir}: no {fmt!r} export (have {sorted(manifest.get('formats', {}))})")
    config = ModelConfig.from_dict(manifest["config"])
    metadata = manifest.get("metadata")
    decode = manifest.get("decode") or resolve_decode(config.num_keypoints, metadata).to_dict()
    runner = load_runner(FORMAT_TABLE[fmt].runtime, artifact_path(out_dir, fmt), threads=threads)
    estimator_kwargs.setdefault("keypoints", resolve_keypoint_spec(config.num_keypoints, metadata))
    estimator_kwargs.setdefault("recipe", decode["recipe"])
    estimator_kwargs.setdefault("decode_kernel", decode["kernel"])
    return PoseEstimator(runner.predict, config=config, **estimator_kwargs)


def export_and_report(model, out_dir: str, calibration: np.ndarray, check_sets: dict[str, np.ndarray],
                      config: ExportConfig = ExportConfig(), log=print,
                      extra: dict | None = None) -> tuple[dict, dict | None]:
    """:func:`export_model` (validated on the first 8 crops of the first check set, or of ``calibration``)
    then, if ``check_sets`` is not empty, the agreement report on them. Returns (manifest, report)."""
    from rsn_tf.export.agreement import write_agreement_report

    first = next(iter(check_sets.values()), calibration)
    manifest = export_model(model, out_dir, calibration, first[:8], config, log)
    report = None
    if check_sets:
        log(f"[export] agreement report on {', '.join(f'{k} ({len(v)})' for k, v in check_sets.items())}")
        report = write_agreement_report(model, out_dir, config.formats, check_sets, model_decode(model, config),
                                        extra)
    return manifest, report


def export_with_crops(model, out_dir: str, config: ExportConfig = ExportConfig(),
                      log=print) -> tuple[dict, dict | None]:
    """:func:`export_and_report` with crops drawn from the input pipeline (what ``rsn export`` calls).

    Calibration (int8): ``config.calib_coco`` (a user's COCO keypoints json, images beside it or in
    ``calib_images``), else ``calib_synth`` (a folder written by ``rsn synth``), else fresh synthetic
    images (seed 0); ``calib_count`` crops. Agreement report: real crops of ``check_coco`` (if given) and
    ``check_synth`` fresh synthetic images of seed 1000 (unseen by calibration). Inputs, the model and the
    installed runtimes are checked before any crop is drawn.
    """
    from rsn_tf.export.crops import coco_crops, synthetic_crops

    config.check_inputs()
    _require_rsn_model(model)
    model_decode(model, config)  # a model whose keypoint layout cannot be resolved fails here, before any work
    cfg = model.rsn_config
    if config.calib_coco:
        calibration = coco_crops(config.calib_coco, cfg, config.calib_images, config.calib_count)
        source = config.calib_coco
    elif config.calib_synth:
        calibration = synthetic_crops(cfg, root=config.calib_synth, limit=config.calib_count)
        source = config.calib_synth
    else:
        n_images = max(4, config.calib_count // 2)
        calibration = synthetic_crops(cfg, num_images=n_images, seed=0, limit=config.calib_count)
        source = f"synthetic set (seed 0, {n_images} images)"
    checks = {}
    if config.check_coco:
        checks["coco (real)"] = coco_crops(config.check_coco, cfg)
    if config.check_synth > 0:
        checks["synthetic"] = synthetic_crops(cfg, num_images=config.check_synth, seed=1000)
    extra = {"weights": config.weights_note or model.metadata.get("weights", ""),
             "calibration": f"{len(calibration)} crops from {source}"}
    return export_and_report(model, out_dir, calibration, checks, config, log, extra)
