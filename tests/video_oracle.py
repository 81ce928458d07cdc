"""An oracle network for video tests: truth heatmaps of a synthetic clip, through the real PoseEstimator path.

The clip's frames are replaced by *coordinate frames* of the same size (a folder of PNGs, lossless):
channel 0 = x, channel 1 = y of each pixel, channel 2 = the frame number + 1, so that the oracle
(:class:`tests.oracle.OracleModel`) recovers from any crop the crop->image affine and the frame, picks the
true person whose body centre is nearest the crop centre, and answers with that person's heatmaps
(the real codec). Everything in between -- the tracker's boxes, the estimator's padding, affine crops,
decode and inverse affine, the frame reader -- is the code ``rsn video`` runs. Optional Gaussian noise on
the true keypoints (a fresh draw per frame and person) stands in for a network's jitter.
"""
from __future__ import annotations

import os

import cv2
import numpy as np
from oracle import OracleModel, oracle_config

from rsn_tf.keypoints import COCO

MAX_SIDE = 256  # coordinates must fit in uint8


def write_coordinate_frames(folder: str, width: int, height: int, num_frames: int) -> str:
    if width > MAX_SIDE or height > MAX_SIDE or num_frames > 254:
        raise ValueError("coordinate frames need width, height <= 256 and < 255 frames")
    os.makedirs(folder, exist_ok=True)
    ys, xs = np.mgrid[0:height, 0:width]
    for i in range(num_frames):
        img = np.stack([xs, ys, np.full_like(xs, i + 1)], axis=-1).astype(np.uint8)
        cv2.imwrite(os.path.join(folder, f"{i:06d}.png"), img)
    return folder


class VideoOracle(OracleModel):
    """A crop shows the person whose body centre is nearest its centre (in body heights), preferring people
    who are not covered: a foreground person passing in front of someone is what a crop centred on the one
    behind shows."""

    occlusion_penalty = 0.0

    def __call__(self, crops):
        """Crops that show (almost) nothing of the frame get empty heatmaps, as a network would answer."""
        crops = np.asarray(crops, np.float32)
        h, w = crops.shape[1:3]
        out = []
        for c in crops:
            tag = np.round(np.median(c[h // 2 - 2:h // 2 + 3, w // 2 - 2:w // 2 + 3, 2]))
            if tag < 1 or np.count_nonzero(np.abs(c[..., 2] - tag) < 1e-3) < 0.05 * h * w:
                out.append(np.zeros((1, h // 4, w // 4, len(self.flip_perm)), np.float32))
            else:
                out.append(super().__call__(c[None]))
        return np.concatenate(out) if out else super().__call__(crops)

    @classmethod
    def rank(cls, person, crop_centre) -> float:
        centre, k, v = person
        height = max(float(k[:, 1].max() - k[:, 1].min()), 1.0)
        return float(np.linalg.norm(centre - crop_centre)) / height + cls.occlusion_penalty * float(np.mean(v != 2))


def clip_oracle(truth: dict, noise_px: float = 0.0, seed: int = 0, input_size=(256, 192)):
    """(network callable, ModelConfig) answering with the truth of ``truth`` (a truth.json dict)."""
    config = oracle_config(17, input_size)
    model = VideoOracle(config, COCO.flip_permutation())
    rng = np.random.default_rng(seed)
    for f in truth["frames"]:
        people = []
        for p in f["people"]:
            k = np.asarray(p["keypoints"], np.float64)
            centre = (k.min(0) + k.max(0)) / 2
            if noise_px > 0:
                k = k + rng.normal(0, noise_px, k.shape)
            people.append((centre, k.astype(np.float32), np.asarray(p["visible"])))
        model.persons[f["index"] + 1] = people
    return model, config
