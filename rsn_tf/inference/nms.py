"""OKS-NMS over one image's poses (HRNet's ``oks_nms``; off by default, as in both references)."""
from __future__ import annotations

from typing import Sequence

import numpy as np


def oks_iou(kpts: np.ndarray, others: np.ndarray, area: float, others_area: np.ndarray,
            sigmas: Sequence[float], vis_thr: float | None = None, others_scores=None, scores=None) -> np.ndarray:
    """OKS of one pose against many (COCO formula, the first pose acting as ground truth).

    kpts: [K, 2]; others: [M, K, 2]; area: the first pose's region area (px^2); others_area: [M].
    With ``vis_thr``, only keypoints whose score exceeds it in both poses count.
    Returns [M] in [0, 1].
    """
    sig = np.asarray(sigmas, np.float64)
    var = (sig * 2) ** 2
    d2 = ((np.asarray(others, np.float64) - np.asarray(kpts, np.float64)[None]) ** 2).sum(-1)  # [M, K]
    area_mean = (area + np.asarray(others_area, np.float64))[:, None] / 2
    e = d2 / var[None] / (area_mean + np.spacing(1)) / 2
    if vis_thr is not None and scores is not None and others_scores is not None:
        ok = (np.asarray(scores)[None] > vis_thr) & (np.asarray(others_scores) > vis_thr)
        return np.array([np.exp(-e[i][ok[i]]).mean() if ok[i].any() else 0.0 for i in range(len(e))])
    return np.exp(-e).mean(axis=1)


def oks_nms(keypoints, scores, areas, sigmas: Sequence[float], threshold: float = 0.9,
            keypoint_scores=None, vis_thr: float | None = None) -> list[int]:
    """Greedy NMS: keep the highest-scoring pose, drop the others whose OKS with it > ``threshold``.

    keypoints: [N, K, 2]; scores: [N] instance scores; areas: [N] region areas (px^2).
    Returns the kept indices, best first.
    """
    kpts = np.asarray(keypoints, np.float64)
    if len(kpts) == 0:
        return []
    scores = np.asarray(scores, np.float64)
    areas = np.asarray(areas, np.float64)
    ks = None if keypoint_scores is None else np.asarray(keypoint_scores)
    order = list(np.argsort(-scores, kind="stable"))
    keep = []
    while order:
        i = order[0]
        keep.append(int(i))
        rest = np.array(order[1:], int)
        if rest.size == 0:
            break
        o = oks_iou(kpts[i], kpts[rest], areas[i], areas[rest], sigmas, vis_thr,
                    None if ks is None else ks[rest], None if ks is None else ks[i])
        order = [int(j) for j, v in zip(rest, o) if v <= threshold]
    return keep
