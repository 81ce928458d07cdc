"""rsn video on generated clips: tracking and smoothing measured against the truth (an oracle network through
the real PoseEstimator path), the frame loop's outputs, Ctrl-C, bad inputs, the CLI with a real model."""
import json
import os
import signal
import threading
import time

import cv2
import numpy as np
import pytest
from video_oracle import clip_oracle, write_coordinate_frames

from rsn_tf.cli import main
from rsn_tf.data.synth_video import make_synthetic_video
from rsn_tf.inference import PoseEstimator
from rsn_tf.video import OneEuroFilter, load_video_config, run_video
from rsn_tf.video.metrics import evaluate_smoothing
from rsn_tf.video.source import FrameReader, FrameSource, SourceInfo, VideoSourceError, open_source


def read_all(path):
    cap = cv2.VideoCapture(path)
    frames = []
    while True:
        ok, f = cap.read()
        if not ok:
            break
        frames.append(f)
    cap.release()
    return frames


@pytest.fixture(scope="module")
def oracle_clip(tmp_path_factory):
    """A 3 s, 20 frames/s, 240x180 clip of 4 people (two crossing walkers, one standing, a runner), its
    coordinate frames and an oracle network with 1.5 px keypoint noise."""
    root = tmp_path_factory.mktemp("oracle_clip")
    clip = make_synthetic_video(str(root / "clip"), seconds=3, people=4, seed=3, size=(240, 180), fps=20)
    with open(clip["truth"]) as f:
        truth = json.load(f)
    frames = write_coordinate_frames(str(root / "frames"), 240, 180, clip["frames"])
    net, config = clip_oracle(truth, noise_px=1.5)
    return clip, truth, frames, net, config


def test_tracking_and_smoothing_against_the_truth(oracle_clip, tmp_path):
    """The proof on a generated clip: every crop/decode goes through PoseEstimator; boxes from truth.json on
    key frames only, each track's own pose in between."""
    clip, truth, frames, net, config = oracle_clip
    calls = []
    est = PoseEstimator(lambda x: calls.append(len(x)) or net(x), config=config, keypoints="coco")
    conf = load_video_config(None, ["smoothing.enabled=true"])
    assert conf.tracker.keyframe_interval == 10 and not conf.flip_test
    res = run_video(est, frames, str(tmp_path), clip["truth"], conf, fps=20, progress=False)
    assert res["complete"] and res["frames"] == 60
    with open(res["poses"]) as f:
        doc = json.load(f)
    m = evaluate_smoothing(doc, truth)
    raw, smooth = m["raw"], m["smoothed"]
    print("\ntracking (oracle, 1.5 px noise):", raw, "\nsmoothed:", smooth)
    # tracking: people are found and followed; identities mostly kept through two crossings and occlusions
    assert raw["recall"] >= 0.85 and raw["precision"] >= 0.95
    assert raw["error_px"] <= 3.0
    assert raw["id_switches"] <= 2 and raw["fragments"] <= 4
    assert raw["tracks"] <= 7  # 4 people
    # key frames: every 10th plus re-detections, not every frame; between them one crop per track
    keyframes = [f["index"] for f in doc["frames"] if f["keyframe"]]
    assert keyframes[:2] == [0, 10] and len(keyframes) < 20
    assert sum(calls) <= sum(len(f["poses"]) for f in doc["frames"]) + 4 * len(keyframes)
    assert {p["source"] for f in doc["frames"] for p in f["poses"]} == {"detection", "track"}
    # smoothing: much less jitter on the person standing still, no real lag on the runner, no worse overall
    assert smooth["jitter_px"] <= 0.5 * raw["jitter_px"]
    assert smooth["lag_frames"] <= 0.25
    assert smooth["error_px"] <= 1.1 * raw["error_px"]
    # every track ended cleanly, with its reason
    ends = [t["end"] for t in doc["tracks"]]
    assert all(ends) and "left the frame" in ends and "video end" in ends
    # outputs: a readable overlay of every frame, the documented JSON, a summary with the stage table
    overlay = read_all(res["overlay"])
    assert len(overlay) == 60 and overlay[0].shape == (180, 240, 3)
    pose = doc["frames"][15]["poses"][0]
    assert set(pose) >= {"track_id", "keypoints", "keypoint_scores", "box", "score", "keypoints_raw"}
    assert np.asarray(pose["keypoints"]).shape == (17, 2)
    assert doc["complete"] and not doc["interrupted"] and doc["keypoint_names"][0] == "nose"
    st = doc["stats"]
    assert st["frames"] == 60 and st["persons"] == sum(len(f["poses"]) for f in doc["frames"])
    assert set(st["stage_ms"]) >= {"decode", "crop", "network", "post"} and st["stage_ms"]["network"] > 0
    summary = open(res["summary"]).read()
    assert "frames/s" in summary and "| network |" in summary and "left the frame" in summary


def test_synthetic_video_is_deterministic_and_truthful(tmp_path):
    a = make_synthetic_video(str(tmp_path / "a"), seconds=1.5, people=4, seed=5, size=(160, 120), fps=10)
    b = make_synthetic_video(str(tmp_path / "b"), seconds=1.5, people=4, seed=5, size=(160, 120), fps=10)
    c = make_synthetic_video(str(tmp_path / "c"), seconds=1.5, people=4, seed=6, size=(160, 120), fps=10)
    for name in ("clip.mp4", "truth.json"):
        assert open(tmp_path / "a" / name, "rb").read() == open(tmp_path / "b" / name, "rb").read()
        assert open(tmp_path / "a" / name, "rb").read() != open(tmp_path / "c" / name, "rb").read()
    frames = read_all(a["clip"])
    assert len(frames) == a["frames"] == 15 and frames[0].shape == (120, 160, 3)
    truth = json.load(open(a["truth"]))
    assert [p["role"] for p in truth["people"]] == ["walker", "walker", "static", "runner"]
    track = {}
    for f in truth["frames"]:
        for p in f["people"]:
            k, v = np.asarray(p["keypoints"]), np.asarray(p["visible"])
            inside = (k[:, 0] >= 0) & (k[:, 0] <= 159) & (k[:, 1] >= 0) & (k[:, 1] <= 119)
            np.testing.assert_array_equal(v == 0, ~inside)
            assert p["area"] > 0 and p["box"][2] > 0
            track.setdefault(p["id"], []).append((f["index"], k, v))
    static = track[3]
    assert all(np.array_equal(static[0][1], k) for _, k, _ in static)  # truly still
    speed = {pid: np.mean([abs(b[1][:, 0].mean() - a[1][:, 0].mean()) / (b[0] - a[0]) for a, b in zip(r, r[1:])])
             for pid, r in track.items() if len(r) > 1}
    assert speed[4] > 2.5 * speed[1] > 0  # the runner runs
    # the walkers enter/leave (not in every frame or partly outside) and someone is covered by someone
    assert any((v == 0).any() for _, _, v in track[1]) and any((v == 1).any() for r in track.values() for _, _, v in r)
    with pytest.raises(ValueError, match="--people"):
        make_synthetic_video(str(tmp_path / "d"), people=0)


def test_one_euro_filter_smooths_still_points_and_follows_motion():
    rng = np.random.default_rng(0)
    t = np.arange(100) / 25.0
    still = 50 + rng.normal(0, 2.0, (100, 1, 2))
    f = OneEuroFilter(min_cutoff=0.5, beta=10.0)
    out = np.stack([f(p, ti, scale=100.0) for p, ti in zip(still, t)])
    assert np.abs(np.diff(out[20:], 2, axis=0)).mean() < 0.3 * np.abs(np.diff(still[20:], 2, axis=0)).mean()
    ramp = (300.0 * t)[:, None, None] * np.array([1.0, 0.0])  # 3 heights/s
    lags = []
    for beta in (0.0, 10.0):
        f = OneEuroFilter(min_cutoff=0.5, beta=beta)
        out = np.stack([f(p, ti, scale=100.0) for p, ti in zip(ramp, t)])
        lags.append(float((ramp[50:, 0, 0] - out[50:, 0, 0]).mean() / 12.0))  # frames behind (12 px/frame)
    assert lags[1] < 0.25 * lags[0] and lags[1] < 0.5
    assert f(ramp[-1], t[-1]).shape == (1, 2)  # a repeated timestamp returns the last value


class _SlowSource(FrameSource):
    def __init__(self, n):
        self.info = SourceInfo("frames", "slow", 10.0, 32, 24, n)
        self.n, self.reads = n, []

    def read(self):
        if len(self.reads) >= self.n:
            return None
        self.reads.append(time.perf_counter())
        return np.zeros((24, 32, 3), np.uint8)


def test_reader_decodes_ahead_in_a_bounded_queue():
    src = _SlowSource(20)
    reader = FrameReader(src, queue_size=3)
    got = []
    for index, frame in reader:
        if index == 0:
            time.sleep(0.3)   # the pose work on frame 0 ...
            ahead = len(src.reads)
        got.append(index)
    reader.stop()
    assert got == list(range(20))
    assert 3 <= ahead <= 5  # ... overlapped the decoding of the next frames, at most the queue size (+1 in hand)


def _zero_net(config):
    h, w = config.heatmap_size
    return lambda x: np.zeros((len(x), h, w, config.num_keypoints), np.float32)


def test_ctrl_c_leaves_a_playable_partial_output(oracle_clip, tmp_path):
    clip, truth, frames, net, config = oracle_clip
    assert threading.current_thread() is threading.main_thread()
    est = PoseEstimator(net, config=config, keypoints="coco")

    def on_frame(index, poses):
        if index == 12:
            os.kill(os.getpid(), signal.SIGINT)  # a real Ctrl-C, delivered to this process
            time.sleep(5)  # Python runs the handler here (the sleep is interrupted): KeyboardInterrupt at frame 12

    # Python's own Ctrl-C handler, as a fresh `rsn video` process has it (not whatever an earlier test left)
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        res = run_video(est, frames, str(tmp_path), clip["truth"], load_video_config(), fps=20, progress=False,
                        on_frame=on_frame)
    finally:
        signal.signal(signal.SIGINT, previous)
    assert res["interrupted"] and not res["complete"]
    with open(res["poses"]) as f:
        doc = json.load(f)
    n = len(doc["frames"])
    assert 13 <= n < 60 and doc["interrupted"] and doc["complete"] is False
    assert len(read_all(res["overlay"])) == n  # playable, every processed frame in it
    assert "interrupted" in open(res["summary"]).read()
    assert not [f for f in os.listdir(tmp_path) if f.startswith(".")]  # no temporary file left


def test_bad_inputs_give_one_clear_error_and_keep_what_was_written(oracle_clip, tmp_path, capsys):
    clip, truth, frames, net, config = oracle_clip
    out = tmp_path / "out"
    out.mkdir()
    (out / "poses.json").write_text('{"earlier": "run"}')
    # a camera index that does not exist, a zero-length video: one line each, nothing overwritten
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    for source, expected in (("57", "camera 57: cannot be opened"), (str(empty), "zero-length video")):
        assert main(["video", source, "--weights", "never_loaded.keras", "--out", str(out)]) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("rsn video: error:") and expected in err and len(err.splitlines()) == 1
    no_frames = tmp_path / "no_frames.mp4"
    cv2.VideoWriter(str(no_frames), cv2.VideoWriter_fourcc(*"mp4v"), 10, (64, 48)).release()
    with pytest.raises(VideoSourceError, match="not a video OpenCV can read"):
        open_source(str(no_frames))
    assert (out / "poses.json").read_text() == '{"earlier": "run"}'
    # corrupt halfway: the frames before the damage are processed and written, then one clear error
    data = bytearray(open(clip["clip"], "rb").read())
    moov = data.rfind(b"moov") - 4
    half = moov // 2
    data[half:moov] = bytes(moov - half)
    bad = tmp_path / "corrupt.mp4"
    bad.write_bytes(bytes(data))
    est = PoseEstimator(_zero_net(config), config=config, keypoints="coco")
    with pytest.raises(VideoSourceError, match=r"frame \d+ of 60 cannot be decoded.*corrupt") as e:
        run_video(est, str(bad), str(out), clip["truth"], load_video_config(), progress=False)
    doc = json.load(open(out / "poses.json"))
    n = len(doc["frames"])
    assert 10 < n < 50 and doc["complete"] is False and "corrupt" in doc["error"] and f"{n} frames" in str(e.value)
    assert len(read_all(str(out / "overlay.mp4"))) == n
    # a folder without frames, a bad box file
    (tmp_path / "nothing").mkdir()
    with pytest.raises(VideoSourceError, match="no image files"):
        open_source(str(tmp_path / "nothing"))
    (tmp_path / "boxes.json").write_text('{"frames": [{"index": 0, "boxes": [[1, 2, 3]]}]}')
    with pytest.raises(ValueError, match=r"boxes.json: frames\[0\] box 0 must be"):
        run_video(est, frames, str(out), str(tmp_path / "boxes.json"), progress=False)


def test_rsn_video_cli_with_a_keras_model(tmp_path, capsys):
    """The command end to end with a real (tiny, random-weight) Keras RSN on the generated mp4."""
    import keras

    from rsn_tf.model import ModelConfig, build_rsn

    keras.utils.set_random_seed(0)
    model = build_rsn(ModelConfig(num_blocks=(1, 1, 1, 1), planes=(16, 32, 64, 128), stem_channels=16,
                                  unit_channels=32, input_size=(128, 96)), metadata={"keypoints": "coco"})
    weights = str(tmp_path / "tiny.keras")
    model.save(weights)
    assert main(["synth-video", "--out", str(tmp_path / "clip"), "--seconds", "1", "--people", "2",
                 "--size", "160x120", "--fps", "10"]) == 0
    clip = str(tmp_path / "clip" / "clip.mp4")
    out = tmp_path / "out"
    assert main(["video", clip, "--weights", weights, "--out", str(out), "--boxes", str(tmp_path / "clip" / "truth.json"),
                 "--smooth", "--threads", "1", "--keyframe-interval", "3", "--no-progress",
                 "--set", "tracker.keep_score=0", "--set", "tracker.new_track_score=0"]) == 0
    printed = capsys.readouterr().out
    assert "10 frames" in printed and "frames/s" in printed
    doc = json.load(open(out / "poses.json"))
    assert doc["model"]["runtime"] == "keras" and doc["settings"]["smoothing"]["enabled"]
    assert len(doc["frames"]) == 10 and any(f["poses"] for f in doc["frames"])
    assert len(read_all(str(out / "overlay.mp4"))) == 10
    assert main(["video", clip, "--weights", weights, "--runtime", "tflite_int8", "--out", str(out)]) == 2
    assert "rsn export" in capsys.readouterr().err
    assert main(["video", clip, "--weights", weights, "--out", str(out), "--set", "tracker.nope=1"]) == 2
    assert "nope" in capsys.readouterr().err


def test_video_config_file_lists_the_defaults():
    from rsn_tf.config import ConfigError
    from rsn_tf.video.config import VideoConfig

    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    assert load_video_config(os.path.join(repo, "configs", "video", "default.yaml")) == VideoConfig()
    with pytest.raises(ConfigError, match="keyframe_interval must be >= 1"):
        load_video_config(None, ["tracker.keyframe_interval=0"])
