"""MPII PCKh (HRNet/authors' ``mpii.py`` style), on mmpose's list-format MPII JSON.

PCKh@t: a joint is correct when ``||pred - gt|| <= t * head_size``. Per joint the rate is over the
persons where that joint is labelled; groups average left/right; ``Mean`` weights every joint by its
labelled count and leaves out pelvis and thorax (as the references do).

Head size, in order of preference:
1. ``headbox`` [x1, y1, x2, y2] in the entry: ``0.6 x ||headbox diagonal||`` (the MPII/HRNet rule).
2. ``head_size`` in the entry (px), used as is.
3. **Fallback** (mmpose's list-format JSON, e.g. ``test_mpii.json``, has no head boxes):
   ``||head_top - upper_neck||`` from the ground-truth joints, i.e. the head *segment* length that
   PCKh is defined on and that 0.6 x headbox-diagonal approximates. Numbers computed this way are
   labelled ``head_size_source: "head_segment_fallback"`` and are close to, not identical with, the
   official protocol.

Coordinates: the MPII JSON is 1-based (MATLAB); the one MPII reader, :func:`rsn_tf.data.mpii.read_mpii`
(training uses it too), converts joints and centres to 0-based pixels, so predictions are compared
0-based to 0-based with the same points the model was trained on.
"""
from __future__ import annotations

import logging
from typing import Sequence

import numpy as np

from rsn_tf.data.mpii import HEAD_TOP, SC_BIAS, UPPER_NECK, MpiiEntry, read_mpii  # noqa: F401  (re-exported)
from rsn_tf.keypoints import MPII

log = logging.getLogger("rsn_tf.evaluation")

PELVIS, THORAX = MPII.names.index("pelvis"), MPII.names.index("thorax")
#: PCKh groups in the order the papers report them; indices into the MPII layout.
GROUPS = {
    "Head": (HEAD_TOP,),
    "Shoulder": (MPII.names.index("left_shoulder"), MPII.names.index("right_shoulder")),
    "Elbow": (MPII.names.index("left_elbow"), MPII.names.index("right_elbow")),
    "Wrist": (MPII.names.index("left_wrist"), MPII.names.index("right_wrist")),
    "Hip": (MPII.names.index("left_hip"), MPII.names.index("right_hip")),
    "Knee": (MPII.names.index("left_knee"), MPII.names.index("right_knee")),
    "Ankle": (MPII.names.index("left_ankle"), MPII.names.index("right_ankle")),
}


def load_mpii(path: str) -> list[MpiiEntry]:
    """The persons of an MPII list-format file for PCKh, read by the project's one MPII reader
    (:func:`rsn_tf.data.mpii.read_mpii`: 0-based joints, the references' test region, head sizes)."""
    entries = read_mpii(path)
    missing = [e.image for e in entries if e.head_size_source == "missing"]
    if missing:
        log.warning("%s: %d persons have no headbox and no head_top/upper_neck pair; left out of PCKh: %s",
                    path, len(missing), missing[:10])
    return entries


def pckh(pred, gt, visible, head_size, thresholds: Sequence[float] = (0.5, 0.1)) -> dict:
    """PCKh per joint, per group and the mean, in percent.

    pred, gt: [N, 16, 2] px; visible: [N, 16] (labelled joints); head_size: [N] px (NaN = skip person).
    Returns {"PCKh@0.5": {"Head": .., ..., "Mean": ..}, "PCKh@0.1": {...}, "per_joint@0.5": [16], "count": [16]}.
    """
    pred, gt = np.asarray(pred, np.float64), np.asarray(gt, np.float64)
    head = np.asarray(head_size, np.float64)
    vis = np.asarray(visible, bool) & np.isfinite(head)[:, None] & (head > 0)[:, None]
    err = np.linalg.norm(pred - gt, axis=-1) / np.where(head > 0, head, 1.0)[:, None]  # [N, 16]
    count = vis.sum(0)
    mask = np.ones(16, bool)
    mask[[PELVIS, THORAX]] = False
    ratio = np.where(mask, count, 0) / max(int(np.where(mask, count, 0).sum()), 1)
    out = {"count": count.tolist()}
    for t in thresholds:
        hit = ((err <= t) & vis).sum(0)
        with np.errstate(invalid="ignore", divide="ignore"):
            per_joint = 100.0 * hit / count  # NaN where a joint is never labelled
        groups = {name: float(np.nanmean(per_joint[list(idx)])) if np.isfinite(per_joint[list(idx)]).any()
                  else float("nan") for name, idx in GROUPS.items()}
        groups["Mean"] = float(np.nansum(per_joint * ratio))
        out[f"PCKh@{t}"] = groups
        out[f"per_joint@{t}"] = [None if not np.isfinite(v) else float(v) for v in per_joint]
    return out


def format_table(result: dict) -> str:
    """Markdown table: one row per threshold, the reported groups + Mean."""
    names = list(GROUPS) + ["Mean"]
    lines = ["| PCKh | " + " | ".join(names) + " |", "|" + "---|" * (len(names) + 1)]
    for key, groups in result.items():
        if not key.startswith("PCKh@"):
            continue
        vals = ["n/a" if not np.isfinite(groups[n]) else f"{groups[n]:.1f}" for n in names]
        lines.append(f"| {key[5:]} | " + " | ".join(vals) + " |")
    return "\n".join(lines)
