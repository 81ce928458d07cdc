"""The frame loop of ``rsn video``: frames -> key-frame boxes -> tracked poses -> overlay.mp4, poses.json, summary.md.

:func:`run_video` reads frames on a thread (:class:`rsn_tf.video.source.FrameReader`, a bounded queue, so
decoding frame i+1 overlaps the pose work on frame i), steps the :class:`rsn_tf.video.tracker.Tracker`,
draws each frame with :func:`rsn_tf.visualize.draw_poses` plus track ids and the live frames/s and
persons/s, and writes the overlay video (``mp4v``, which OpenCV writes and reads back everywhere).

Ctrl-C (KeyboardInterrupt) or an input that stops decoding halfway ends the loop cleanly: the video writer
is closed (a playable file), and ``poses.json`` and ``summary.md`` describe the frames done, with
``"complete": false`` and the reason. Files are renamed into place only when complete, so an earlier
run's outputs are never half-overwritten. A read error is raised after the outputs are written.

Stage times (``stats.stage_ms``, per frame, main thread unless noted): ``decode`` (the reader thread,
overlapped with the rest), ``wait`` (the loop waiting for a decoded frame), ``boxes`` (the box source on key
frames), ``crop`` (:meth:`PoseEstimator.crops`: affine crops + normalisation), ``network``
(:meth:`PoseEstimator.heatmaps`: the network call, with the flip-back average when flip test is on),
``post`` (the rest of the pose step: heatmap decoding, inverse affine, scores, matching, smoothing),
``draw`` and ``write`` (the overlay), ``other`` (bookkeeping).
"""
from __future__ import annotations

import collections
import contextlib
import datetime
import os
import signal
import tempfile
import threading
import time

import cv2
import numpy as np

from rsn_tf import io_utils
from rsn_tf.video.boxes import BoxSource, make_box_source
from rsn_tf.video.config import VideoConfig
from rsn_tf.video.source import FrameReader, FrameSource, VideoSourceError, open_source
from rsn_tf.video.tracker import Tracker

POSES_FORMAT = "rsn_tf-video-poses-1"
FOURCC = "mp4v"
STAGES = ("decode", "wait", "boxes", "crop", "network", "post", "draw", "write", "other")
STAGE_NAMES = {"decode": "decode (reader thread, overlapped)", "wait": "waiting for a decoded frame",
               "boxes": "person boxes (key frames)", "crop": "crop + normalise",
               "network": "network", "post": "post-processing (heatmap decode, inverse affine, tracking, smoothing)",
               "draw": "overlay drawing", "write": "video writing", "other": "other"}


class _Clock:
    """Seconds per named stage."""

    def __init__(self):
        self.s = collections.defaultdict(float)

    @contextlib.contextmanager
    def __call__(self, name):
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.s[name] += time.perf_counter() - t0

    def wrap(self, fn, name):
        def timed(*args, **kwargs):
            with self(name):
                return fn(*args, **kwargs)
        return timed


def track_colour(track_id: int) -> tuple[int, int, int]:
    """A distinct BGR colour per track id (golden-ratio hue steps)."""
    hue = int((track_id * 0.618033988749895 % 1.0) * 179)
    return tuple(int(v) for v in cv2.cvtColor(np.uint8([[[hue, 220, 255]]]), cv2.COLOR_HSV2BGR)[0, 0])


def draw_frame(frame, poses, spec, fps: float | None, pps: float | None, index: int, keyframe: bool) -> np.ndarray:
    """The overlay of one frame: skeletons (:func:`rsn_tf.visualize.draw_poses`), ``#id`` per track, and the
    live frames/s and persons/s."""
    from rsn_tf.visualize import draw_poses

    img = draw_poses(frame, poses, spec, draw_boxes=True)
    unit = max(1, int(round(max(img.shape[:2]) / 640)))
    font = cv2.FONT_HERSHEY_SIMPLEX
    for p in poses:
        x, y, w, h = (int(round(v)) for v in p.box)
        label = f"#{p.track_id}"
        (tw, th), _ = cv2.getTextSize(label, font, 0.5 * unit, unit)
        x0, y0 = min(max(x + w - tw - 4, 0), img.shape[1] - tw - 4), max(y, 0)
        cv2.rectangle(img, (x0, y0), (x0 + tw + 4, y0 + th + 6), track_colour(p.track_id), -1)
        cv2.putText(img, label, (x0 + 2, y0 + th + 2), font, 0.5 * unit, (0, 0, 0), unit, cv2.LINE_AA)
    hud = (f"{fps:.1f} frames/s  {pps:.1f} persons/s" if fps else "-- frames/s") + f"  frame {index}" + \
          ("  key" if keyframe else "")
    size = 0.45 * unit * min(1.0, img.shape[1] / 420)  # small frames: a smaller font, so the line fits
    (tw, th), _ = cv2.getTextSize(hud, font, size, unit)
    cv2.rectangle(img, (0, 0), (tw + 8, th + 10), (0, 0, 0), -1)
    cv2.putText(img, hud, (4, th + 4), font, size, (255, 255, 255), unit, cv2.LINE_AA)
    return img


@contextlib.contextmanager
def _no_interrupts():
    """Ignore Ctrl-C while the outputs are finalised (main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    old = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, old)


def run_video(estimator, source, out_dir: str, boxes="full-frame", config: VideoConfig | None = None, *,
              max_frames: int | None = None, fps: float | None = None, progress: bool = True,
              model_info: dict | None = None, command: str = "", on_frame=None) -> dict:
    """Track poses through a video and write ``out_dir/{overlay.mp4, poses.json, summary.md}``.

    Args:
      estimator: a :class:`rsn_tf.inference.PoseEstimator` (any runtime; see :mod:`rsn_tf.video.model`).
      source: a video file, a folder of frames, a camera index (str), or a :class:`FrameSource`.
      boxes: ``"full-frame"``, ``"detector"``, a box file, or a :class:`BoxSource` (key frames only).
      config: :class:`VideoConfig` (tracker, smoothing, flip test, queue size, drawing).
      max_frames: stop after this many frames (cameras run until Ctrl-C otherwise).
      fps: frame rate override (timestamps, output video).
      on_frame: called as ``on_frame(index, tracked_poses)`` after each frame (tests, live use).

    Returns ``{"poses", "overlay", "summary", "frames", "complete", "interrupted", "error", "stats", "tracks"}``.
    Raises :class:`VideoSourceError` for an unreadable input (before any output is written) or, after the
    outputs are written, for a read error halfway.
    """
    config = config or VideoConfig()
    src = source if isinstance(source, FrameSource) else open_source(source, fps)
    box_source = boxes if isinstance(boxes, BoxSource) else make_box_source(boxes, config.det_threshold)
    info = src.info
    os.makedirs(out_dir, exist_ok=True)
    estimator.flip_test = bool(config.flip_test)
    estimator.batch_size = int(config.batch_size)
    tracker = Tracker(estimator, config.tracker, config.smoothing, (info.width, info.height))

    clock = _Clock()
    overlay_path = os.path.join(out_dir, "overlay.mp4") if config.draw else None
    writer = tmp_video = None
    if config.draw:
        fd, tmp_video = tempfile.mkstemp(prefix=".overlay.", suffix=".partial.mp4", dir=out_dir)
        os.close(fd)
        writer = cv2.VideoWriter(tmp_video, cv2.VideoWriter_fourcc(*FOURCC), float(info.fps), (info.width, info.height))
        if not writer.isOpened():
            os.remove(tmp_video)
            raise RuntimeError(f"OpenCV cannot write {FOURCC} video into {out_dir}")

    bar = None
    if progress:
        from tqdm import tqdm
        bar = tqdm(total=min(info.num_frames or 0, max_frames or 1 << 60) or None, unit="frame",
                   desc=os.path.basename(info.name.rstrip("/")) or info.name, dynamic_ncols=True)
    frames: list[dict] = []
    persons = keyframes = 0
    recent = collections.deque(maxlen=30)  # (seconds, persons) of the last frames, for the live rate
    interrupted, error, fatal = False, None, None
    # time the estimator's shared stages on this instance (restored below)
    estimator.crops = clock.wrap(estimator.crops, "crop")
    estimator.heatmaps = clock.wrap(estimator.heatmaps, "network")
    reader = FrameReader(src, config.queue_size, max_frames)
    started = time.perf_counter()
    try:
        for index, frame in reader:
            t_frame = time.perf_counter()
            t = index / info.fps
            key = tracker.wants_keyframe(index)
            dets = None
            if key:
                keyframes += 1
                with clock("boxes"):
                    dets = box_source(frame, index)
            t_pose = time.perf_counter()
            before = clock.s["crop"] + clock.s["network"]
            shown = tracker.step(frame, index, t, dets)
            clock.s["post"] += time.perf_counter() - t_pose - (clock.s["crop"] + clock.s["network"] - before)
            persons += len(shown)
            frames.append({"index": index, "time": round(t, 4), "keyframe": key,
                           "poses": [p.to_dict(raw=config.smoothing.enabled) for p in shown]})
            if writer is not None:
                live = sum(s for s, _ in recent)
                live_fps = len(recent) / live if live > 0 else None
                live_pps = sum(n for _, n in recent) / live if live > 0 else None
                with clock("draw"):
                    img = draw_frame(frame, shown, estimator.spec, live_fps, live_pps, index, key)
                with clock("write"):
                    writer.write(img)
            if on_frame is not None:
                on_frame(index, shown)
            recent.append((time.perf_counter() - t_frame, len(shown)))
            if bar is not None:
                bar.update(1)
                if index % 10 == 0 and recent:
                    s = sum(v for v, _ in recent)
                    bar.set_postfix_str(f"{len(recent) / s:.1f} frames/s, {len(tracker.active)} tracked", refresh=False)
    except KeyboardInterrupt:
        interrupted = True
    except VideoSourceError as e:
        error = e
    except BaseException as e:  # anything else: keep what was done, then raise it
        error = fatal = e
    wall = time.perf_counter() - started
    with _no_interrupts():
        reader.stop()
        if bar is not None:
            bar.close()
        for name in ("crops", "heatmaps"):
            estimator.__dict__.pop(name, None)
        tracker.finish()
        if writer is not None:
            writer.release()
            if frames:
                os.replace(tmp_video, overlay_path)
            else:
                os.remove(tmp_video)
                overlay_path = None
        clock.s["decode"] = reader.decode_s
        clock.s["wait"] = reader.wait_s
        n = len(frames)
        accounted = sum(v for k, v in clock.s.items() if k not in ("decode", "other"))
        clock.s["other"] = max(wall - accounted, 0.0)
        stats = {"frames": n, "keyframes": keyframes, "persons": persons, "wall_s": round(wall, 3),
                 "fps": round(n / wall, 2) if wall > 0 else None, "pps": round(persons / wall, 2) if wall > 0 else None,
                 "persons_per_frame": round(persons / n, 3) if n else 0.0,
                 "stage_ms": {k: round(1e3 * clock.s[k] / max(n, 1), 3) for k in STAGES},
                 "stage_fraction": {k: round(clock.s[k] / wall, 4) if wall > 0 else None for k in STAGES}}
        status = ("interrupted (Ctrl-C)" if interrupted else f"stopped by {'an error' if fatal else 'a read error'}: {error}"
                  if error else "complete")
        settings = {**config.to_dict(), "boxes": box_source.name, "decode_mode": estimator.decode_mode,
                    "score_mode": estimator.score_mode, "box_padding": list(estimator.box_padding)}
        doc = {"format": POSES_FORMAT, "source": info.to_dict(), "model": model_info or {}, "settings": settings,
               "keypoint_names": list(estimator.spec.names), "skeleton": [list(p) for p in estimator.spec.skeleton],
               "complete": not interrupted and error is None, "interrupted": interrupted,
               "error": None if error is None else str(error), "stats": stats, "tracks": tracker.tracks(),
               "frames": frames, "command": command,
               "date_utc": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")}
        poses_path = io_utils.write_json(os.path.join(out_dir, "poses.json"), doc, indent=None)
        summary_path = io_utils.write_text(os.path.join(out_dir, "summary.md"), summary_markdown(doc, status))
    result = {"poses": poses_path, "overlay": overlay_path, "summary": summary_path, "frames": n,
              "complete": doc["complete"], "interrupted": interrupted, "error": doc["error"], "stats": stats,
              "tracks": doc["tracks"]}
    if fatal is not None:
        raise fatal
    if error is not None:
        raise VideoSourceError(f"{error}; the {n} frames before it are in {out_dir}")
    return result


def summary_markdown(doc: dict, status: str) -> str:
    """``summary.md`` of a run (what went in, how fast, each stage's share, the tracks)."""
    src, st, model = doc["source"], doc["stats"], doc["model"]
    frames_in = f", {src['num_frames']} frames" if src.get("num_frames") else ""
    lines = [f"# rsn video: {src['name']}", "", "| | |", "|---|---|",
             f"| input | {src['name']} ({src['kind']}, {src['width']}x{src['height']}, {src['fps']:g} frames/s{frames_in}) |",
             f"| model | {', '.join(f'{k} {v}' for k, v in model.items()) or '(given estimator)'} |",
             f"| boxes | {doc['settings']['boxes']} on key frames: every {doc['settings']['tracker']['keyframe_interval']} "
             f"frames and on re-detection ({st['keyframes']} key frames) |",
             f"| frames | {st['frames']} ({status}) |",
             f"| speed | {st['fps']} frames/s, {st['pps']} persons/s ({st['persons_per_frame']} persons per frame), "
             f"{st['wall_s']} s |",
             f"| smoothing | {'One Euro' if doc['settings']['smoothing']['enabled'] else 'off'} |",
             f"| flip test | {'on' if doc['settings']['flip_test'] else 'off'} |", "",
             "## Time per frame", "", "| stage | ms per frame | share of the wall time |", "|---|---|---|"]
    for k in STAGES:
        frac = st["stage_fraction"][k]
        lines.append(f"| {STAGE_NAMES[k]} | {st['stage_ms'][k]:.2f} | {'' if frac is None else f'{100 * frac:.1f}%'} |")
    ends = collections.Counter((t["end"] or "").split(" into ")[0] for t in doc["tracks"])
    lines += ["", f"## Tracks ({len(doc['tracks'])}; " + ", ".join(f"{v} {k}" for k, v in sorted(ends.items())) + ")",
              "", "| id | frames | first | last | mean score | end |", "|---|---|---|---|---|---|"]
    for t in doc["tracks"]:
        lines.append(f"| {t['track_id']} | {t['frames']} | {t['first_frame']} | {t['last_frame']} | "
                     f"{t['mean_score']:.3f} | {t['end']} |")
    if doc.get("command"):
        lines += ["", f"Command: `{doc['command']}`"]
    lines += ["", "Outputs: `overlay.mp4` (skeletons, track ids, live frames/s and persons/s), `poses.json` "
              "(format in docs/video.md).", ""]
    return "\n".join(lines)
