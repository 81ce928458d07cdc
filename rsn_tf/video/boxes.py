"""Person boxes on key frames: the SSDLite detector, a box file, or the full frame.

Every source is ``source(frame, index) -> [PersonBox]`` (image pixels). Between key frames a track's box
comes from its own previous pose (:mod:`rsn_tf.video.tracker`), never from here.

Box files (``--boxes FILE``), either of:

- a clip's ``truth.json`` from ``rsn synth-video`` (each frame's ``people[].box``; score 1);
- ``{"frames": [{"index": i, "boxes": [[x, y, w, h(, score)], ...]}, ...]}`` (e.g. a detector run offline).

Frames a box file does not list have no boxes. Boxes smaller than ``min_size`` px on a side or with no pixel
inside the frame are dropped (:func:`rsn_tf.inference.boxes.sanitize_boxes`; detections keep their size).
"""
from __future__ import annotations

from rsn_tf.inference.boxes import PersonBox, sanitize_boxes
from rsn_tf.io_utils import read_json

FULL_FRAME = ("full-frame", "full-image")


class BoxSource:
    """``source(frame, index) -> [PersonBox]``; ``name`` says what it is."""

    name = "?"

    def __init__(self, min_size: float = 4.0):
        self.min_size = float(min_size)

    def boxes(self, frame, index: int) -> list[PersonBox]:
        raise NotImplementedError

    def __call__(self, frame, index: int) -> list[PersonBox]:
        h, w = frame.shape[:2]
        kept, _, _ = sanitize_boxes(self.boxes(frame, index), w, h, clip=False)
        return [b for b in kept if min(b.xywh[2], b.xywh[3]) >= self.min_size]


class FullFrameBoxes(BoxSource):
    """One box = the whole frame (single-person clips without a detector)."""

    name = "full-frame"

    def boxes(self, frame, index):
        h, w = frame.shape[:2]
        return [PersonBox((0.0, 0.0, float(w - 1), float(h - 1)), 1.0)]


class DetectorBoxes(BoxSource):
    """The optional SSDLite-MobileNetV2 person detector (:class:`rsn_tf.inference.boxes.SSDLiteDetector`)."""

    name = "detector"

    def __init__(self, threshold: float = 0.5, min_size: float = 4.0):
        super().__init__(min_size)
        from rsn_tf.inference.boxes import SSDLiteDetector

        self.detector = SSDLiteDetector(threshold)

    def boxes(self, frame, index):
        return self.detector.detect(frame)


class FileBoxes(BoxSource):
    """Boxes per frame index from a box file (see the module docstring)."""

    def __init__(self, path: str, min_size: float = 4.0):
        super().__init__(min_size)
        self.name = path
        data = read_json(path, "box file")
        frames = data.get("frames") if isinstance(data, dict) else None
        if not isinstance(frames, list):
            raise ValueError(f"{path}: a box file must be {{'frames': [{{'index', 'boxes': [[x, y, w, h(, score)]]}}]}} "
                             "or a truth.json of rsn synth-video")
        self.by_frame: dict[int, list[PersonBox]] = {}
        for i, f in enumerate(frames):
            if not isinstance(f, dict) or "index" not in f:
                raise ValueError(f"{path}: frames[{i}] has no 'index'")
            if "boxes" in f:
                rows = f["boxes"]
            elif "people" in f:  # truth.json
                rows = [p.get("box") for p in f["people"]]
            else:
                raise ValueError(f"{path}: frames[{i}] has neither 'boxes' nor 'people'")
            boxes = []
            for j, r in enumerate(rows):
                if not isinstance(r, (list, tuple)) or len(r) not in (4, 5):
                    raise ValueError(f"{path}: frames[{i}] box {j} must be [x, y, w, h] or [x, y, w, h, score], "
                                     f"got {r!r}")
                boxes.append(PersonBox(tuple(float(v) for v in r[:4]), float(r[4]) if len(r) == 5 else 1.0))
            self.by_frame[int(f["index"])] = boxes

    def boxes(self, frame, index):
        return list(self.by_frame.get(int(index), []))


def make_box_source(spec: str, det_threshold: float = 0.5) -> BoxSource:
    """``"full-frame"``, ``"detector"`` or a box file path."""
    if spec in FULL_FRAME:
        return FullFrameBoxes()
    if spec == "detector":
        return DetectorBoxes(det_threshold)
    return FileBoxes(spec)
