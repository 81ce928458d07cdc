"""Settings of ``rsn video``: the tracker, the One Euro smoothing and the frame loop, as typed dataclasses.

A YAML file (``configs/video/default.yaml``) holds the same keys; ``--set tracker.keyframe_interval=5`` overrides
one. Unknown keys are errors that name the key (:func:`rsn_tf.config.from_dict`).
"""
from __future__ import annotations

import dataclasses
from typing import Literal

from rsn_tf.config import ConfigError, apply_overrides, from_dict, load_yaml, to_dict


@dataclasses.dataclass
class TrackerConfig:
    """How person boxes are found and tracks kept (see ``docs/video.md``).

    Scores are the estimator's (authors' rule: a keypoint's is its heatmap peak / 255 + 0.5, the instance
    score their mean; 0.5 for an empty crop, 1.5 for perfect peaks). The defaults suit a model whose peaks
    are low, like the demo's (people score about 0.55-0.7, empty crops 0.5-0.56); a sharper model only
    keeps its tracks more easily with them.

    Attributes:
      keyframe_interval: run the box source (detector / box file / full frame) every N frames (1 = every frame).
      redetect_score: a track whose pose scores below this asks for a key frame on the next frame.
      keep_score: a track whose pose, from its own box, scores below this ends ("lost").
      new_track_score: a detection's pose must score at least this to start a track.
      match: ``"oks"`` (object keypoint similarity of the new pose to the track's last one) or ``"iou"``
        (box IoU); layouts without OKS sigmas use IoU.
      match_threshold: minimum similarity for a detection to continue a track.
      duplicate_similarity: two tracks whose poses are more alike than this (OKS) follow one person:
        the younger ends ("merged").
      max_missed_keyframes: a track that no detection matches on this many key frames in a row ends.
      coast_frames: a track that lost its person (its pose scored below ``keep_score``, or it was merged)
        moves on by its last motion for up to this many frames, hidden, and resumes with its id if a
        key-frame detection matches it (a key frame is forced on the next frame); 0 = end at once.
      box_scale: the box from a track's own pose is centred on the extent of its keypoints; its size follows
        that extent scaled by this (then the estimator's test box padding and aspect fix apply, as for any box).
      box_size_rate: how fast that size follows the pose (per frame, 0..1); a key-frame box sets it.
      keypoint_threshold: keypoints whose score is below this are left out of that extent.
      motion_prediction: shift the own-pose box by the track's last frame-to-frame motion.
      min_inside: a track whose box has less than this fraction of its area inside the frame has left it.
    """

    keyframe_interval: int = 10
    redetect_score: float = 0.6
    keep_score: float = 0.55
    new_track_score: float = 0.58
    match: Literal["oks", "iou"] = "oks"
    match_threshold: float = 0.3
    duplicate_similarity: float = 0.75
    max_missed_keyframes: int = 2
    coast_frames: int = 10
    box_scale: float = 1.15
    box_size_rate: float = 0.2
    keypoint_threshold: float = 0.57
    motion_prediction: bool = True
    min_inside: float = 0.25

    def __post_init__(self):
        if self.keyframe_interval < 1:
            raise ConfigError(f"tracker.keyframe_interval must be >= 1 (got {self.keyframe_interval})")
        if self.max_missed_keyframes < 1:
            raise ConfigError(f"tracker.max_missed_keyframes must be >= 1 (got {self.max_missed_keyframes})")
        if self.box_scale <= 0 or not 0 <= self.box_size_rate <= 1:
            raise ConfigError(f"tracker.box_scale must be > 0 and box_size_rate in [0, 1] (got {self.box_scale}, "
                              f"{self.box_size_rate})")


@dataclasses.dataclass
class SmoothingConfig:
    """One Euro filter on each keypoint coordinate (Casiez et al., CHI 2012). Off by default (evaluation).

    The cutoff is ``min_cutoff + beta * speed`` Hz, with the speed in person heights per second (the track's
    box height), so one setting fits near and far people.

    Attributes:
      enabled: smooth the keypoints written to poses.json and drawn (the raw ones are used for tracking).
      min_cutoff: Hz; lower = smoother when still.
      beta: Hz per (height/s); higher = less lag when moving.
      d_cutoff: Hz; cutoff of the speed estimate.
    """

    enabled: bool = False
    min_cutoff: float = 0.3
    beta: float = 30.0
    d_cutoff: float = 1.0

    def __post_init__(self):
        if self.min_cutoff <= 0 or self.d_cutoff <= 0 or self.beta < 0:
            raise ConfigError("smoothing: min_cutoff and d_cutoff must be > 0 and beta >= 0 "
                              f"(got {self.min_cutoff}, {self.d_cutoff}, {self.beta})")


@dataclasses.dataclass
class VideoConfig:
    """Everything ``rsn video`` does besides the model.

    Attributes:
      tracker, smoothing: see :class:`TrackerConfig`, :class:`SmoothingConfig`.
      flip_test: also run the mirrored crop (twice the network work; off for real time).
      det_threshold: detector score threshold (``--boxes detector``).
      queue_size: frames the reader thread may decode ahead of the pose loop.
      draw: write ``overlay.mp4``.
      batch_size: persons per network call.
    """

    tracker: TrackerConfig = dataclasses.field(default_factory=TrackerConfig)
    smoothing: SmoothingConfig = dataclasses.field(default_factory=SmoothingConfig)
    flip_test: bool = False
    det_threshold: float = 0.5
    queue_size: int = 4
    draw: bool = True
    batch_size: int = 8

    def __post_init__(self):
        if self.queue_size < 1:
            raise ConfigError(f"queue_size must be >= 1 (got {self.queue_size})")

    def to_dict(self) -> dict:
        return to_dict(self)


def load_video_config(path: str | None = None, overrides: list[str] | None = None) -> VideoConfig:
    """A :class:`VideoConfig` from a YAML file (or the defaults) with ``key=value`` overrides."""
    data = load_yaml(path) if path else {}
    try:
        apply_overrides(data, overrides or [])
        return from_dict(VideoConfig, data)
    except ConfigError as e:
        raise ConfigError(f"{path or 'video config'}: {e}") from None
