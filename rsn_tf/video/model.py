"""The pose network of ``rsn video`` in any runtime, behind the one :class:`rsn_tf.inference.PoseEstimator`.

``build_estimator(weights=... | export_dir=..., runtime=...)`` loads the network as a
:mod:`rsn_tf.export.runtimes` runner (Keras deploy graph, TFLite with XNNPACK, ONNX Runtime, SavedModel)
and hands its ``predict`` -- normalised crops [N, H, W, 3] float32 -> heatmaps [N, H/4, W/4, K] -- to a
``PoseEstimator`` as its network callable, exactly as ``rsn bench`` and the export agreement checks run
exports. Box padding, crops, flip test, decoding and the inverse affine are the estimator's shared code
for every runtime.

An export folder (``rsn export --out DIR``) is read through its ``manifest.json``: the model config
(input size, keypoints, preprocessing), the metadata (keypoint layout, recipe) and the file of each format.
"""
from __future__ import annotations

import os

import numpy as np

#: Runtimes ``rsn video`` accepts: export formats (files under an export folder) and the Keras model itself.
RUNTIMES = ("tflite_int8", "tflite_fp32", "tflite_fp16", "tflite_int8_io", "onnx", "onnx_int8", "saved_model",
            "keras")


def runner_kind(runtime: str) -> str:
    """The :func:`rsn_tf.export.runtimes.load_runner` kind of a runtime name (``tflite_int8`` -> ``tflite``)."""
    if runtime not in RUNTIMES:
        raise ValueError(f"--runtime {runtime!r}: expected one of {', '.join(RUNTIMES)}")
    for kind in ("tflite", "onnx", "saved_model", "keras"):
        if runtime.startswith(kind):
            return kind
    raise AssertionError(runtime)


def build_estimator(weights: str | None = None, export_dir: str | None = None, runtime: str | None = None,
                    threads: int | None = None, recipe: str | None = None, config=None, **estimator_kwargs):
    """A :class:`PoseEstimator` whose network is ``runtime`` (default: ``keras`` for ``weights``,
    ``tflite_int8`` for ``export_dir``), and a dict describing it (for poses.json / summary.md).

    threads: the runtime's CPU threads (TFLite/ONNX per model; TF per process, set before TF runs).
    recipe: test recipe (default: the model metadata's, :func:`rsn_tf.recipes.default_recipe`).
    config: ModelConfig/preset/YAML for a weights-only file (as ``rsn infer --config``).
    """
    from rsn_tf.inference.estimator import PoseEstimator, resolve_keypoint_spec
    from rsn_tf.recipes import default_recipe

    if (weights is None) == (export_dir is None):
        raise ValueError("give exactly one of --weights MODEL or --export DIR")
    threads = int(threads) if threads else min(4, os.cpu_count() or 1)
    if threads < 1:
        raise ValueError(f"--threads must be >= 1 (got {threads})")
    if weights is not None:
        runtime = runtime or "keras"
        if runtime != "keras":
            raise ValueError(f"--runtime {runtime} runs an exported model: export it first "
                             f"(rsn export --weights {weights} --out DIR) and pass --export DIR")
        if not os.path.exists(weights):
            raise FileNotFoundError(f"model weights not found: {weights}")
        model_config, metadata, network, path = _keras_network(weights, threads, config)
    else:
        runtime = runtime or "tflite_int8"
        model_config, metadata, network, path = _export_network(export_dir, runtime, threads)
    spec = resolve_keypoint_spec(model_config.num_keypoints, metadata, estimator_kwargs.pop("keypoints", None))
    estimator = PoseEstimator(network, config=model_config, keypoints=spec,
                              recipe=recipe or default_recipe(metadata), **estimator_kwargs)
    estimator.metadata = dict(metadata or {})
    info = {"runtime": runtime, "threads": threads, "file": path,
            "input": "x".join(str(v) for v in model_config.input_size)}
    return estimator, info


def per_crop(predict):
    """``predict`` one crop at a time (batch 1): a TFLite interpreter re-allocates its tensors (and XNNPACK
    re-plans) whenever the batch size changes, which a video's varying number of people would do every few
    frames; on a CPU batch 1 costs no throughput. crops [N, H, W, 3] -> heatmaps [N, h, w, K]."""
    def run(crops):
        return np.concatenate([predict(crops[i:i + 1]) for i in range(len(crops))]) if len(crops) else predict(crops)
    return run


def _tf_threads(threads: int) -> None:
    """TF's thread pools are per process and fixed once TF has run an op: set them if still possible."""
    from rsn_tf.export.runtimes import set_tf_threads

    try:
        set_tf_threads(threads)
    except RuntimeError:  # TF already ran something in this process (e.g. a test session): keep its pools
        import logging
        logging.getLogger("rsn_tf.video").info("TF is already initialised; --threads does not apply to it")


def _keras_network(weights: str, threads: int, config):
    from rsn_tf.export.runtimes import KerasRunner

    _tf_threads(threads)
    from rsn_tf.weights import load_model

    if config is not None and isinstance(config, str) and not os.path.exists(config):
        from rsn_tf.model import preset_config
        config = preset_config(config)
    model = load_model(weights, config)
    if not hasattr(model, "rsn_config"):
        raise ValueError(f"{weights}: not an rsn_tf RSN model (no rsn_config)")
    runner = KerasRunner(model)
    return model.rsn_config, getattr(model, "metadata", None), runner.predict, weights


def _export_network(export_dir: str, runtime: str, threads: int):
    from rsn_tf.export.runtimes import load_runner
    from rsn_tf.io_utils import read_json
    from rsn_tf.model import ModelConfig

    manifest_path = os.path.join(export_dir, "manifest.json")
    if not os.path.isdir(export_dir):
        raise FileNotFoundError(f"export folder not found: {export_dir}")
    manifest = read_json(manifest_path, "export manifest (rsn export writes DIR/manifest.json)")
    formats = manifest.get("formats") or {}
    kind = runner_kind(runtime)
    if runtime == "keras":
        path = os.path.join(export_dir, "model.keras")
        if not os.path.exists(path):
            raise FileNotFoundError(f"{export_dir}: no model.keras for --runtime keras; pass --weights MODEL.keras")
        _tf_threads(threads)
    else:
        if runtime not in formats:
            raise ValueError(f"{manifest_path}: no {runtime!r} export (has {', '.join(sorted(formats)) or 'none'}); "
                             f"rsn export --formats {runtime} writes one")
        entry = formats[runtime]
        if not entry.get("ok", True):
            raise ValueError(f"{manifest_path}: the {runtime} export failed its validation "
                             f"({'; '.join(entry.get('problems', []))})")
        path = os.path.join(export_dir, entry["path"])
        if kind == "saved_model":
            _tf_threads(threads)
    runner = load_runner(kind, path, threads=threads)
    network = per_crop(runner.predict) if kind == "tflite" else runner.predict
    if "config" not in manifest:
        raise ValueError(f"{manifest_path}: no 'config' (the model config) in the manifest")
    return ModelConfig.from_dict(manifest["config"]), manifest.get("metadata"), network, path
