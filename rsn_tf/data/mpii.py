"""MPII in the common JSON list format: the one reader for training (:func:`load_mpii` -> :class:`Instances`)
and PCKh evaluation (:func:`read_mpii` -> :class:`MpiiEntry` list, used by :mod:`rsn_tf.evaluation.mpii`).

Each entry: ``image`` (file name), ``joints`` [16][2], ``joints_vis`` [16] (1 = labelled), ``center`` [2]
and ``scale`` (person height / 200 px); optional ``headbox`` [[x1, y1], [x2, y2]] or ``head_size`` (px).

Coordinates: the file is **1-based** (MPII's MATLAB origin). :func:`read_mpii` converts ``joints``,
``center`` and ``headbox`` to 0-based pixels once, so training targets and evaluation ground truth from
the same file are the same points (HRNet and the authors do the same; mmpose 1.x converts only the
centre and adds 1 to its predictions at evaluation).

The person region follows the references (HRNet/RSN ``mpii.py``): centre y += 15 * scale, side =
scale * 200 * 1.25 (no adjustment for an unknown centre, x = -1 in the file). Labelled joints get
visibility 2: the list format carries no occlusion flag, and the authors' loss keeps levels 0-2 only
for v > 1.
"""
from __future__ import annotations

import dataclasses
import logging
import os

import numpy as np

from rsn_tf.data.images import check_image_file
from rsn_tf.data.instances import Instances
from rsn_tf.io_utils import read_json
from rsn_tf.keypoints import MPII, get_spec

log = logging.getLogger(__name__)

_FIELDS = ("image", "joints", "joints_vis", "center", "scale")
#: Head size = SC_BIAS x head box diagonal (the MPII/HRNet rule).
SC_BIAS = 0.6
HEAD_TOP, UPPER_NECK = MPII.names.index("head_top"), MPII.names.index("upper_neck")


@dataclasses.dataclass(frozen=True)
class MpiiEntry:
    """One annotated MPII person, 0-based pixels.

    Attributes:
      index: row in the file; image: file name (relative to the image folder).
      joints: [K, 2] float32 0-based px; visible: [K] bool (labelled).
      center: [2] float32 region centre, 0-based px, y shifted by ``center_shift * s`` (references' rule).
      scale: [2] float32 region side (w, h) in px, ``scale_factor * 200 * s``.
      head_size: PCKh normaliser in px (NaN if unknown); head_size_source: ``"headbox"``, ``"head_size"``,
        ``"head_segment_fallback"`` (``||head_top - upper_neck||``, the file has no head boxes) or ``"missing"``.
    """

    index: int
    image: str
    joints: np.ndarray
    visible: np.ndarray
    center: np.ndarray
    scale: np.ndarray
    head_size: float
    head_size_source: str

    @property
    def box(self) -> list[float]:
        """The region as an [x, y, w, h] box (image px)."""
        return [float(self.center[0] - self.scale[0] / 2), float(self.center[1] - self.scale[1] / 2),
                float(self.scale[0]), float(self.scale[1])]


def _numbers(value, shape, where: str, field: str) -> np.ndarray:
    try:
        arr = np.asarray(value, np.float32)
    except (TypeError, ValueError):
        raise ValueError(f"{where}: field '{field}' holds non-numbers: {value!r}") from None
    if shape is not None and arr.shape != shape:
        raise ValueError(f"{where}: field '{field}' has shape {arr.shape}, expected {shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{where}: field '{field}' holds NaN/inf")
    return arr


def read_mpii(ann_path: str, num_keypoints: int = MPII.num_keypoints, scale_factor: float = 1.25,
              center_shift: float = 15.0) -> list[MpiiEntry]:
    """Read and validate every entry of an MPII list-format file (see the module docstring).

    Raises ``ValueError`` naming the file, the entry index and the field for malformed entries; entries with
    ``scale <= 0`` are skipped with a warning (they have no region).
    """
    data = read_json(ann_path, "MPII annotation file")
    if not isinstance(data, list):
        raise ValueError(f"{ann_path}: expected a JSON list of entries with {list(_FIELDS)} (MPII list format)")
    k = int(num_keypoints)
    out: list[MpiiEntry] = []
    for i, entry in enumerate(data):
        where = f"{ann_path}: entry {i}"
        if not isinstance(entry, dict):
            raise ValueError(f"{where}: expected an object, got {type(entry).__name__}")
        for field in _FIELDS:
            if field not in entry:
                raise ValueError(f"{where}: missing field '{field}'")
        if not isinstance(entry["image"], str) or not entry["image"]:
            raise ValueError(f"{where}: field 'image' must be a file name, got {entry['image']!r}")
        joints = _numbers(entry["joints"], None, where, "joints")
        if joints.shape != (k, 2):
            raise ValueError(f"{where}: field 'joints' has shape {joints.shape}, expected ({k}, 2): "
                             f"{k} joints of the {'MPII' if k == 16 else str(k) + '-keypoint'} layout")
        jvis = _numbers(entry["joints_vis"], None, where, "joints_vis").reshape(-1)
        if jvis.shape != (k,):
            raise ValueError(f"{where}: field 'joints_vis' has {jvis.size} values, expected {k}")
        center = _numbers(entry["center"], None, where, "center").reshape(-1)
        if center.shape != (2,):
            raise ValueError(f"{where}: field 'center' must be [x, y], got {entry['center']!r}")
        try:
            s = float(entry["scale"])
        except (TypeError, ValueError):
            raise ValueError(f"{where}: field 'scale' must be a number, got {entry['scale']!r}") from None
        if not s > 0:
            log.warning("%s: field 'scale' is %s (a zero-area region), skipped", where, entry["scale"])
            continue
        visible = jvis > 0
        joints0 = joints - 1.0  # MATLAB 1-based -> 0-based
        c = center.copy()
        if c[0] != -1:
            c[1] += center_shift * s  # the references' adjustment "to avoid cropping limbs"
        c -= 1.0
        side = s * 200.0 * scale_factor
        if "headbox" in entry:
            hb = _numbers(entry["headbox"], None, where, "headbox").reshape(-1)
            if hb.size != 4:
                raise ValueError(f"{where}: field 'headbox' must be [[x1, y1], [x2, y2]], got {entry['headbox']!r}")
            hs, src = SC_BIAS * float(np.linalg.norm(hb[2:] - hb[:2])), "headbox"
        elif "head_size" in entry:
            hs, src = float(_numbers(entry["head_size"], (), where, "head_size")), "head_size"
        elif k == MPII.num_keypoints and visible[HEAD_TOP] and visible[UPPER_NECK]:
            hs, src = float(np.linalg.norm(joints0[HEAD_TOP] - joints0[UPPER_NECK])), "head_segment_fallback"
        else:
            hs, src = float("nan"), "missing"
        out.append(MpiiEntry(i, entry["image"], joints0.astype(np.float32), visible, c.astype(np.float32),
                             np.array([side, side], np.float32), hs, src))
    return out


def load_mpii(ann_path: str, image_dir: str, keypoints: str | None = "mpii", check_images: bool = True,
              skip_bad_images: bool = False, scale_factor: float = 1.25, center_shift: float = 15.0) -> Instances:
    """Instances of an MPII-format list file, in file order (ann_ids = row index), 0-based pixels.

    check_images: check each image exists and has an image header (missing -> ``FileNotFoundError``,
    or a logged skip with ``skip_bad_images``).
    """
    spec = get_spec(keypoints or "mpii")
    k = spec.num_keypoints
    entries = read_mpii(ann_path, k, scale_factor, center_shift)
    rows = dict(path=[], image_id=[], box=[], kpts=[], vis=[], ann_id=[])
    names: dict[str, int] = {}
    status: dict[str, str | None] = {}
    skipped = 0
    for e in entries:
        path = os.path.join(image_dir, e.image)
        if check_images:
            if path not in status:
                status[path] = check_image_file(path)
            if status[path] is not None:
                if not skip_bad_images:
                    err = FileNotFoundError if status[path] == "file not found" else ValueError
                    raise err(f"{path}: {status[path]} ({ann_path}: entry {e.index}, field 'image')")
                skipped += 1
                continue
        rows["path"].append(path)
        stem = os.path.splitext(os.path.basename(e.image))[0]
        rows["image_id"].append(int(stem) if stem.isdigit() else names.setdefault(e.image, len(names)))
        rows["box"].append(e.box)
        rows["kpts"].append(e.joints)
        rows["vis"].append(np.where(e.visible, 2.0, 0.0))
        rows["ann_id"].append(e.index)
    if skipped:
        log.warning("%s: skipped %d entries with unreadable images", ann_path, skipped)
    n = len(rows["path"])
    boxes = np.asarray(rows["box"], np.float32).reshape(n, 4)
    return Instances(
        image_paths=tuple(rows["path"]), image_ids=np.asarray(rows["image_id"], np.int64).reshape(n), boxes=boxes,
        keypoints=np.asarray(rows["kpts"], np.float32).reshape(n, k, 2),
        visible=np.asarray(rows["vis"], np.float32).reshape(n, k), areas=boxes[:, 2] * boxes[:, 3],
        scores=np.ones((n,), np.float32), ann_ids=np.asarray(rows["ann_id"], np.int64).reshape(n), spec=spec,
        source=ann_path)
