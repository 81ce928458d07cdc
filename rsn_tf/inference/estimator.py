"""Top-down pose estimation: image + person boxes -> keypoints in image pixels (each step's
constants per recipe: :mod:`rsn_tf.recipes`).

Data flow, per person box:
  box [x, y, w, h] -> region (center, scale) with the test box extension and the aspect fix
  -> affine crop (input_size) -> normalised crop -> network (+ mirrored crop in the same batch)
  -> flip back the mirrored heatmaps (reverse w, swap pairs; no shift) -> average the raw heatmaps
  -> decode (codec: "authors" or "mmpose") -> crop pixels -> inverse affine -> image pixels
  -> pose score (box score x mean keypoint score; "mmpose": mean over keypoint scores > 0.2).

The test recipe (box padding, decode and score rule; :mod:`rsn_tf.recipes`) is the model's own
unless one is chosen: weights converted from mmpose get mmpose's, a model trained here the one of its
training loss mode (:func:`rsn_tf.recipes.resolve_recipe`).

:class:`PoseEstimator` accepts a trained/converted Keras model (or a ``.keras`` path), or any callable
``crops [N, H, W, 3] float32 -> heatmaps [N, H/4, W/4, K]`` together with a :class:`ModelConfig`
(tests use this to feed oracle heatmaps through the real code path).
"""
from __future__ import annotations

import dataclasses
from typing import Any, Callable, Iterable, Iterator, Literal, Sequence

import numpy as np

from rsn_tf import geometry
from rsn_tf.codec import MegviiHeatmapCodec
from rsn_tf.inference.boxes import PersonBox
from rsn_tf.keypoints import COCO, MPII, KeypointSpec, get_spec
from rsn_tf.recipes import MMPOSE_KEYPOINT_SCORE_THR, decode_kernel_for, recipe_record, resolve_recipe


# ------------------------------------------------------------------------------------------ helpers
def normalize_crops(crops, preprocessing) -> np.ndarray:
    """BGR crops (as cv2 loads them) [N, H, W, 3], 0..255 -> network input float32, through the
    project's one normalisation function (:func:`rsn_tf.data.preprocess.preprocess`)."""
    from rsn_tf.data.preprocess import preprocess
    return preprocess(crops, preprocessing, input_order="bgr")


def resolve_keypoint_spec(num_keypoints: int, metadata: dict | None = None,
                          override: KeypointSpec | str | dict | None = None) -> KeypointSpec:
    """The keypoint layout of a model: explicit ``override`` > ``metadata["keypoints"]`` (a layout
    name or a KeypointSpec dict) > COCO for K=17, MPII for K=16. Raises if K does not match."""
    spec = override if override is not None else (metadata or {}).get("keypoints")
    if isinstance(spec, str):
        spec = get_spec(spec)
    elif isinstance(spec, dict):
        spec = KeypointSpec.from_dict(spec)
    if spec is None:
        if num_keypoints == COCO.num_keypoints:
            spec = COCO
        elif num_keypoints == MPII.num_keypoints:
            spec = MPII
        else:
            raise ValueError(f"the model has {num_keypoints} keypoints and carries no keypoint spec "
                             "(metadata 'keypoints'); pass one explicitly (keypoints=KeypointSpec/--keypoints)")
    if spec.num_keypoints != num_keypoints:
        raise ValueError(f"keypoint spec {spec.name!r} has {spec.num_keypoints} keypoints but the model outputs "
                         f"{num_keypoints}")
    return spec


def pose_scores(keypoint_scores, box_scores, mode: str = "authors",
                threshold: float = MMPOSE_KEYPOINT_SCORE_THR) -> np.ndarray:
    """Instance scores of N poses: keypoint_scores [N, K], box_scores [N] -> [N] float64.

    ``authors``: box score x mean of all K keypoint scores. ``mmpose`` (CocoMetric ``bbox_keypoint``):
    box score x mean of the keypoint scores > ``threshold`` (0 if none is).
    """
    s = np.atleast_2d(np.asarray(keypoint_scores, np.float64))
    box = np.asarray(box_scores, np.float64).reshape(-1)
    if mode not in ("authors", "mmpose"):
        raise ValueError(f"score_mode must be 'authors' or 'mmpose' (got {mode!r})")
    if s.shape[1] == 0:
        return np.zeros_like(box)
    if mode == "authors":
        return box * s.mean(axis=1)
    else:
        valid = s > threshold
        count = valid.sum(axis=1)
        total = np.where(valid, s, 0.0).sum(axis=1)
        return np.where(count > 0, box * total / np.maximum(count, 1), 0.0)


def pose_score(keypoint_scores, box_score: float, mode: str = "authors",
               threshold: float = MMPOSE_KEYPOINT_SCORE_THR) -> float:
    """One pose's instance score (see :func:`pose_scores`)."""
    return float(pose_scores(np.asarray(keypoint_scores, np.float64)[None], [box_score], mode, threshold)[0])


@dataclasses.dataclass
class Pose:
    """One person's pose.

    Attributes:
      keypoints: [K, 2] float32 (x, y) image pixels.
      keypoint_scores: [K] float32 (authors: raw map / 255 + 0.5, about 0.5..1.5).
      box: the input box [x, y, w, h] (image pixels); box_score: its score (1 for GT/full-image).
      score: the instance score (see :func:`pose_score`).
      center, scale: the crop region (image pixels) actually used.
      box_in_results: :meth:`to_coco` includes ``bbox`` (the recipe's ``box_in_results``).
    """

    keypoints: np.ndarray
    keypoint_scores: np.ndarray
    box: tuple[float, float, float, float]
    box_score: float
    score: float
    center: np.ndarray
    scale: np.ndarray
    box_in_results: bool = False

    @property
    def area(self) -> float:
        """Region area in px^2 (used by OKS-NMS, as HRNet does)."""
        return float(self.scale[0] * self.scale[1])

    def to_coco(self, image_id: int, category_id: int = 1) -> dict:
        """A COCO keypoint results entry."""
        kp = np.concatenate([self.keypoints, self.keypoint_scores[:, None]], axis=1).astype(np.float64)
        entry = {"image_id": int(image_id), "category_id": int(category_id),
                 "keypoints": np.round(kp.reshape(-1), 3).tolist(), "score": round(float(self.score), 6)}
        if self.box_in_results:
            entry["bbox"] = [round(float(v), 3) for v in self.box]
        return entry

    def to_dict(self) -> dict:
        return {"keypoints": np.round(self.keypoints, 2).tolist(),
                "keypoint_scores": np.round(self.keypoint_scores, 4).tolist(),
                "box": [round(float(v), 2) for v in self.box], "box_score": round(float(self.box_score), 5),
                "score": round(float(self.score), 5)}


@dataclasses.dataclass
class _Job:
    key: Any
    boxes: list
    box_scores: np.ndarray
    centers: np.ndarray
    scales: np.ndarray
    crops: np.ndarray


class PoseEstimator:
    """Top-down pose estimation with an RSN model.

    Args:
      model: an RSN Keras model, a path to a ``.keras`` file, or a callable
        ``crops [N, H, W, 3] float32 -> heatmaps [N, H/4, W/4, K]`` (then ``config`` is required).
      flip_test: also run the mirrored crop and average the flipped-back heatmaps (authors, mmpose).
      decode_mode: ``"authors"`` (second-maximum quarter offset) or ``"mmpose"`` (sign-of-gradient).
      score_mode: ``"authors"`` or ``"mmpose"`` (see :func:`pose_score`).
      batch_size: persons per network call (the network sees twice as many crops with flip test).
      keypoints: keypoint spec override (else model metadata, else COCO/MPII by K).
      decode_kernel: decode blur (default 5 for COCO-like layouts, 9 for MPII).
      box_padding: test box extension (w, h factors); authors (1.09, 1.135), mmpose 1.25.
      recipe: ``"authors"`` or ``"mmpose"``: sets decode_mode, score_mode and box_padding together
        (explicitly passed values win). Default: the model's own (:func:`rsn_tf.recipes.resolve_recipe`:
        mmpose's for converted mmpose weights, the training loss mode's for models trained here).
      config: :class:`ModelConfig` for a plain-callable model (input size, heatmap size, K, preprocessing).
    """

    def __init__(self, model, *, flip_test: bool = True, decode_mode: str | None = None,
                 score_mode: str | None = None, batch_size: int = 32,
                 keypoints: KeypointSpec | str | dict | None = None, decode_kernel: int | None = None,
                 box_padding: float | Sequence[float] | None = None,
                 recipe: Literal["authors", "mmpose"] | None = None,
                 keypoint_score_threshold: float | None = None, config=None):
        if isinstance(model, str):
            from rsn_tf.weights import load_model
            model = load_model(model)
        metadata = getattr(model, "metadata", None)
        r, self.recipe_source = resolve_recipe(recipe, metadata)
        self.recipe = r
        self.decode_mode = decode_mode or r.decode_mode
        self.score_mode = score_mode or r.score_mode
        if self.score_mode not in ("authors", "mmpose"):
            raise ValueError(f"score_mode must be 'authors' or 'mmpose' (got {self.score_mode!r})")
        self.box_padding = tuple(float(v) for v in np.broadcast_to(np.asarray(box_padding if box_padding is not None
                                                            else r.box_padding, np.float64), (2,)))
        self.flip_test = bool(flip_test)
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1 (got {batch_size})")
        self.batch_size = int(batch_size)
        self.keypoint_score_threshold = float(r.keypoint_score_threshold if keypoint_score_threshold is None
                                              else keypoint_score_threshold)
        if config is None:
            config = getattr(model, "rsn_config", None)
        if config is None:
            raise ValueError("PoseEstimator: a plain callable model needs config=ModelConfig(...)")
        self.config = config
        self.metadata = dict(metadata or {})
        self.spec = resolve_keypoint_spec(config.num_keypoints, self.metadata, keypoints)
        self.codec = MegviiHeatmapCodec(tuple(config.input_size), tuple(config.heatmap_size),
                                        decode_kernel or decode_kernel_for(self.spec.name), self.decode_mode)
        self._net = self._make_net(model)

    def settings(self) -> dict:
        """The test settings in use, for result files: the recipe, why it was chosen, and every setting."""
        return recipe_record(self.recipe, self.recipe_source, flip_test=self.flip_test, decode_mode=self.decode_mode,
                             score_mode=self.score_mode, box_padding=list(self.box_padding),
                             keypoint_score_threshold=self.keypoint_score_threshold,
                             decode_kernel=self.codec.decode_kernel, input_size=list(self.config.input_size),
                             keypoints=self.spec.name)

    # ------------------------------------------------------------------------------ network
    def _make_net(self, model) -> Callable[[np.ndarray], np.ndarray]:
        import sys

        # A Keras model implies keras is already imported; a plain callable never pays for TF's import.
        keras = sys.modules.get("keras")
        is_keras = keras is not None and isinstance(model, keras.Model)
        if not is_keras:
            return lambda x: np.asarray(model(x), np.float32)

        import tensorflow as tf

        from rsn_tf.model import RSNModel, inference_model

        net = inference_model(model) if isinstance(model, RSNModel) else model
        h, w = self.config.input_size
        # One traced graph for every batch size (eager Keras calls are slow op by op).
        fn = tf.function(lambda x: net(x, training=False), reduce_retracing=True,
                         input_signature=[tf.TensorSpec([None, h, w, 3], tf.float32)])

        def run(x):
            out = fn(tf.convert_to_tensor(x, tf.float32))
            if isinstance(out, (list, tuple)):
                out = out[-1]
            return out.numpy()
        return run

    def heatmaps(self, crops) -> np.ndarray:
        """Normalised crops [N, H, W, 3] -> final raw heatmaps [N, h, w, K] (flip-averaged if enabled).

        With flip test the crops and their mirrors go through the network in one call.
        """
        crops = np.asarray(crops, np.float32)
        n = crops.shape[0]
        if n == 0:
            h, w = self.codec.heatmap_size
            return np.zeros((0, h, w, self.config.num_keypoints), np.float32)
        if not self.flip_test:
            return self._net(crops)
        both = self._net(np.concatenate([crops, crops[:, :, ::-1]], axis=0))
        back = geometry.flip_back_heatmaps(both[n:], self.spec.flip_pairs)
        return (both[:n] + back) * 0.5

    # ------------------------------------------------------------------------------ crops
    def regions_from_boxes(self, boxes) -> tuple[np.ndarray, np.ndarray]:
        """Boxes [N, 4] (x, y, w, h) -> centers [N, 2], scales [N, 2] (test extension + aspect fix)."""
        h, w = self.config.input_size
        centers, scales = [], []
        for b in boxes:
            c, s = geometry.box_to_center_scale(b, w / h, self.box_padding, construction=self.recipe.warp)
            centers.append(c)
            scales.append(s)
        return np.asarray(centers, np.float32).reshape(-1, 2), np.asarray(scales, np.float32).reshape(-1, 2)

    def crops(self, image, centers, scales) -> np.ndarray:
        """Affine crops [N, H, W, 3] of ``image`` (BGR, uint8 or float), normalised for the network."""
        h, w = self.config.input_size
        raw = [geometry.warp_to_crop(image, c, s, 0.0, (w, h), construction=self.recipe.warp)
               for c, s in zip(centers, scales)]
        if not raw:
            return np.zeros((0, h, w, 3), np.float32)
        return normalize_crops(np.stack(raw), self.config.preprocessing)

    # ------------------------------------------------------------------------------ predict
    def predict(self, image, boxes, box_scores=None) -> list[Pose]:
        """Poses of the persons in ``boxes`` ([N, 4] x, y, w, h image px, or PersonBox list) in ``image``
        ([H, W, 3] BGR as cv2 loads it). box_scores: [N] (default: 1, or the PersonBox scores)."""
        return next(iter(self.predict_many([(None, image, boxes, box_scores)])))[1]

    def predict_regions(self, image, centers, scales, box_scores=None) -> list[Pose]:
        """Like :meth:`predict` for explicit regions (center [N, 2], scale [N, 2] in px; no padding added)."""
        job = self._job(None, image, None, box_scores, np.asarray(centers, np.float32).reshape(-1, 2),
                        np.asarray(scales, np.float32).reshape(-1, 2))
        return next(iter(self._finish([job])))[1]

    def predict_many(self, items: Iterable[tuple]) -> Iterator[tuple[Any, list[Pose]]]:
        """Batch across images: ``items`` yields ``(key, image, boxes, box_scores)``; yields
        ``(key, poses)`` in the same order. Crops of several images share network calls."""
        pending, count = [], 0
        for key, image, boxes, box_scores in items:
            job = self._job(key, image, boxes, box_scores)
            pending.append(job)
            count += len(job.crops)
            if count >= self.batch_size:
                yield from self._finish(pending)
                pending, count = [], 0
        if pending:
            yield from self._finish(pending)

    def _job(self, key, image, boxes, box_scores, centers=None, scales=None) -> _Job:
        if image is None or getattr(image, "ndim", 0) != 3 or image.shape[2] != 3:
            raise ValueError(f"image {key!r}: expected an [H, W, 3] array, got "
                             f"{None if image is None else getattr(image, 'shape', type(image))}")
        xywh = []
        if boxes is not None:
            scores_from_boxes = []
            for b in boxes:
                if isinstance(b, PersonBox):
                    xywh.append(b.xywh)
                    scores_from_boxes.append(b.score)
                else:
                    xywh.append(tuple(float(v) for v in b[:4]))
                    scores_from_boxes.append(1.0)
            if box_scores is None:
                box_scores = scores_from_boxes
            centers, scales = self.regions_from_boxes(xywh)
        n = len(centers)
        if box_scores is None:
            box_scores = np.ones((n,), np.float32)
        box_scores = np.asarray(box_scores, np.float32).reshape(-1)
        if len(box_scores) != n:
            raise ValueError(f"image {key!r}: {n} boxes but {len(box_scores)} box scores")
        if boxes is None:  # explicit regions: report the region as the box
            xywh = [tuple((c - s / 2).tolist() + s.tolist()) for c, s in zip(centers, scales)]
        return _Job(key, xywh, box_scores, centers, scales, self.crops(image, centers, scales))

    def _finish(self, jobs: list[_Job]) -> Iterator[tuple[Any, list[Pose]]]:
        crops = [j.crops for j in jobs if len(j.crops)]
        if crops:
            allc = np.concatenate(crops)
            maps = np.concatenate([self.heatmaps(allc[i:i + self.batch_size])
                                   for i in range(0, len(allc), self.batch_size)])
            kpts, scores = self.codec.decode(maps)
            centers = np.concatenate([j.centers for j in jobs if len(j.crops)])
            scales = np.concatenate([j.scales for j in jobs if len(j.crops)])
            box_scores = np.concatenate([j.box_scores for j in jobs if len(j.crops)])
            h, w = self.config.input_size
            image_kpts = geometry.crop_to_image_batch(kpts, centers, scales, (w, h))
            instance = pose_scores(scores, box_scores, self.score_mode, self.keypoint_score_threshold)
        i = 0
        for job in jobs:
            poses = []
            for b in range(len(job.crops)):
                poses.append(Pose(image_kpts[i], scores[i].astype(np.float32), job.boxes[b],
                                  float(job.box_scores[b]), float(instance[i]), job.centers[b], job.scales[b],
                                  self.recipe.box_in_results))
                i += 1
            yield job.key, poses
