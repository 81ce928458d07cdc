"""One Euro filter (Casiez, Roussel, Vogel, CHI 2012) over a track's keypoints.

An adaptive low-pass filter: at rest the cutoff is ``min_cutoff`` (smooth, removes jitter); moving, it
rises with the speed (``+ beta x speed``), so fast motion is followed with little lag. Here the speed is
each keypoint's (x, y) speed in units of ``scale`` per second (the person's box height), so one setting
suits near and far people.
"""
from __future__ import annotations

import numpy as np


def smoothing_factor(dt: float, cutoff) -> np.ndarray:
    """Exponential smoothing weight of a first-order low-pass at ``cutoff`` Hz for a step of ``dt`` s."""
    tau = 1.0 / (2.0 * np.pi * np.asarray(cutoff, np.float64))
    return 1.0 / (1.0 + tau / dt)


class OneEuroFilter:
    """Filter an array of points [..., 2] (e.g. keypoints [K, 2], px) sampled at times ``t`` (s).

    ``f(points, t, scale)`` returns the filtered points (the first call returns its input). ``scale``:
    px per unit of speed (e.g. the person's height in px; 1 = px/s).
    """

    def __init__(self, min_cutoff: float = 0.3, beta: float = 30.0, d_cutoff: float = 1.0):
        self.min_cutoff, self.beta, self.d_cutoff = float(min_cutoff), float(beta), float(d_cutoff)
        self.x = self.dx = self.t = None

    def __call__(self, points, t: float, scale: float = 1.0) -> np.ndarray:
        x = np.asarray(points, np.float64)
        if self.x is None or self.x.shape != x.shape:
            self.x, self.dx, self.t = x.copy(), np.zeros_like(x), float(t)
            return x.astype(np.float32)
        dt = float(t) - self.t
        if dt <= 0:  # a repeated timestamp: nothing new to filter
            return self.x.astype(np.float32)
        a_d = smoothing_factor(dt, self.d_cutoff)
        self.dx = a_d * (x - self.x) / dt + (1 - a_d) * self.dx
        speed = np.linalg.norm(self.dx, axis=-1, keepdims=True) / max(float(scale), 1e-6)
        a = smoothing_factor(dt, self.min_cutoff + self.beta * speed)
        self.x = a * x + (1 - a) * self.x
        self.t = float(t)
        return self.x.astype(np.float32)
