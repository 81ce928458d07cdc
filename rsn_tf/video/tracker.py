"""Top-down pose tracking: boxes on key frames, each track's own previous pose in between.

Per frame (``Tracker.step``):

- **key frame** (the first, every ``keyframe_interval``-th, the next after a track's pose score fell below
  ``redetect_score``, and any frame while nobody is tracked): the box source's boxes go through the
  estimator; each resulting pose is matched to a track by OKS with the track's last pose (shifted by its
  motion) or by box IoU, greedily, best pair first, above ``match_threshold``. A track that no pose
  matched is carried on its own box; after ``max_missed_keyframes`` such key frames it ends. A pose that
  matched no track and scores at least ``new_track_score`` starts a new track (a new id, never reused).
- **other frames**: each track's box is the extent of its own last keypoints (score >= ``keypoint_threshold``),
  scaled by ``box_scale`` about its centre and moved by its last motion (the BlazePose way); the estimator
  crops it with its usual test padding and aspect fix.
- A track ends cleanly (its ``end`` says why, its id is retired) when its own-box pose scores below
  ``keep_score`` ("lost"), when its box is mostly outside the frame ("left the frame"), when it is not
  re-detected ("not re-detected"), or when it follows the same person as an older track ("merged into N").
- Smoothing (optional): each track's keypoints go through a One Euro filter; tracking uses the raw ones.

Every pose comes from :class:`rsn_tf.inference.PoseEstimator` (crop, flip, decode, inverse affine).
"""
from __future__ import annotations

import dataclasses

import numpy as np

from rsn_tf.inference.boxes import PersonBox
from rsn_tf.inference.estimator import Pose, PoseEstimator
from rsn_tf.inference.nms import oks_iou
from rsn_tf.video.config import SmoothingConfig, TrackerConfig
from rsn_tf.video.smoothing import OneEuroFilter


@dataclasses.dataclass
class TrackedPose:
    """One track's pose on one frame.

    keypoints: [K, 2] image px as shown (smoothed when smoothing is on); keypoints_raw: [K, 2] the
    estimator's; keypoint_scores: [K]; box: the [x, y, w, h] the crop came from; score: instance score;
    source: ``"detection"`` (a key-frame box) or ``"track"`` (the track's own previous pose).
    """

    track_id: int
    keypoints: np.ndarray
    keypoints_raw: np.ndarray
    keypoint_scores: np.ndarray
    box: tuple
    box_score: float
    score: float
    source: str

    def to_dict(self, raw: bool = False) -> dict:
        d = {"track_id": int(self.track_id), "keypoints": np.round(self.keypoints, 2).tolist(),
             "keypoint_scores": np.round(self.keypoint_scores, 4).tolist(),
             "box": [round(float(v), 2) for v in self.box], "score": round(float(self.score), 5),
             "source": self.source}
        if raw:
            d["keypoints_raw"] = np.round(self.keypoints_raw, 2).tolist()
        return d


@dataclasses.dataclass
class Track:
    """A person followed over frames. ``end`` is None while active."""

    id: int
    first_frame: int
    last_frame: int
    pose: Pose
    shown: TrackedPose
    frames: int = 1
    missed: int = 0
    velocity: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros(2, np.float32))
    box_size: np.ndarray | None = None  # (w, h) of its next own-pose box
    filter: OneEuroFilter | None = None
    end: str | None = None
    score_sum: float = 0.0
    previous: Pose | None = None
    coasting: int = 0                 # frames since it lost its person (0: tracking)
    lost_reason: str | None = None

    def to_dict(self) -> dict:
        return {"track_id": self.id, "first_frame": self.first_frame, "last_frame": self.last_frame,
                "frames": self.frames, "mean_score": round(self.score_sum / max(self.frames, 1), 4),
                "end": self.end}


def keypoint_extent(keypoints, scores, threshold: float) -> tuple[np.ndarray, np.ndarray]:
    """Centre [2] and size (w, h) [2] of the keypoints whose score >= threshold (all if fewer than 3 are)."""
    k = np.asarray(keypoints, np.float32)
    ok = np.asarray(scores) >= threshold
    if ok.sum() < 3:
        ok = np.ones(len(k), bool)
    lo, hi = k[ok].min(0), k[ok].max(0)
    return (lo + hi) / 2, np.maximum(hi - lo, 1.0)


def _shifted(pose: Pose, motion) -> Pose:
    return dataclasses.replace(pose, keypoints=(pose.keypoints + motion).astype(np.float32))


def box_iou(a, b) -> float:
    """IoU of two [x, y, w, h] boxes."""
    ax, ay, aw, ah = a
    bx, by, bw, bh = b
    iw = max(0.0, min(ax + aw, bx + bw) - max(ax, bx))
    ih = max(0.0, min(ay + ah, by + bh) - max(ay, by))
    inter = iw * ih
    union = aw * ah + bw * bh - inter
    return float(inter / union) if union > 0 else 0.0


def inside_fraction(box, width: int, height: int) -> float:
    """Share of the [x, y, w, h] box's area inside a width x height frame."""
    x, y, w, h = box
    iw = max(0.0, min(x + w, width) - max(x, 0.0))
    ih = max(0.0, min(y + h, height) - max(y, 0.0))
    return float(iw * ih / (w * h)) if w * h > 0 else 0.0


class Tracker:
    """Tracks of one video (see the module docstring). ``frame_size``: (width, height) px."""

    def __init__(self, estimator: PoseEstimator, config: TrackerConfig | None = None,
                 smoothing: SmoothingConfig | None = None, frame_size: tuple[int, int] = (0, 0)):
        self.estimator = estimator
        self.config = config or TrackerConfig()
        self.smoothing = smoothing or SmoothingConfig()
        self.width, self.height = (int(v) for v in frame_size)
        sigmas = estimator.spec.sigmas
        self.sigmas = None if sigmas is None else np.asarray(sigmas, np.float64)
        self.match_mode = self.config.match if self.sigmas is not None else "iou"
        self.active: list[Track] = []
        self.coasting: list[Track] = []
        self.ended: list[Track] = []
        self.next_id = 1
        self.last_keyframe: int | None = None
        self.force_keyframe = False

    # ------------------------------------------------------------------------------ boxes
    def own_box(self, track: Track) -> tuple[float, float, float, float]:
        """The box [x, y, w, h] of ``track`` for the next frame, from its last pose (see module docstring)."""
        c, size = keypoint_extent(track.pose.keypoints, track.pose.keypoint_scores, self.config.keypoint_threshold)
        if self.config.motion_prediction:
            c = c + track.velocity
        w, h = track.box_size if track.box_size is not None else size * self.config.box_scale
        return (float(c[0] - w / 2), float(c[1] - h / 2), float(w), float(h))

    def wants_keyframe(self, index: int) -> bool:
        """Whether frame ``index`` needs boxes from the box source."""
        return (self.last_keyframe is None or index - self.last_keyframe >= self.config.keyframe_interval
                or self.force_keyframe or not (self.active or self.coasting))

    # ------------------------------------------------------------------------------ similarity
    def _similarity(self, tracks: list[Track], poses: list[Pose]) -> np.ndarray:
        sim = np.zeros((len(tracks), len(poses)), np.float64)
        if not tracks or not poses:
            return sim
        for i, t in enumerate(tracks):
            box = self.own_box(t)
            iou = np.array([box_iou(box, p.box) for p in poses])
            if self.match_mode == "oks":  # pose similarity; the boxes' overlap where the poses share < 3 keypoints
                thr = self.config.keypoint_threshold
                pred = t.pose.keypoints + (t.velocity if self.config.motion_prediction else 0.0)
                areas = np.array([p.box[2] * p.box[3] for p in poses], np.float64)
                det_scores = np.stack([p.keypoint_scores for p in poses])
                oks = oks_iou(pred, np.stack([p.keypoints for p in poses]), box[2] * box[3], areas, self.sigmas,
                              thr, det_scores, t.pose.keypoint_scores)
                common = ((det_scores > thr) & (np.asarray(t.pose.keypoint_scores) > thr)[None]).sum(1)
                sim[i] = np.where(common >= 3, oks, iou)
            else:
                sim[i] = iou
        return sim

    def _pose_similarity(self, a: Pose, b: Pose) -> float:
        if self.sigmas is None:
            return box_iou(a.box, b.box)
        _, sa = keypoint_extent(a.keypoints, a.keypoint_scores, self.config.keypoint_threshold)
        _, sb = keypoint_extent(b.keypoints, b.keypoint_scores, self.config.keypoint_threshold)
        return float(oks_iou(a.keypoints, b.keypoints[None], float(np.prod(sa)), np.array([np.prod(sb)]),
                             self.sigmas, self.config.keypoint_threshold, b.keypoint_scores[None],
                             a.keypoint_scores)[0])

    # ------------------------------------------------------------------------------ step
    def step(self, frame, index: int, t: float, detections: list[PersonBox] | None = None) -> list[TrackedPose]:
        """Advance to frame ``index`` (time ``t`` s). ``detections``: the box source's boxes on a key frame
        (``None`` otherwise). Returns the poses of the active tracks, by track id."""
        cfg = self.config
        updates: list[tuple[Track, Pose, str]] = []
        candidates: list[Pose] = []
        own: list[Track] = []
        self.force_keyframe = False
        for track in self.coasting:  # tracks that lost their person move on by their last motion
            track.coasting += 1
            track.pose = _shifted(track.pose, track.velocity)
            if track.coasting > cfg.coast_frames:
                self._end(track, track.lost_reason)
            elif inside_fraction(self.own_box(track), self.width, self.height) < cfg.min_inside:
                self._end(track, "left the frame")
        self.coasting = [tr for tr in self.coasting if tr.end is None]
        if detections is not None:
            self.last_keyframe = index
            det_poses = self.estimator.predict(frame, detections) if detections else []
            pool = self.active + self.coasting
            sim = self._similarity(pool, det_poses)
            free_t, free_d = set(range(len(pool))), set(range(len(det_poses)))
            for flat in np.argsort(-sim, axis=None, kind="stable"):
                i, j = np.unravel_index(flat, sim.shape)
                if sim[i, j] < cfg.match_threshold:
                    break
                if i in free_t and j in free_d:
                    free_t.discard(i)
                    free_d.discard(j)
                    pool[i].missed = 0
                    updates.append((pool[i], det_poses[j], "detection"))
            for i in sorted(free_t):
                track = pool[i]
                if track.coasting:
                    continue
                track.missed += 1
                if track.missed >= cfg.max_missed_keyframes:
                    self._end(track, "not re-detected")
                else:
                    own.append(track)
            candidates = [det_poses[j] for j in sorted(free_d) if det_poses[j].score >= cfg.new_track_score]
        else:
            own = list(self.active)
        boxes, carried = [], []
        for track in own:
            box = self.own_box(track)
            if inside_fraction(box, self.width, self.height) < cfg.min_inside:
                self._end(track, "left the frame")
                continue
            boxes.append(box)
            carried.append(track)
        if carried:
            for track, pose in zip(carried, self.estimator.predict(frame, boxes, [1.0] * len(boxes))):
                if pose.score < cfg.keep_score:
                    self._lose(track, "lost")
                else:
                    updates.append((track, pose, "track"))
        for track, pose, source in updates:
            self._update(track, pose, source, index, t)
        self._merge_duplicates()
        for pose in candidates:
            if any(self._pose_similarity(pose, tr.pose) > cfg.duplicate_similarity
                   for tr in self.active if tr.end is None and not tr.coasting):
                continue
            self._new_track(pose, index, t)
        self.active = [tr for tr in self.active + self.coasting if tr.end is None and not tr.coasting]
        self.coasting = [tr for tr in self.coasting if tr.end is None and tr.coasting]
        if any(tr.pose.score < cfg.redetect_score for tr in self.active):
            self.force_keyframe = True
        return [tr.shown for tr in sorted(self.active, key=lambda tr: tr.id)]

    def finish(self) -> None:
        """End every track at the end of the video."""
        for track in list(self.active):
            self._end(track, "video end")
        for track in list(self.coasting):
            self._end(track, track.lost_reason)
        self.active, self.coasting = [], []

    def tracks(self) -> list[dict]:
        """Every track (ended, active, coasting), by id."""
        return [t.to_dict() for t in sorted(self.ended + self.active + self.coasting, key=lambda tr: tr.id)]

    # ------------------------------------------------------------------------------ internals
    def _show(self, track: Track, pose: Pose, source: str, t: float) -> TrackedPose:
        shown = pose.keypoints
        if track.filter is not None:
            _, size = keypoint_extent(pose.keypoints, pose.keypoint_scores, self.config.keypoint_threshold)
            shown = track.filter(pose.keypoints, t, scale=float(size[1]))
        return TrackedPose(track.id, shown, pose.keypoints, pose.keypoint_scores, pose.box, pose.box_score,
                           pose.score, source)

    def _new_track(self, pose: Pose, index: int, t: float) -> Track:
        s = self.smoothing
        flt = OneEuroFilter(s.min_cutoff, s.beta, s.d_cutoff) if s.enabled else None
        track = Track(self.next_id, index, index, pose, None, filter=flt, score_sum=pose.score,
                      box_size=self._next_size(None, pose, "detection"))
        self.next_id += 1
        track.shown = self._show(track, pose, "detection", t)
        self.active.append(track)
        return track

    def _update(self, track: Track, pose: Pose, source: str, index: int, t: float) -> None:
        thr = self.config.keypoint_threshold
        c_old, _ = keypoint_extent(track.pose.keypoints, track.pose.keypoint_scores, thr)
        c_new, _ = keypoint_extent(pose.keypoints, pose.keypoint_scores, thr)
        step = max(index - track.last_frame, 1)
        track.velocity = (0.4 * track.velocity + 0.6 * (c_new - c_old) / step).astype(np.float32)
        track.previous = None if track.coasting else track.pose
        track.coasting, track.lost_reason = 0, None
        track.pose = pose
        track.box_size = self._next_size(track.box_size, pose, source)
        track.last_frame = index
        track.frames += 1
        track.score_sum += pose.score
        track.shown = self._show(track, pose, source, t)

    def _next_size(self, size, pose: Pose, source: str) -> np.ndarray:
        """(w, h) of a track's next own-pose box: a key-frame box sets it; the track's own poses move it
        toward their keypoint extent x ``box_scale`` at ``box_size_rate`` per frame (a box that followed each
        pose's extent at once would feed the pose's noise back into the next crop)."""
        if source == "detection":
            return np.asarray(pose.box[2:], np.float32)
        _, extent = keypoint_extent(pose.keypoints, pose.keypoint_scores, self.config.keypoint_threshold)
        target = extent * self.config.box_scale
        if size is None:
            return target.astype(np.float32)
        return ((1 - self.config.box_size_rate) * size + self.config.box_size_rate * target).astype(np.float32)

    def _merge_duplicates(self) -> None:
        """Two tracks now on one person: the one whose new pose is less like its own previous pose jumped
        onto the other's person and ends (ties: the younger)."""
        live = sorted((tr for tr in self.active if tr.end is None), key=lambda tr: (tr.first_frame, tr.id))
        for a_i, a in enumerate(live):
            for b in live[a_i + 1:]:
                if a.end is not None:
                    break
                if b.end is not None or self._pose_similarity(a.pose, b.pose) <= self.config.duplicate_similarity:
                    continue
                stay_a = self._continuity(a) >= self._continuity(b)
                keep, drop = (a, b) if stay_a else (b, a)
                self._lose(drop, f"merged into {keep.id}")

    def _continuity(self, track: Track) -> float:
        """Similarity of a track's new pose to its previous one, shifted by its motion (1 for a new track)."""
        if track.previous is None:
            return 1.0
        prev = Pose(track.previous.keypoints + track.velocity, track.previous.keypoint_scores, track.previous.box,
                    track.previous.box_score, track.previous.score, track.previous.center, track.previous.scale)
        return self._pose_similarity(prev, track.pose)

    def _lose(self, track: Track, reason: str) -> None:
        """The track no longer shows its person: it coasts (moves on by its last motion, waiting for a
        key-frame detection to match it, forced on the next frame) for up to ``coast_frames`` frames, then ends."""
        if self.config.coast_frames <= 0:
            self._end(track, reason)
            return
        track.coasting, track.lost_reason = 1, reason
        self.coasting.append(track)
        self.force_keyframe = True

    def _end(self, track: Track, reason: str) -> None:
        if track.end is None:
            track.end = reason
            self.ended.append(track)
