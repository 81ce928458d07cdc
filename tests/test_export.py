"""Export (SavedModel, TFLite fp32/fp16/int8, ONNX) and the pps benchmark on a tiny model.

One module-scoped export of every format feeds the format checks, the agreement report and the
benchmark test (which reuses the exports), so conversion runs once.
"""
import json
import os

import numpy as np
import pytest

from conftest import shared_path

for _module in ("ai_edge_litert", "onnxruntime", "tf2onnx"):  # the "export" extra of setup.py
    pytest.importorskip(_module)
from rsn_tf.codec import MegviiHeatmapCodec
from rsn_tf.complexity import count_macs
from rsn_tf.export.core import FORMATS, ExportConfig, parse_formats
from rsn_tf.model import ModelConfig, RSNModel, inference_model

TINY = ModelConfig(input_size=(64, 64), num_blocks=(1, 1, 1, 1), planes=(16, 32, 64, 128), stem_channels=16,
                   unit_channels=32, num_keypoints=17)


def _tiny_model(seed=0):
    import keras

    keras.utils.set_random_seed(seed)
    model = RSNModel(TINY, metadata={"preset": "tiny"})
    # Non-trivial BN statistics, so the BN folding and the up-conv rewrite are really exercised.
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            g, b, m, v = layer.get_weights()
            layer.set_weights([rng.uniform(0.5, 1.5, g.shape), rng.normal(0, 0.1, b.shape),
                               rng.normal(0, 0.1, m.shape), rng.uniform(0.5, 2.0, v.shape)])
    return model


def _x(n=3, seed=1):
    return np.random.default_rng(seed).normal(size=(n, *TINY.input_size, 3)).astype(np.float32)


# ------------------------------------------------------------------------------------------ graph
def test_deploy_model_is_exact_and_cheaper():
    from rsn_tf.export.graph import deploy_model, num_resizes

    model = _tiny_model()
    ref = inference_model(model)(_x()).numpy()
    plain = deploy_model(model, stem_space_to_depth=False)
    deployed = deploy_model(model)
    for d in (plain, deployed):
        out = d(_x()).numpy()
        assert np.abs(out - ref).max() / np.abs(ref).max() < 1e-5
        assert d.rsn_config.upconv_before_resize
        assert num_resizes(d) == 3  # the three global-net upsamples; the final head needs none
    assert count_macs(plain) < count_macs(inference_model(model))
    assert deployed.rsn_config.stem_space_to_depth and deployed.get_layer("stem_conv_conv").kernel.shape == (4, 4, 12, 16)
    # the 7x7 kernel zero-extended to 8x8: 64/49 of the stem conv's MACs
    stem = 32 * 32 * 16 * 3
    assert count_macs(deployed) - count_macs(plain) == stem * 64 - stem * 49
    # the deploy graph is an RSNModel: its config and metadata are constructor arguments, not patched on
    assert isinstance(deployed, RSNModel) and deployed.metadata == model.metadata
    final_only = deploy_model(inference_model(model))  # inference_model is an RSNModel (config + metadata)
    np.testing.assert_allclose(final_only(_x()).numpy(), deployed(_x()).numpy(), atol=1e-6)
    import keras

    with pytest.raises(ValueError, match="RSNModel"):
        deploy_model(keras.Model(model.input, model.outputs[-1]))


def _gaussian_maps(rng, n, h, w, k):
    """Peaks at random sub-pixel positions (no exact ties), some at the border, some all-negative maps."""
    ys, xs = np.mgrid[0:h, 0:w]
    maps = np.zeros((n, h, w, k), np.float32)
    for i in range(n):
        for j in range(k):
            cx, cy = rng.uniform(-1, w), rng.uniform(-1, h)
            maps[i, :, :, j] = 255 * np.exp(-((xs - cx) ** 2 + (ys - cy) ** 2) / (2 * rng.uniform(1, 3) ** 2))
    maps[0, :, :, 0] = -np.abs(maps[0, :, :, 0]) - 1.0  # no positive value: authors clip to (0, 0)
    return maps + rng.normal(0, 0.5, maps.shape).astype(np.float32)


def _edge_maps(n, h, w, k):
    """Maps that take the decodes' special branches: all zero, all negative, peaks on every border row and
    column and one pixel inside them (mmpose refines only where 1 < x < w-1 and 1 < y < h-1)."""
    ys, xs = np.mgrid[0:h, 0:w]
    maps = np.zeros((n, h, w, k), np.float32)
    peaks = [(0, 0), (1, 1), (2, 2), (w - 1, h - 1), (w - 2, h - 2), (w - 3, h - 3), (0, h // 2), (1, h // 2),
             (w // 2, 0), (w // 2, 1), (w - 1, h // 2), (w - 2, h // 2), (w // 2, h - 1), (w // 2, h - 2)]
    for i in range(n):
        for j in range(k):
            px, py = peaks[(i * k + j) % len(peaks)]
            sx, sy = (1 if (i + j) % 2 else -1), (1 if (i + 2 * j) % 4 < 2 else -1)
            cx, cy = px + 0.3 * sx, py + 0.2 * sy  # off the pixel centre: no exact gradient ties
            maps[i, :, :, j] = 255 * np.exp(-((xs - cx) ** 2 + (ys - cy) ** 2) / 4.5)
    maps[0, :, :, 0] = 0.0  # flat zero: mmpose's peak <= 0 branch (-1, -1) and the authors' clip to (0, 0)
    maps[0, :, :, 1] = -np.abs(maps[0, :, :, 1]) - 1.0  # all negative
    return maps


@pytest.mark.parametrize("mode", ["authors", "mmpose"])
@pytest.mark.parametrize("kernel", [5, 9])
def test_in_graph_decode_matches_codec(kernel, mode):
    from rsn_tf.export.graph import decode_heatmaps

    rng = np.random.default_rng(kernel)
    codec = MegviiHeatmapCodec((64, 48), decode_kernel=kernel, decode_mode=mode)
    for maps in (_gaussian_maps(rng, 6, 16, 12, 17), _edge_maps(4, 16, 12, 17)):
        kp, sc = (t.numpy() for t in decode_heatmaps(maps, (64, 48), kernel, mode))
        ref_kp, ref_sc = codec.decode(maps)
        np.testing.assert_allclose(kp, ref_kp, atol=1e-3)
        np.testing.assert_allclose(sc, ref_sc, atol=1e-4)
    # Noise maps: many near-equal values; float rounding of the blur may flip a rare near-tie.
    noise = rng.normal(0, 50, (4, 16, 12, 17)).astype(np.float32)
    kp, _ = (t.numpy() for t in decode_heatmaps(noise, (64, 48), kernel, mode))
    same = np.linalg.norm(kp - codec.decode(noise)[0], axis=-1) < 1e-3
    assert same.mean() >= 0.97
    with pytest.raises(ValueError, match="decode mode"):
        decode_heatmaps(noise, (64, 48), kernel, "udp")


# ------------------------------------------------------------------------------------------ export
@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """Every format of the tiny model, laid out as the benchmark's models/<name>/ folder."""
    from rsn_tf.export.crops import synthetic_crops
    from rsn_tf.export.exporter import export_and_report

    root = tmp_path_factory.mktemp("export")
    out = os.path.join(root, "models", "tiny")
    model = _tiny_model()
    synth = synthetic_crops(TINY, num_images=2, seed=5)
    checks = {"synthetic": synth}
    coco_json = os.path.join("..", "shared", "data", "coco_sample", "test_coco.json")
    if os.path.exists(coco_json):
        from rsn_tf.export.crops import coco_crops
        checks["coco"] = coco_crops(coco_json, TINY, limit=4)
    manifest, report = export_and_report(model, out, synth, checks, ExportConfig(), log=lambda *_: None)
    return dict(root=str(root), out=out, model=model, manifest=manifest, report=report, crops=synth)


def test_every_format_validated(exported):
    m = exported["manifest"]
    assert list(m["formats"]) == list(FORMATS)
    assert m["deploy_rewrite_rel_max"] < 1e-5
    for fmt, entry in m["formats"].items():
        assert entry["ok"], (fmt, entry["problems"])
        assert entry["bytes"] > 0 and os.path.exists(os.path.join(exported["out"], entry["path"]))
    f = m["formats"]
    assert f["tflite_fp16"]["bytes"] < 0.7 * f["tflite_fp32"]["bytes"]
    assert f["tflite_int8"]["bytes"] < 0.5 * f["tflite_fp32"]["bytes"]
    with open(os.path.join(exported["out"], "manifest.json")) as fh:
        assert json.load(fh)["formats"].keys() == m["formats"].keys()


def test_op_lists_native_one_resize_per_resize(exported):
    f = exported["manifest"]["formats"]
    for fmt in ("tflite_fp32", "tflite_fp16", "tflite_int8"):
        ops = f[fmt]["ops"]
        assert ops["RESIZE_BILINEAR"] == 3 and "TILE" not in ops and ops["SPACE_TO_DEPTH"] == 1
        assert not [o for o in ops if "FLEX" in o.upper() or "CUSTOM" in o.upper()]
        assert f[fmt]["xnnpack_partitions"] == 1  # the whole graph is one XNNPACK subgraph
    # int8: every conv is integer, the only float boundary is one QUANTIZE in and one DEQUANTIZE out
    assert f["tflite_int8"]["ops"].get("QUANTIZE") == 1 and f["tflite_int8"]["ops"].get("DEQUANTIZE") == 1
    assert f["onnx"]["ops"]["Resize"] == 3 and "Tile" not in f["onnx"]["ops"]
    # tf2onnx's NHWC<->NCHW Transposes around every RSB Split are folded away: only input and output remain
    assert f["onnx"]["ops"]["Transpose"] == 2 and f["onnx"]["ops"]["Split"] == 4


def test_tflite_int8_tensors_are_int8(exported):
    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(model_path=os.path.join(exported["out"], "rsn_int8.tflite"))
    conv_weights = [t for t in interp.get_tensor_details() if "conv" in t["name"].lower() and len(t["shape"]) == 4
                    and t["dtype"] == np.int8]
    assert conv_weights, "no int8 conv weights"
    per_channel = [t for t in conv_weights if len(t["quantization_parameters"]["scales"]) > 1]
    assert per_channel, "weights are not quantised per channel"


def test_agreement_report(exported):
    report = exported["report"]
    out = exported["out"]
    assert os.path.exists(os.path.join(out, "agreement.json"))
    md = open(os.path.join(out, "agreement.md")).read()
    for set_name, rows in report["sets"].items():
        assert set(rows) == set(FORMATS)
        assert f"## {set_name}" in md
        for fmt in ("saved_model", "tflite_fp32", "onnx"):  # the fp32 formats' agreement target, on any weights
            assert rows[fmt]["heatmap_rel_max"] <= 1e-4, (set_name, fmt, rows[fmt])
            assert rows[fmt]["target"]["ok"]
        assert rows["tflite_int8"]["keypoint_mean_hm_px"] >= 0  # judged strictly only on a trained model
        assert rows["tflite_fp16"]["heatmap_rel_max"] < 1e-2
    g = report["in_graph_decode"]
    assert g["identical_fraction"] >= 0.95 and g["keypoints"] > 0
    # a model trained here with no recipe in its metadata: the authors' recipe, COCO's kernel, recorded
    decode = {"recipe": "authors", "mode": "authors", "kernel": 5, "layout": "coco",
              "recipe_from": "model metadata", "kernel_from": "keypoint layout"}
    assert report["decode"] == decode and exported["manifest"]["decode"] == decode
    assert "recipe authors" in md


def test_saved_model_signatures(exported):
    import tensorflow as tf

    from rsn_tf.data.preprocess import preprocess
    from rsn_tf.export.graph import deploy_model

    sigs = tf.saved_model.load(os.path.join(exported["out"], "saved_model", "1")).signatures
    assert set(sigs) == {"serving_default", "normalized"}
    spec = sigs["serving_default"].structured_input_signature[1]["images"]
    assert spec.dtype == tf.uint8 and spec.shape.as_list() == [None, 64, 64, 3]
    images = np.random.default_rng(3).integers(0, 256, (2, 64, 64, 3), dtype=np.uint8)
    out = sigs["serving_default"](images=tf.constant(images))
    assert out["heatmaps"].shape == (2, 16, 16, 17) and out["keypoints"].shape == (2, 17, 2)
    assert out["scores"].shape == (2, 17)
    ref = deploy_model(exported["model"])(preprocess(images, TINY.preprocessing, "bgr")).numpy()
    assert np.abs(out["heatmaps"].numpy() - ref).max() <= 1e-4 * np.abs(ref).max()


def test_exported_models_run_in_pose_estimator(exported):
    """Any export plugs into PoseEstimator (shared boxes/crops/flip/decode/inverse affine)."""
    import cv2

    from rsn_tf.export.exporter import load_exported_estimator
    from rsn_tf.inference import PoseEstimator

    image = cv2.imread(shared_path("data", "coco_sample", "000000000785.jpg"))
    boxes = np.array([[280.79, 44.73, 218.7, 346.68]], np.float32)
    ref = PoseEstimator(exported["model"]).predict(image, boxes)[0]
    for fmt in ("tflite_fp32", "onnx", "tflite_int8"):
        pose = load_exported_estimator(exported["out"], fmt).predict(image, boxes)[0]
        assert pose.keypoints.shape == ref.keypoints.shape
        if fmt != "tflite_int8":  # fp32 exports: the same keypoints up to float rounding
            np.testing.assert_allclose(pose.keypoints, ref.keypoints, atol=1e-2)
    with pytest.raises(ValueError, match="tflite_int4"):
        load_exported_estimator(exported["out"], "tflite_int4")


# ------------------------------------------------------------------------------------------ bench
def test_bench_runs_and_output_well_formed(exported):
    from rsn_tf.bench.run import run_benchmark

    peers = []
    peer = os.path.join("..", "shared", "peers", "blazepose", "pose_landmark_full.tflite")
    if os.path.exists(peer):
        peers.append(peer)
    out = exported["root"]
    result = run_benchmark({"tiny": exported["model"]}, out, runtimes="keras,tflite_fp32,tflite_int8,onnx",
                           threads="1", batches="1,2", peers=peers, rounds=2, block_seconds=0.01, warmup=1,
                           reuse=True, log=lambda *_: None)
    recs = result["records"]
    assert len(recs) == 4 * 2 + len(peers)
    with open(os.path.join(out, "bench.json")) as fh:
        data = json.load(fh)
    assert data["records"] == recs
    for r in recs:
        assert r["pps"] > 0 and r["pps_p25"] <= r["pps"] <= r["pps_p75"]
        assert r["threads"] == 1 and r["batch"] in (1, 2) and r["gmacs"] > 0 and r["roofline_gflops"] > 0
        assert r["blocks"] == 2 and r["file_mb"] > 0
        if peers and not r["peer"]:
            assert set(r["ratio_to_peer"]) == {"pose_landmark_full"}
    md = open(os.path.join(out, "bench.md")).read()
    assert md.count("| tiny |") == 8 and "Roofline" in md
    png = open(os.path.join(out, "bench.png"), "rb").read()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"


# ------------------------------------------------------------------------------------------ CLI / input errors
def test_bad_arguments_are_named():
    from rsn_tf.bench.run import parse_list
    from rsn_tf.cli import main

    assert parse_formats("all") == list(FORMATS)
    assert parse_formats("onnx,tflite_int8,onnx") == ["onnx", "tflite_int8"]
    assert "tflite_int8_io" not in parse_formats("all") and "onnx_int8" not in parse_formats("all")
    with pytest.raises(ValueError, match="tflite_int4"):
        parse_formats("tflite_int4")
    with pytest.raises(ValueError, match="--threads"):
        parse_list("1,x", "threads", cast=int)
    with pytest.raises(ValueError, match="tensorrt"):
        parse_list("onnx,tensorrt", "runtimes", ("onnx",))
    assert parse_formats("all,onnx_int8") == [*FORMATS, "onnx_int8"]
    assert main(["export", "--weights", "/nonexistent/model.keras", "--out", "/tmp/x"]) == 2


def test_export_cli_single_format(tmp_path):
    """``rsn export`` as a user runs it, in a fresh process whose working directory is an empty folder:
    it stays empty (onnxruntime's quantiser writes nothing there), and the output is the project's own
    (no TFLite quantiser debug line, no LiteRT delegate line, no TF retracing warning)."""
    import subprocess
    import sys

    from conftest import REPO

    path = os.path.join(tmp_path, "tiny.keras")
    _tiny_model().save(path)
    out = os.path.join(tmp_path, "out")
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([REPO, os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run([sys.executable, "-m", "rsn_tf", "export", "--weights", path, "--out", out,
                           "--formats", "onnx,tflite_int8_io,onnx_int8", "--calib-count", "2", "--check-synth", "1"],
                          cwd=cwd, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert os.listdir(cwd) == []
    output = proc.stdout + proc.stderr
    for noise in ("fully_quantize", "XNNPACK delegate", "retracing", "sym_shape_infer", "Traceback"):
        assert noise not in output, output[-3000:]
    assert "[export] onnx_int8:" in proc.stdout and "decode: recipe authors, kernel 5" in proc.stdout
    report = json.load(open(os.path.join(out, "agreement.json")))
    assert list(report["sets"]) == ["synthetic"] and report["sets"]["synthetic"]["onnx"]["target"]["ok"]
    assert set(report["sets"]["synthetic"]) == {"onnx", "tflite_int8_io", "onnx_int8"}
    manifest = json.load(open(os.path.join(out, "manifest.json")))
    q_ops = manifest["formats"]["onnx_int8"]["ops"]
    assert q_ops.get("QuantizeLinear", 0) > 0 and q_ops.get("DequantizeLinear", 0) > 0 and q_ops["Resize"] == 3
    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(model_path=os.path.join(out, "rsn_int8_io.tflite"))
    assert interp.get_input_details()[0]["dtype"] == np.int8 and interp.get_output_details()[0]["dtype"] == np.int8
    ops = manifest["formats"]["tflite_int8_io"]["ops"]
    assert "QUANTIZE" not in ops and "DEQUANTIZE" not in ops


def test_onnx_int8_writes_nothing_into_the_working_directory(exported, tmp_path, monkeypatch):
    """The quantiser alone, in this process, with the working directory an empty folder."""
    from rsn_tf.export.onnx import quantize_onnx

    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    out = quantize_onnx(os.path.join(exported["out"], "rsn.onnx"), str(tmp_path / "q.onnx"), exported["crops"][:2])
    assert os.path.exists(out) and os.listdir(cwd) == [] and os.getcwd() == str(cwd)


def test_missing_export_extra_is_one_line_before_any_work(tmp_path, monkeypatch, capsys):
    from rsn_tf.cli import main
    from rsn_tf.export import core

    monkeypatch.setattr(core, "installed", lambda module: module != "ai_edge_litert")
    out = tmp_path / "out"
    assert main(["export", "--preset", "rsn18", "--out", str(out), "--formats", "onnx,tflite_int8"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "tflite_int8" in err[0] and "ai_edge_litert" in err[0], err
    assert 'pip install -e ".[export]"' in err[0] and err[0].startswith("rsn export: error:")
    assert main(["bench", "--preset", "rsn18", "--out", str(out), "--runtimes", "keras,tflite_fp32"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("rsn bench: error:") and 'pip install -e ".[export]"' in err[0]
    assert not out.exists()
    with pytest.raises(ModuleNotFoundError, match="ai_edge_litert"):  # what it is, for library callers
        core.require_modules(["tflite_fp16"])
    core.require_modules(["onnx", "saved_model"])


def test_export_config_checks_every_field(tmp_path):
    assert ExportConfig(formats="all,onnx_int8").formats == (*FORMATS, "onnx_int8")
    for kwargs, field in [({"formats": "tflite_int4"}, "--formats"), ({"recipe": "udp"}, "recipe"),
                          ({"decode_kernel": 4}, "--decode-kernel"), ({"opset": 11}, "--opset"),
                          ({"input_order": "bgra"}, "--input-order"), ({"calib_count": 0}, "--calib-count"),
                          ({"check_synth": -1}, "--check-synth")]:
        with pytest.raises(ValueError, match=field):
            ExportConfig(**kwargs)
    with pytest.raises(FileNotFoundError, match="--calib-coco"):
        ExportConfig(calib_coco=str(tmp_path / "missing.json")).check_inputs()
    with pytest.raises(FileNotFoundError, match="--check-coco"):
        ExportConfig(check_coco=str(tmp_path / "missing.json")).check_inputs()


def test_decode_follows_the_model_and_an_explicit_choice_wins():
    from rsn_tf.export.core import resolve_decode

    d = resolve_decode(17, {"weights": "mmpose"})
    assert (d.recipe, d.mode, d.kernel, d.layout, d.recipe_from) == ("mmpose", "mmpose", 5, "coco", "model metadata")
    d = resolve_decode(16, {"keypoints": "mpii"})  # the MPII kernel, from the model's keypoint layout
    assert (d.recipe, d.kernel, d.kernel_from) == ("authors", 9, "keypoint layout")
    assert resolve_decode(16, {}).kernel == 9  # K=16 without a spec is MPII
    assert resolve_decode(17, {"recipe": "mmpose", "weights": "mmpose"}, "authors", 7).to_dict() == {
        "recipe": "authors", "mode": "authors", "kernel": 7, "layout": "coco", "recipe_from": "config",
        "kernel_from": "config"}
    train_mmpose = {"experiment": {"train": {"loss": {"mode": "mmpose"}}}}
    assert resolve_decode(17, train_mmpose).recipe == "mmpose"


def test_mmpose_mpii_model_exports_its_recipe(tmp_path):
    """A converted-from-mmpose MPII model: the SavedModel decodes in-graph with mmpose's rule and MPII's 9x9
    kernel, the manifest says so, and an estimator on the export picks both up."""
    from rsn_tf.export.exporter import export_model, load_exported_estimator
    from rsn_tf.recipes import MMPOSE_BOX_PADDING

    import keras

    keras.utils.set_random_seed(3)
    model = RSNModel(TINY.replace(num_keypoints=16), metadata={"weights": "mmpose", "keypoints": "mpii"})
    crops = _x(8, seed=4)
    out = os.path.join(tmp_path, "mpii")
    manifest = export_model(model, out, crops, crops, ExportConfig(formats="saved_model"), log=lambda *_: None)
    assert manifest["decode"] == {"recipe": "mmpose", "mode": "mmpose", "kernel": 9, "layout": "mpii",
                                  "recipe_from": "model metadata", "kernel_from": "keypoint layout"}
    # the served keypoints against MegviiHeatmapCodec(decode_mode="mmpose", decode_kernel=9) on the served heatmaps
    entry = manifest["formats"]["saved_model"]
    assert entry["ok"] and entry["in_graph_decode"]["identical_fraction"] >= 0.95, entry
    est = load_exported_estimator(out, "saved_model")
    assert est.decode_mode == "mmpose" and est.codec.decode_kernel == 9 and est.box_padding == MMPOSE_BOX_PADDING


def test_heatmap_fn_traces_once_per_model():
    """Running several models through heatmap_fn, at several batch sizes, never trips TF's retracing warning
    (``model.predict`` in the same loop does)."""
    import logging

    import keras

    from rsn_tf.export.graph import heatmap_fn

    records = []
    handler = logging.Handler()
    handler.emit = records.append
    logger = logging.getLogger("tensorflow")
    logger.addHandler(handler)
    try:
        x = _x(5)
        for i in range(7):
            inputs = keras.Input((64, 64, 3))
            model = keras.Model(inputs, keras.layers.Conv2D(2, 3, name=f"c{i}")(inputs))
            fn = heatmap_fn(model, batch=2)
            assert fn(x).shape == (5, 62, 62, 2) and fn(x[:1]).shape == (1, 62, 62, 2)
    finally:
        logger.removeHandler(handler)
    assert not [r for r in records if "retracing" in r.getMessage()]


def test_export_package_is_a_tree_around_a_leaf_core():
    """No import cycle among rsn_tf.export and rsn_tf.bench (every import statement, function-level ones
    included), and rsn_tf.export.core imports no other export module."""
    from helpers.import_graph import cycles_through, import_graph

    graph = import_graph()
    assert not {d for d in graph["rsn_tf.export.core"] if d.startswith("rsn_tf.export")}
    assert "rsn_tf.export.exporter" not in graph["rsn_tf.export.agreement"]
    assert cycles_through(graph, "rsn_tf.export") == [] and cycles_through(graph, "rsn_tf.bench") == []


def test_coco_crops_are_pipeline_crops():
    from rsn_tf.data.preprocess import unpreprocess
    from rsn_tf.export.crops import coco_crops

    crops = coco_crops(shared_path("data", "coco_sample", "test_coco.json"), TINY)
    assert crops.shape == (12, 64, 64, 3) and crops.dtype == np.float32  # the 12 annotated people
    pixels = unpreprocess(crops, TINY.preprocessing)
    assert pixels.std() > 20  # real image content, not padding
