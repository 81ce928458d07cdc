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

Coordinates: the MPII JSON is 1-based (MATLAB); :func:`load_mpii` converts joints and centers to
0-based pixels (HRNet does the same), so predictions are compared 0-based to 0-based.
"""
from __future__ import annotations

import dataclasses
import logging
from typing import Sequence

import numpy as np

from rsn_tf.io_utils import read_json
from rsn_tf.keypoints import MPII

log = logging.getLogger("rsn_tf.evaluation")

HEAD_TOP, UPPER_NECK = MPII.names.index("head_top"), MPII.names.index("upper_neck")
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
SC_BIAS = 0.6  # MPII: head size = 0.6 x head box diagonal


@dataclasses.dataclass
class MpiiEntry:
    """One annotated person: 0-based joints [16, 2], visible [16] bool, the authors' test region."""

    image: str
    joints: np.ndarray
    visible: np.ndarray
    center: np.ndarray  # [2] px, 0-based, y shifted by 15*s (HRNet/authors)
    scale: np.ndarray  # [2] px, 1.25 * 200 * s
    head_size: float
    head_size_source: str


def load_mpii(path: str) -> list[MpiiEntry]:
    """Read mmpose's list-format MPII JSON (``image``, ``joints`` [16x2], ``joints_vis``, ``center``, ``scale``)."""
    data = read_json(path, "MPII annotation file")
    if not isinstance(data, list):
        raise ValueError(f"{path}: expected a JSON list of MPII entries (mmpose list format)")
    out = []
    for i, a in enumerate(data):
        for field in ("image", "joints", "center", "scale"):
            if field not in a:
                raise ValueError(f"{path}: entry [{i}] has no {field!r} field")
        joints = np.asarray(a["joints"], np.float32).reshape(-1, 2)
        if joints.shape[0] != MPII.num_keypoints:
            raise ValueError(f"{path}: entry [{i}] 'joints' has {joints.shape[0]} joints; expected 16")
        vis = np.asarray(a.get("joints_vis", [1] * 16), np.float32).reshape(-1) > 0
        joints = joints - 1.0  # MATLAB 1-based -> 0-based
        c = np.asarray(a["center"], np.float32).copy()
        s = float(a["scale"])
        if c[0] != -1:
            c[1] += 15 * s  # the references' adjustment "to avoid cropping limbs"
            s *= 1.25
        c -= 1.0
        if "headbox" in a:
            hb = np.asarray(a["headbox"], np.float32).reshape(2, 2)
            hs, src = SC_BIAS * float(np.linalg.norm(hb[1] - hb[0])), "headbox"
        elif "head_size" in a:
            hs, src = float(a["head_size"]), "head_size"
        elif vis[HEAD_TOP] and vis[UPPER_NECK]:
            hs, src = float(np.linalg.norm(joints[HEAD_TOP] - joints[UPPER_NECK])), "head_segment_fallback"
        else:
            hs, src = float("nan"), "missing"
        out.append(MpiiEntry(str(a["image"]), joints, vis, c, np.array([s * 200.0, s * 200.0], np.float32), hs, src))
    missing = [e.image for e in out if e.head_size_source == "missing"]
    if missing:
        log.warning("%s: %d persons have no headbox and no head_top/upper_neck pair; left out of PCKh: %s",
                    path, len(missing), missing[:10])
    return out


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
