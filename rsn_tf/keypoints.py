"""Keypoint metadata: the one source of truth for names, flip pairs, skeletons and OKS sigmas.

Every other module (targets, flip test, evaluation, drawing, export) reads keypoint facts from a
:class:`KeypointSpec`, never from its own copy.
"""
from __future__ import annotations

import dataclasses
from typing import Sequence

import numpy as np


def flip_permutation(num_keypoints: int, flip_pairs: Sequence[Sequence[int]]) -> np.ndarray:
    """[K] int array swapping each flip pair: index a mirrored map or point list with it."""
    perm = np.arange(num_keypoints)
    for a, b in flip_pairs:
        perm[a], perm[b] = b, a
    return perm


@dataclasses.dataclass(frozen=True)
class KeypointSpec:
    """Facts about one keypoint layout.

    Attributes:
      name: dataset layout name, e.g. ``"coco"``.
      names: K keypoint names, in channel order.
      flip_pairs: 0-based index pairs swapped by a horizontal flip.
      skeleton: 0-based index pairs joined by a limb when drawing.
      sigmas: K OKS sigmas (COCO convention), or ``None`` where OKS is undefined.
      upper_body: indices that count as the upper body for half-body augmentation.
    """

    name: str
    names: tuple[str, ...]
    flip_pairs: tuple[tuple[int, int], ...]
    skeleton: tuple[tuple[int, int], ...]
    sigmas: tuple[float, ...] | None
    upper_body: tuple[int, ...]

    def __post_init__(self):
        k = len(self.names)
        for a, b in (*self.flip_pairs, *self.skeleton):
            if not (0 <= a < k and 0 <= b < k):
                raise ValueError(f"keypoint spec {self.name!r}: pair ({a}, {b}) outside 0..{k - 1}")
        if self.sigmas is not None and len(self.sigmas) != k:
            raise ValueError(f"keypoint spec {self.name!r}: {len(self.sigmas)} sigmas for {k} keypoints")

    @property
    def num_keypoints(self) -> int:
        return len(self.names)

    @property
    def lower_body(self) -> tuple[int, ...]:
        return tuple(i for i in range(self.num_keypoints) if i not in self.upper_body)

    def flip_permutation(self) -> np.ndarray:
        """[K] int array: channel ``i`` of a flipped map holds keypoint ``perm[i]``."""
        return flip_permutation(self.num_keypoints, self.flip_pairs)

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "names": list(self.names),
            "flip_pairs": [list(p) for p in self.flip_pairs],
            "skeleton": [list(p) for p in self.skeleton],
            "sigmas": None if self.sigmas is None else list(self.sigmas),
            "upper_body": list(self.upper_body),
        }

    @classmethod
    def from_dict(cls, d: dict) -> "KeypointSpec":
        return cls(
            name=str(d["name"]),
            names=tuple(d["names"]),
            flip_pairs=tuple(tuple(int(v) for v in p) for p in d.get("flip_pairs", ())),
            skeleton=tuple(tuple(int(v) for v in p) for p in d.get("skeleton", ())),
            sigmas=None if d.get("sigmas") is None else tuple(float(s) for s in d["sigmas"]),
            upper_body=tuple(int(i) for i in d.get("upper_body", ())),
        )


COCO = KeypointSpec(
    name="coco",
    names=(
        "nose", "left_eye", "right_eye", "left_ear", "right_ear",
        "left_shoulder", "right_shoulder", "left_elbow", "right_elbow",
        "left_wrist", "right_wrist", "left_hip", "right_hip",
        "left_knee", "right_knee", "left_ankle", "right_ankle",
    ),
    flip_pairs=((1, 2), (3, 4), (5, 6), (7, 8), (9, 10), (11, 12), (13, 14), (15, 16)),
    # COCO's own skeleton, converted to 0-based indices.
    skeleton=(
        (15, 13), (13, 11), (16, 14), (14, 12), (11, 12), (5, 11), (6, 12), (5, 6), (5, 7),
        (6, 8), (7, 9), (8, 10), (1, 2), (0, 1), (0, 2), (1, 3), (2, 4), (3, 5), (4, 6),
    ),
    sigmas=(
        0.026, 0.025, 0.025, 0.035, 0.035, 0.079, 0.079, 0.072, 0.072,
        0.062, 0.062, 0.107, 0.107, 0.087, 0.087, 0.089, 0.089,
    ),
    # The authors' half-body split: ids 0-12 are "upper" (hips included), 11-16 "lower".
    upper_body=tuple(range(13)),
)

MPII = KeypointSpec(
    name="mpii",
    names=(
        "right_ankle", "right_knee", "right_hip", "left_hip", "left_knee", "left_ankle",
        "pelvis", "thorax", "upper_neck", "head_top",
        "right_wrist", "right_elbow", "right_shoulder", "left_shoulder", "left_elbow", "left_wrist",
    ),
    flip_pairs=((0, 5), (1, 4), (2, 3), (10, 15), (11, 14), (12, 13)),
    skeleton=(
        (0, 1), (1, 2), (2, 6), (6, 3), (3, 4), (4, 5), (6, 7), (7, 8), (8, 9),
        (7, 12), (12, 11), (11, 10), (7, 13), (13, 14), (14, 15),
    ),
    sigmas=None,
    upper_body=(7, 8, 9, 10, 11, 12, 13, 14, 15),
)

_BUILTIN = {"coco": COCO, "mpii": MPII}


def get_spec(name: str) -> KeypointSpec:
    """Return the built-in spec called ``name`` (``"coco"`` or ``"mpii"``)."""
    try:
        return _BUILTIN[name]
    except KeyError:
        raise ValueError(f"unknown keypoint layout {name!r}; expected one of {sorted(_BUILTIN)}") from None


def spec_from_coco_category(category: dict, sigmas: Sequence[float] | None = None,
                            flip_pairs: Sequence[Sequence[int]] | None = None,
                            source: str = "<category>") -> KeypointSpec:
    """Build a spec from a COCO-format ``categories[i]`` entry (``keypoints``, ``skeleton`` 1-based).

    A category whose keypoint names equal COCO's returns :data:`COCO` (with its sigmas and flip pairs).
    Otherwise flip pairs are inferred from ``left_``/``right_`` name prefixes unless given.
    """
    names = category.get("keypoints")
    if not isinstance(names, list) or not names:
        raise ValueError(f"{source}: category {category.get('name')!r} has no 'keypoints' name list")
    if tuple(names) == COCO.names and sigmas is None and flip_pairs is None:
        return COCO
    if flip_pairs is None:
        index = {n: i for i, n in enumerate(names)}
        pairs = []
        for i, n in enumerate(names):
            for left, right in (("left_", "right_"), ("l_", "r_")):
                if n.startswith(left) and right + n[len(left):] in index:
                    pairs.append((i, index[right + n[len(left):]]))
        flip_pairs = pairs
    skeleton = [(int(a) - 1, int(b) - 1) for a, b in category.get("skeleton", [])]
    return KeypointSpec(
        name=str(category.get("name", "custom")),
        names=tuple(names),
        flip_pairs=tuple(tuple(int(v) for v in p) for p in flip_pairs),
        skeleton=tuple(skeleton),
        sigmas=None if sigmas is None else tuple(float(s) for s in sigmas),
        upper_body=tuple(range(len(names) // 2 + 1)),
    )
