"""COCO keypoint evaluation (OKS AP) with pycocotools, for any COCO-format keypoint set.

:class:`CocoKeypointEvaluator` looks like a Keras metric: ``update_state(results)`` collects COCO
results entries (``{"image_id", "category_id", "keypoints": [x, y, s] * K, "score"}``), ``result()``
runs ``COCOeval(iouType="keypoints")`` with the dataset's own OKS sigmas and returns the 10 standard
stats (AP, AP50, AP75, APm, APl, AR, AR50, AR75, ARm, ARl; fractions in [0, 1]).
"""
from __future__ import annotations

import contextlib
import copy
import io
import logging
from typing import Mapping, Sequence

import numpy as np

from rsn_tf.io_utils import read_json
from rsn_tf.keypoints import COCO

log = logging.getLogger("rsn_tf.evaluation")

STAT_NAMES = ("AP", "AP50", "AP75", "APm", "APl", "AR", "AR50", "AR75", "ARm", "ARl")


def load_coco(annotations: str | Mapping) -> tuple[dict, str]:
    """A COCO-format dict and a name for messages, from a path or a dict. Checks the needed fields."""
    if isinstance(annotations, str):
        data, source = read_json(annotations, "annotation file"), annotations
    else:
        data, source = annotations, "<annotations>"
    if not isinstance(data, dict):
        raise ValueError(f"{source}: expected a COCO-format object with 'images', 'annotations', 'categories'")
    for field in ("images", "annotations", "categories"):
        if field not in data or not isinstance(data[field], list):
            raise ValueError(f"{source}: missing the COCO field {field!r} (a list)")
    return data, source


def keypoint_category(coco: Mapping, source: str = "<annotations>") -> dict:
    """The (first) category that has a ``keypoints`` name list."""
    for cat in coco["categories"]:
        if cat.get("keypoints"):
            return cat
    raise ValueError(f"{source}: no category has a 'keypoints' list; not a keypoint annotation file")


def dataset_sigmas(coco: Mapping, sigmas: Sequence[float] | None = None, source: str = "<annotations>") -> np.ndarray:
    """OKS sigmas for the annotation file's keypoints: explicit > the category's ``sigmas`` field >
    COCO's for the 17 COCO keypoints. Raises if none applies (OKS is undefined without them)."""
    cat = keypoint_category(coco, source)
    k = len(cat["keypoints"])
    if sigmas is None:
        sigmas = cat.get("sigmas")
    if sigmas is None and tuple(cat["keypoints"]) == COCO.names:
        sigmas = COCO.sigmas
    if sigmas is None:
        raise ValueError(f"{source}: category {cat.get('name')!r} has {k} keypoints that are not COCO's and no "
                         "'sigmas' field; give OKS sigmas explicitly (--sigmas s1,s2,... or sigmas=[...])")
    sig = np.asarray(sigmas, np.float64)
    if sig.shape != (k,):
        raise ValueError(f"{source}: {sig.size} OKS sigmas for {k} keypoints")
    return sig


class CocoKeypointEvaluator:
    """OKS AP/AR of keypoint results against a COCO-format annotation file.

    Args:
      annotations: path or dict (COCO keypoint format; any K).
      sigmas: OKS sigmas [K] (default: see :func:`dataset_sigmas`).
    """

    def __init__(self, annotations: str | Mapping, sigmas: Sequence[float] | None = None):
        data, self.source = load_coco(annotations)
        data = copy.deepcopy(data)
        self.area_from_box = 0
        for ann in data["annotations"]:
            # pycocotools' OKS needs 'area'; a file without it gets the box area (labelled in the log).
            if "area" not in ann and "bbox" in ann:
                ann["area"] = float(ann["bbox"][2] * ann["bbox"][3])
                self.area_from_box += 1
        self.dataset = data
        self.category = keypoint_category(data, self.source)
        self.num_keypoints = len(self.category["keypoints"])
        self.sigmas = dataset_sigmas(data, sigmas, self.source)
        self.image_ids = {int(im["id"]) for im in data["images"]}
        self._coco = None
        self.reset_state()

    @property
    def coco(self):
        if self._coco is None:
            from pycocotools.coco import COCO as _COCO
            c = _COCO()
            c.dataset = self.dataset
            with contextlib.redirect_stdout(io.StringIO()):
                c.createIndex()
            self._coco = c
        return self._coco

    def reset_state(self):
        self.results: list[dict] = []
        self.skipped = 0

    def update_state(self, results: Sequence[Mapping]):
        """Add COCO results entries; entries for unknown image ids are skipped with a warning."""
        unknown = set()
        for i, r in enumerate(results):
            for field in ("image_id", "keypoints", "score"):
                if field not in r:
                    raise ValueError(f"result [{i}] has no {field!r} field (COCO keypoint results format)")
            if len(r["keypoints"]) != 3 * self.num_keypoints:
                raise ValueError(f"result [{i}]: 'keypoints' has {len(r['keypoints'])} values; expected "
                                 f"3 x {self.num_keypoints} for {self.source}")
            if int(r["image_id"]) not in self.image_ids:
                unknown.add(int(r["image_id"]))
                self.skipped += 1
                continue
            entry = dict(r)
            entry.setdefault("category_id", int(self.category["id"]))
            self.results.append(entry)
        if unknown:
            log.warning("%s: skipped results for %d image ids not in the annotations: %s", self.source,
                        len(unknown), sorted(unknown)[:10])

    def result(self, image_ids: Sequence[int] | None = None) -> dict:
        """Run COCOeval; returns {stat name: value} plus ``num_results``. ``image_ids`` restricts the
        evaluation (e.g. to the images that could be read). With no results every stat is 0."""
        from pycocotools.cocoeval import COCOeval

        stats = {"num_results": len(self.results)}
        if not self.results:
            stats.update({k: 0.0 for k in STAT_NAMES})
            stats["note"] = "no detections: every stat is 0"
            return stats
        with contextlib.redirect_stdout(io.StringIO()) as buf:
            dets = self.coco.loadRes(copy.deepcopy(self.results))
            ev = COCOeval(self.coco, dets, iouType="keypoints")
            ev.params.kpt_oks_sigmas = self.sigmas
            if image_ids is not None:
                ev.params.imgIds = sorted(int(i) for i in image_ids)
            ev.evaluate()
            ev.accumulate()
            ev.summarize()
        self.summary_text = buf.getvalue()
        # pycocotools writes -1 where a stat has no ground truth (e.g. no medium persons).
        stats.update({k: float(v) for k, v in zip(STAT_NAMES, ev.stats)})
        return stats


def format_table(stats: Mapping, title: str | None = None) -> str:
    """A markdown table of the 10 COCO stats (x100, one decimal; -1 shown as n/a)."""
    head = "| " + " | ".join(STAT_NAMES) + " |"
    sep = "|" + "---|" * len(STAT_NAMES)
    vals = []
    for k in STAT_NAMES:
        v = stats.get(k)
        vals.append("n/a" if v is None or v < 0 else f"{100 * v:.1f}")
    lines = [head, sep, "| " + " | ".join(vals) + " |"]
    if title:
        lines.insert(0, title + "\n")
    return "\n".join(lines)
