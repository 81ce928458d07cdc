"""MPII in the common JSON list format -> :class:`Instances`.

Each entry: ``image`` (file name), ``joints`` [16][2] (0-based pixels), ``joints_vis`` [16] (1 =
labelled), ``center`` [2] and ``scale`` (person height / 200 px). The box follows the references
(HRNet/RSN ``mpii.py``): centre y += 15 * scale, side = scale * 200 * 1.25.

Labelled joints get visibility 2: the list format carries no occlusion flag, and the authors' loss
keeps levels 0-2 only for v > 1.
"""
from __future__ import annotations

import os

import numpy as np

from rsn_tf.data.images import check_image_file
from rsn_tf.data.instances import Instances
from rsn_tf.io_utils import read_json
from rsn_tf.keypoints import get_spec

_FIELDS = ("image", "joints", "joints_vis", "center", "scale")


def load_mpii(ann_path: str, image_dir: str, keypoints: str | None = "mpii", check_images: bool = True,
              skip_bad_images: bool = False, scale_factor: float = 1.25, center_shift: float = 15.0) -> Instances:
    """Instances of an MPII-format list file, in file order (ann_ids = row index)."""
    import logging

    log = logging.getLogger(__name__)
    data = read_json(ann_path, "MPII annotation file")
    if not isinstance(data, list):
        raise ValueError(f"{ann_path}: expected a JSON list of entries with {list(_FIELDS)}")
    spec = get_spec(keypoints or "mpii")
    k = spec.num_keypoints
    rows = dict(path=[], image_id=[], box=[], kpts=[], vis=[], ann_id=[])
    names: dict[str, int] = {}
    status: dict[str, str | None] = {}
    skipped = 0
    for i, entry in enumerate(data):
        where = f"{ann_path}: entry {i}"
        if not isinstance(entry, dict):
            raise ValueError(f"{where}: expected an object, got {type(entry).__name__}")
        for field in _FIELDS:
            if field not in entry:
                raise ValueError(f"{where}: missing field '{field}'")
        joints = np.asarray(entry["joints"], np.float32)
        jvis = np.asarray(entry["joints_vis"], np.float32).reshape(-1)
        if joints.shape != (k, 2):
            raise ValueError(f"{where}: field 'joints' has shape {joints.shape}, expected ({k}, 2)")
        if jvis.shape != (k,):
            raise ValueError(f"{where}: field 'joints_vis' has {jvis.size} values, expected {k}")
        center = np.asarray(entry["center"], np.float32).reshape(-1)
        scale = float(entry["scale"])
        if center.shape != (2,):
            raise ValueError(f"{where}: field 'center' must be [x, y], got {entry['center']!r}")
        if not scale > 0:
            log.warning("%s: field 'scale' is %s (zero-area box), skipped", where, entry["scale"])
            continue
        path = os.path.join(image_dir, entry["image"])
        if check_images:
            if path not in status:
                status[path] = check_image_file(path)
            if status[path] is not None:
                if not skip_bad_images:
                    err = FileNotFoundError if status[path] == "file not found" else ValueError
                    raise err(f"{path}: {status[path]} ({where}, field 'image')")
                skipped += 1
                continue
        cx, cy = float(center[0]), float(center[1]) + center_shift * scale
        side = scale * 200.0 * scale_factor
        rows["path"].append(path)
        stem = os.path.splitext(os.path.basename(entry["image"]))[0]
        rows["image_id"].append(int(stem) if stem.isdigit() else names.setdefault(entry["image"], len(names)))
        rows["box"].append([cx - side / 2, cy - side / 2, side, side])
        rows["kpts"].append(joints)
        rows["vis"].append(np.where(jvis > 0, 2.0, 0.0))
        rows["ann_id"].append(i)
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
