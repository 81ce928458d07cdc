"""Frames in: a video file, a folder of frame images, or a camera; read ahead on a thread.

:func:`open_source` checks the input before any long work starts and raises :class:`VideoSourceError`
(a ``ValueError``) with one line naming it: a missing or zero-length file, a file OpenCV cannot read, a
video without frames, a folder without images, a camera index that does not open.

:class:`FrameReader` decodes on its own thread into a bounded queue, so that decoding frame i+1 overlaps
the pose work on frame i. A video file that stops decoding before the frame count its header gives
(corrupt or truncated halfway) ends the frames with a :class:`VideoSourceError` naming the frame.
"""
from __future__ import annotations

import dataclasses
import os
import queue
import threading
import time

import cv2
import numpy as np

from rsn_tf.data.images import try_read_image
from rsn_tf.inference.infer import IMAGE_EXTENSIONS

# FFmpeg's own messages ("[mpeg4 @ 0x..] header damaged") would interleave with ours; our errors say it once.
os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")


class VideoSourceError(ValueError):
    """The input cannot be read (the message names it and says what is wrong)."""


@dataclasses.dataclass
class SourceInfo:
    """What a source is: ``kind`` ("file", "frames", "camera"), its name, fps, frame size and the number
    of frames (``None`` for a camera)."""

    kind: str
    name: str
    fps: float
    width: int
    height: int
    num_frames: int | None

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def _quiet_opencv():
    try:
        import cv2.utils.logging as cvlog
        cvlog.setLogLevel(cvlog.LOG_LEVEL_ERROR)
    except (ImportError, AttributeError):  # older OpenCV builds
        pass


class FrameSource:
    """``read() -> frame [H, W, 3] BGR uint8 or None at the end``; ``info``; ``release()``."""

    info: SourceInfo

    def read(self) -> np.ndarray | None:
        raise NotImplementedError

    def release(self) -> None:
        pass


class _CaptureSource(FrameSource):
    """cv2.VideoCapture (a file or a camera); the first frame is read at open to check the source."""

    def __init__(self, cap, kind: str, name: str, default_fps: float, num_frames: int | None):
        self.cap = cap
        self.index = 0
        ok, first = cap.read()
        if not ok or first is None:
            cap.release()
            what = "a camera that gives no frames" if kind == "camera" else "no frames (a zero-length video)"
            raise VideoSourceError(f"{name}: {what}")
        self._first = first
        fps = float(cap.get(cv2.CAP_PROP_FPS) or 0.0)
        if not np.isfinite(fps) or fps <= 0 or fps > 1000:
            fps = default_fps
        self.info = SourceInfo(kind, name, fps, int(first.shape[1]), int(first.shape[0]), num_frames)

    def read(self):
        if self._first is not None:
            frame, self._first = self._first, None
        else:
            ok, frame = self.cap.read()
            if not ok or frame is None:
                frame = None
        if frame is None:
            self._check_end()
            return None
        self.index += 1
        return frame

    def _check_end(self):
        n = self.info.num_frames
        # Container frame counts can be estimates; allow 1% (at least one frame) short of it.
        if n is not None and self.index < n - max(1, n // 100):
            raise VideoSourceError(
                f"{self.info.name}: frame {self.index} of {n} cannot be decoded: the file is corrupt or truncated "
                f"after frame {self.index - 1} (the frames before it were processed)")

    def release(self):
        self.cap.release()


class FolderSource(FrameSource):
    """Image files of a folder in name order, each one frame."""

    def __init__(self, folder: str, fps: float):
        self.files = [os.path.join(folder, f) for f in sorted(os.listdir(folder)) if f.lower().endswith(IMAGE_EXTENSIONS)]
        if not self.files:
            raise VideoSourceError(f"{folder}: a folder of frames but no image files ({', '.join(IMAGE_EXTENSIONS)})")
        first, why = try_read_image(self.files[0], "exif")
        if first is None:
            raise VideoSourceError(f"{self.files[0]}: not a readable image ({why})")
        self.index = 0
        self.info = SourceInfo("frames", folder, float(fps), int(first.shape[1]), int(first.shape[0]), len(self.files))

    def read(self):
        if self.index >= len(self.files):
            return None
        path = self.files[self.index]
        frame, _ = try_read_image(path, "exif")  # frames are shown upright, as rsn infer treats photos
        if frame is None:
            raise VideoSourceError(f"{path}: frame {self.index} is not a readable image (the frames before it were "
                                   "processed)")
        if frame.shape[:2] != (self.info.height, self.info.width):
            raise VideoSourceError(f"{path}: frame {self.index} is {frame.shape[1]}x{frame.shape[0]}, the first frame "
                                   f"{self.info.width}x{self.info.height}; every frame must have one size")
        self.index += 1
        return frame


def open_source(spec: str, fps: float | None = None) -> FrameSource:
    """A video file, a folder of frames (``fps``, default 25) or a camera index ("0", "1", ...).

    ``fps`` overrides the frame rate a file or camera reports (used for timestamps and the output video).
    """
    _quiet_opencv()
    spec = str(spec)
    if spec.isdigit() and not os.path.exists(spec):
        index = int(spec)
        cap = cv2.VideoCapture(index)
        if not cap.isOpened():
            cap.release()
            device = f"/dev/video{index}"
            hint = "" if os.path.exists(device) else f" ({device} does not exist)"
            raise VideoSourceError(f"camera {index}: cannot be opened{hint}; pass a video file or a folder of frames, "
                                   "or the index of a connected camera")
        src = _CaptureSource(cap, "camera", f"camera {index}", fps or 30.0, None)
    elif os.path.isdir(spec):
        src = FolderSource(spec, fps or 25.0)
    else:
        if not os.path.exists(spec):
            raise VideoSourceError(f"video not found: {spec}")
        if os.path.getsize(spec) == 0:
            raise VideoSourceError(f"{spec}: a zero-length video (0 bytes)")
        cap = cv2.VideoCapture(spec)
        if not cap.isOpened():
            cap.release()
            raise VideoSourceError(f"{spec}: not a video OpenCV can read (unknown format, or the file is damaged or "
                                   "truncated so that its index is missing)")
        count = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
        src = _CaptureSource(cap, "file", spec, fps or 25.0, count if count > 0 else None)
    if fps:
        src.info.fps = float(fps)
    return src


_END = object()


class FrameReader:
    """Decode ``source`` on a background thread, at most ``queue_size`` frames ahead.

    Iterate to get ``(index, frame)``; a read error is raised from the iteration after the frames before it.
    ``decode_s``: seconds the thread spent reading; ``wait_s``: seconds the consumer waited for a frame.
    ``stop()`` ends the thread (also on an exception or Ctrl-C in the consumer).
    """

    def __init__(self, source: FrameSource, queue_size: int = 4, max_frames: int | None = None):
        self.source = source
        self.max_frames = max_frames
        self.queue: queue.Queue = queue.Queue(maxsize=max(1, int(queue_size)))
        self.decode_s = 0.0
        self.wait_s = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rsn-frame-reader", daemon=True)
        self._thread.start()

    def _put(self, item) -> bool:
        while not self._stop.is_set():
            try:
                self.queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _run(self):
        index = 0
        try:
            while not self._stop.is_set() and (self.max_frames is None or index < self.max_frames):
                t0 = time.perf_counter()
                frame = self.source.read()
                self.decode_s += time.perf_counter() - t0
                if frame is None:
                    break
                if not self._put((index, frame)):
                    return
                index += 1
            self._put(_END)
        except Exception as e:  # handed to the consumer, raised there
            self._put(e)

    def __iter__(self):
        while True:
            t0 = time.perf_counter()
            while True:
                try:
                    item = self.queue.get(timeout=0.1)
                    break
                except queue.Empty:
                    if not self._thread.is_alive() and self.queue.empty():
                        item = _END
                        break
            self.wait_s += time.perf_counter() - t0
            if item is _END:
                return
            if isinstance(item, Exception):
                raise item
            yield item

    def stop(self):
        self._stop.set()
        while True:  # unblock a put
            try:
                self.queue.get_nowait()
            except queue.Empty:
                break
        self._thread.join(timeout=5)
        self.source.release()
