"""Pose on video: frame sources, key-frame boxes, tracking, One Euro smoothing, the frame loop, metrics.

``rsn video`` is :func:`rsn_tf.video.run.run_video` over a :class:`rsn_tf.inference.PoseEstimator` whose
network is any runtime (:func:`rsn_tf.video.model.build_estimator`). See ``docs/video.md``.
"""
from rsn_tf.video.config import SmoothingConfig, TrackerConfig, VideoConfig, load_video_config
from rsn_tf.video.run import run_video
from rsn_tf.video.smoothing import OneEuroFilter
from rsn_tf.video.source import VideoSourceError, open_source
from rsn_tf.video.tracker import Tracker

__all__ = ["OneEuroFilter", "SmoothingConfig", "Tracker", "TrackerConfig", "VideoConfig", "VideoSourceError",
           "load_video_config", "open_source", "run_video"]
