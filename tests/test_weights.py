"""The one model loader: .keras, .weights.h5 + config, mmpose .pth, named presets downloaded from a local
HTTP server on 127.0.0.1 (cache, hash prefix, offline reuse, RSN_TF_WEIGHTS_URL, the three failures)."""
import dataclasses
import hashlib
import http.server
import json
import os
import subprocess
import sys
import threading

import cv2
import numpy as np
import pytest
from conftest import shared_path

import rsn_tf
from rsn_tf import weights as W
from rsn_tf.cli import main
from rsn_tf.convert import torch_pickle
from rsn_tf.model import ModelConfig, build_rsn

PRESET = "mmpose/rsn18-coco"
TINY = ModelConfig(num_blocks=(1, 1, 1, 1), planes=(16, 32, 64, 128), stem_channels=16, unit_channels=32,
                   input_size=(64, 64))


class _Server:
    """Serves ``files`` {url path: bytes}; paths in ``cut`` announce the full length but send a third."""

    def __init__(self):
        self.files, self.cut, self.requests = {}, set(), []
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                server.requests.append(self.path)
                body = server.files.get(self.path)
                if body is None:
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body[: len(body) // 3] if self.path in server.cut else body)

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def _closed_port_url():
    import socket
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return f"http://127.0.0.1:{port}/"


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """A checkpoint built from the shared fixture's state dict, published like mmpose's (name carries
    its sha256 prefix) on a local server, and the preset pointed at it."""
    with np.load(shared_path("fixtures", "mmpose_rsn18_coco_256x192.npz")) as z:
        sd = {k: z[k] for k in z.files if "." in k}
    tmp = tmp_path_factory.mktemp("publish")
    raw = str(tmp / "raw.pth")
    torch_pickle.save({"meta": {"epoch": 210}, "state_dict": sd}, raw)
    body = open(raw, "rb").read()
    digest = hashlib.sha256(body).hexdigest()
    rel = f"mmpose/v1/body_2d_keypoint/topdown_heatmap/coco/td-hm_rsn18_test-{digest[:8]}_20221013.pth"
    server = _Server()
    server.files["/" + rel] = body
    wrong = rel.replace(digest[:8], "deadbeef")
    server.files["/" + wrong] = body
    cut = rel.replace(digest[:8], digest[8:16])
    server.files["/" + cut] = body
    server.cut.add("/" + cut)
    yield {"server": server, "rel": rel, "wrong": wrong, "cut": cut, "digest": digest, "size": len(body)}
    server.close()


def _use(monkeypatch, served, home, rel, base=None):
    p = dataclasses.replace(W.WEIGHTS_PRESETS[PRESET], url=W.MMPOSE_BASE_URL + rel)
    monkeypatch.setitem(W.WEIGHTS_PRESETS, PRESET, p)
    monkeypatch.setenv("RSN_TF_HOME", str(home))
    monkeypatch.setenv("RSN_TF_WEIGHTS_URL", base or served["server"].url)
    return p


def test_preset_download_cache_and_offline_reuse(served, tmp_path, monkeypatch, capsys):
    p = _use(monkeypatch, served, tmp_path / "home", served["rel"])
    assert p.sha256_prefix == served["digest"][:8]
    assert p.download_url() == served["server"].url + served["rel"]
    model = rsn_tf.load_model(PRESET)
    cache = tmp_path / "home" / "weights"
    assert sorted(os.listdir(cache)) == sorted([p.filename, p.filename[:-4] + ".keras"])
    assert model.metadata["weights_preset"] == PRESET and model.metadata["recipe"] == "mmpose"
    assert model.metadata["mmpose_metrics"]["AP"] == 0.704
    with np.load(shared_path("fixtures", "mmpose_rsn18_coco_256x192.npz")) as z:  # the served weights, OIHW
        for layer, key in (("stem_conv_conv", "backbone.top.top.0.conv.weight"),
                           ("head3_conv2_conv", "head.predict_layers.3.conv_layers.1.conv.weight")):
            np.testing.assert_array_equal(model.get_layer(layer).get_weights()[0], z[key].transpose(2, 3, 1, 0))
    # later uses are offline: no request, even with the network gone
    seen = len(served["server"].requests)
    monkeypatch.setenv("RSN_TF_WEIGHTS_URL", _closed_port_url())
    again = rsn_tf.load_model(PRESET)
    assert len(served["server"].requests) == seen
    np.testing.assert_array_equal(again.get_layer("head3_conv2_conv").get_weights()[0],
                                  model.get_layer("head3_conv2_conv").get_weights()[0])
    # rsn infer on a real photo with the preset: mmpose's recipe, mmpose's accuracy printed as its number,
    # and, without the detector extra, one full-image box with a note
    from rsn_tf.inference import boxes
    monkeypatch.setattr(boxes, "detector_available", lambda: False)
    photo = shared_path("data", "person_images", "grace_hopper.jpg")
    assert main(["infer", "--weights", PRESET, photo, "--out", str(tmp_path / "infer")]) == 0
    out = capsys.readouterr().out
    assert "COCO val2017 AP 70.4" in out and "mmpose's reported number" in out
    assert "test recipe: mmpose (the model's metadata names it)" in out
    assert "detector" in out and "several people" in out
    poses = json.load(open(tmp_path / "infer" / "poses.json"))
    assert poses["settings"]["recipe"] == "mmpose" and poses["settings"]["box_padding"] == [1.25, 1.25]
    assert poses["box_source"] == "full-image" and "several people" in poses["note"]
    assert len(poses["images"][0]["poses"]) == 1


@pytest.mark.parametrize("failure", ["wrong_hash", "interrupted", "no_network"])
def test_failed_downloads_leave_nothing_and_say_how_to_pass_a_file(failure, served, tmp_path, monkeypatch):
    rel = {"wrong_hash": served["wrong"], "interrupted": served["cut"], "no_network": served["rel"]}[failure]
    base = _closed_port_url() if failure == "no_network" else None
    p = _use(monkeypatch, served, tmp_path / "home", rel, base)
    with pytest.raises(W.WeightsError) as e:
        rsn_tf.load_model(PRESET)
    msg = str(e.value)
    assert "\n" not in msg and f"--weights /path/to/{p.filename}" in msg
    assert {"wrong_hash": "expected deadbeef", "interrupted": "interrupted", "no_network": "no connection"}[failure] in msg
    cache = tmp_path / "home" / "weights"
    assert not cache.exists() or os.listdir(cache) == []  # no half-written file
    # the CLI gives the same one line
    assert main(["infer", "--weights", PRESET, shared_path("data", "person_images", "astronaut.png"),
                 "--out", str(tmp_path / "o")]) == 2


def test_local_files_of_every_kind(tmp_path, capsys):
    model = build_rsn(TINY, metadata={"keypoints": "coco"})
    k = str(tmp_path / "m.keras")
    model.save(k)
    assert type(rsn_tf.load_model(k)).__name__ == "RSNModel"
    h5 = str(tmp_path / "m.weights.h5")
    model.save_weights(h5)
    back = rsn_tf.load_model(h5, TINY)
    np.testing.assert_array_equal(back.get_weights()[0], model.get_weights()[0])
    with pytest.raises(W.WeightsError, match="config"):
        rsn_tf.load_model(h5)
    text = tmp_path / "model.keras"
    text.write_text("hello, not a model\n")
    with pytest.raises(W.WeightsError, match="not a Keras archive"):
        rsn_tf.load_model(str(text))
    pth_named_keras = tmp_path / "ckpt.keras"
    torch_pickle.save({"state_dict": {"a.weight": np.zeros(2, np.float32)}}, str(pth_named_keras))
    with pytest.raises(W.WeightsError, match="not a Keras archive.*PyTorch checkpoint"):
        rsn_tf.load_model(str(pth_named_keras))
    with pytest.raises(FileNotFoundError, match="model weights not found.*named preset"):
        rsn_tf.load_model(str(tmp_path / "missing.keras"))
    with pytest.raises(W.WeightsError, match="unknown weights preset"):
        rsn_tf.load_model("mmpose/rsn101-coco")
    # the CLI reports the text file as what it is (the inputs are checked first, so give it a real image)
    image = tmp_path / "images" / "one.png"
    image.parent.mkdir()
    cv2.imwrite(str(image), np.zeros((32, 24, 3), np.uint8))
    assert main(["infer", "--weights", str(text), str(image), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "not a Keras archive" in err and "File not found" not in err


def test_presets_are_mmposes_public_checkpoints():
    assert list(W.WEIGHTS_PRESETS) == ["mmpose/rsn18-coco", "mmpose/rsn50-coco", "mmpose/2xrsn50-coco",
                                       "mmpose/3xrsn50-coco"]
    prefixes = {n: p.sha256_prefix for n, p in W.WEIGHTS_PRESETS.items()}
    assert prefixes == {"mmpose/rsn18-coco": "9049ed09", "mmpose/rsn50-coco": "c35901d5",
                        "mmpose/2xrsn50-coco": "9ede341e", "mmpose/3xrsn50-coco": "c3e3c4fe"}
    for p in W.WEIGHTS_PRESETS.values():
        assert p.url.startswith("https://download.openmmlab.com/mmpose/v1/body_2d_keypoint/topdown_heatmap/coco/")
        assert "mmpose's reported number" in p.accuracy_line()
    assert [round(100 * p.mmpose_metrics["AP"], 1) for p in W.WEIGHTS_PRESETS.values()] == [70.4, 72.4, 74.8, 75.0]


def test_import_rsn_tf_registers_keras_classes(tmp_path):
    """In a fresh interpreter: ``import rsn_tf`` (before keras) is all keras.saving.load_model needs."""
    path = str(tmp_path / "m.keras")
    build_rsn(TINY).save(path)
    code = ("import rsn_tf, sys; assert 'tensorflow' not in sys.modules; import keras; "
            f"m = keras.saving.load_model({path!r}); print(type(m).__name__)")
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().endswith("RSNModel")
