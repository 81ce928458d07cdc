"""One person instance per row: what the readers (COCO, MPII) produce and the input pipeline consumes."""
from __future__ import annotations

import dataclasses

import numpy as np

from rsn_tf.keypoints import KeypointSpec


@dataclasses.dataclass(frozen=True)
class Instances:
    """N person instances of one split, as numpy arrays (row i = instance i).

    Attributes:
      image_paths: N image file paths (absolute or relative to the working directory).
      image_ids: [N] int64 image ids (COCO ``image_id``; MPII: index of the image name).
      boxes: [N, 4] float32 person boxes (x, y, w, h) in image pixels, w and h > 0.
      keypoints: [N, K, 2] float32 (x, y) image pixels; rows with ``visible == 0`` are meaningless.
      visible: [N, K] float32 COCO visibility: 0 = unlabelled, 1 = labelled but occluded, 2 = visible.
      areas: [N] float32 instance area in pixels^2 (COCO segmentation area; OKS uses it).
      scores: [N] float32 box score (1 for ground truth boxes).
      ann_ids: [N] int64 annotation ids (COCO ``id``; MPII: row index in the list).
      spec: the keypoint layout (names, flip pairs, sigmas).
      source: the annotation file the rows came from (for error messages).
      description: what the file says it is (COCO ``info.description``; ``""`` if none), e.g.
        ``"rsn_tf synthetic people, seed 0"`` for the built-in synthetic set.
      raw_boxes: [N, 4] float64 the annotation's ``bbox`` as written (before any clipping), or
        ``None``; image_sizes: [N, 2] int64 (width, height) from the annotation file (0 = unknown),
        or ``None``. Each reference clips the box differently (``DataConfig.mode``).
    """

    image_paths: tuple[str, ...]
    image_ids: np.ndarray
    boxes: np.ndarray
    keypoints: np.ndarray
    visible: np.ndarray
    areas: np.ndarray
    scores: np.ndarray
    ann_ids: np.ndarray
    spec: KeypointSpec
    source: str = ""
    description: str = ""
    raw_boxes: np.ndarray | None = None
    image_sizes: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.image_paths)

    @property
    def num_keypoints(self) -> int:
        return self.keypoints.shape[1]

    @classmethod
    def from_boxes(cls, image_paths, image_ids, boxes, spec: KeypointSpec, scores=None, source: str = "boxes"):
        """Instances with boxes only (e.g. person detections to run pose estimation on); no keypoints.

        image_paths: N paths; image_ids [N]; boxes [N, 4] (x, y, w, h); scores [N] (default 1).
        """
        boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
        n, k = len(boxes), spec.num_keypoints
        if len(image_paths) != n or len(image_ids) != n:
            raise ValueError(f"{source}: {len(image_paths)} paths, {len(image_ids)} ids and {n} boxes differ")
        if n and not np.all((boxes[:, 2] > 0) & (boxes[:, 3] > 0)):
            raise ValueError(f"{source}: boxes need w > 0 and h > 0")
        return cls(image_paths=tuple(image_paths), image_ids=np.asarray(image_ids, np.int64).reshape(n), boxes=boxes,
                   keypoints=np.zeros((n, k, 2), np.float32), visible=np.zeros((n, k), np.float32),
                   areas=boxes[:, 2] * boxes[:, 3],
                   scores=np.ones((n,), np.float32) if scores is None else np.asarray(scores, np.float32).reshape(n),
                   ann_ids=np.full((n,), -1, np.int64), spec=spec, source=source)

    def select(self, index) -> "Instances":
        """The rows ``index`` (an int array or boolean mask)."""
        index = np.asarray(index)
        if index.dtype == bool:
            index = np.flatnonzero(index)
        return dataclasses.replace(
            self, image_paths=tuple(self.image_paths[i] for i in index), image_ids=self.image_ids[index],
            boxes=self.boxes[index], keypoints=self.keypoints[index], visible=self.visible[index],
            areas=self.areas[index], scores=self.scores[index], ann_ids=self.ann_ids[index],
            raw_boxes=None if self.raw_boxes is None else self.raw_boxes[index],
            image_sizes=None if self.image_sizes is None else self.image_sizes[index])
