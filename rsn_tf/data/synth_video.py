"""Synthetic people on video: walking, entering and leaving, crossing and occluding, with exact truth.

``make_synthetic_video(out_dir, seconds, people, seed)`` writes ``out_dir/clip.mp4`` (MPEG-4 part 2,
``mp4v``, which OpenCV's own FFmpeg writes and reads everywhere) and ``out_dir/truth.json``. The figures
are the still-image set's (:func:`rsn_tf.data.synth.draw_figure`, one colour set per person for the whole
clip) over one static background with fresh camera noise per frame; the poses are a walk cycle (legs and
arms swinging in the image plane, a small vertical bob) in the same body proportions as
:func:`rsn_tf.data.synth.sample_pose`.

Who is in a clip of ``people`` = N persons (ids 1..N, in this order; the layout is fixed, the details
-- appearance, body, speeds, positions, background -- follow the seed):

1. a walker entering from the left, crossing the frame during the clip, leaving on the right;
2. a walker the other way, nearer to the camera: the two cross in the middle and 2 occludes 1;
3. a person standing still further back (a fixed pose: its truth has zero motion, so any motion of its
   predicted keypoints is jitter), passed in front of by both walkers;
4. a runner (about 3.5x walking speed) entering from the left a third into the clip and leaving before the end;
5+. walkers with random direction, depth, start time and speed.

truth.json (keypoints in image pixels, also outside the image; COCO keypoint order)::

    {"format": "rsn_tf-synth-video-1", "seed", "fps", "width", "height", "num_frames",
     "keypoint_names": [17 names],
     "people": [{"id", "role": "walker"|"static"|"runner", "first_frame", "last_frame"}],
     "frames": [{"index", "time", "people": [{"id", "keypoints": [[x, y] x 17],
                 "visible": [17 x 0|1|2], "box": [x, y, w, h], "area"}]}]}

``visible`` is exact (the figures' id map, as in the still set): 2 = its own pixel shows, 1 = another
person covers it, 0 = outside the image. ``box`` is the extent of the person's visible pixels and
``area`` their count; a person with no visible pixel in a frame is not listed in that frame. The file is
also a box file for ``rsn video --boxes truth.json``.
"""
from __future__ import annotations

import dataclasses
import os

import cv2
import numpy as np

from rsn_tf.data.synth import (L_ANK, L_ELB, L_HIP, L_KNE, L_SHO, L_WRI, R_ANK, R_ELB, R_HIP, R_KNE, R_SHO, R_WRI,
                               Appearance, _rot, draw_background, draw_figure, figure_record, place_face,
                               sample_appearance)
from rsn_tf.io_utils import atomic_path, write_json
from rsn_tf.keypoints import COCO

TRUTH_FORMAT = "rsn_tf-synth-video-1"
FOURCC = "mp4v"


@dataclasses.dataclass
class Person:
    """One person of a clip: role, appearance, body and path (x of the pelvis at time t)."""

    id: int
    role: str
    appearance: Appearance
    height: float          # px
    foot_y: float          # image y of the ground line (depth)
    x0: float              # pelvis x at t_start
    speed: float           # px / s, signed (+: to the image right)
    t_start: float         # s; before it the person is not in the scene
    stride: float          # px per walk cycle
    facing: float          # cos(yaw) as in sample_pose
    lengths: np.ndarray    # per-segment length factors (8)
    widths: tuple          # arm, leg width (px)
    arm_rest: tuple        # static pose: abduction of each arm (deg)
    phase0: float

    def pelvis(self, t: float) -> np.ndarray:
        leg = (0.245 * self.lengths[4] + 0.24 * self.lengths[5]) * self.height
        return np.array([self.x0 + self.speed * (t - self.t_start), self.foot_y - leg], np.float64)

    def present(self, t: float) -> bool:
        return t >= self.t_start


def _person(rng: np.random.Generator, pid: int, role: str, width: int, height: int, seconds: float) -> Person:
    depth = {1: 0.55, 2: 0.95, 3: 0.15, 4: 0.75}.get(pid, float(rng.uniform(0.2, 1.0)))
    depth = float(np.clip(depth + rng.uniform(-0.05, 0.05), 0.0, 1.0))
    fig_h = height * (0.42 + 0.33 * depth)
    foot_y = height * (0.80 + 0.15 * depth)
    span = 1.16 * width + 0.3 * fig_h                  # from fully outside on one side to the other
    walk = span / seconds * rng.uniform(0.95, 1.05)    # a walker crosses during the clip
    off = 0.08 * width + 0.15 * fig_h                   # start just outside the frame
    if role == "static":
        x0, speed, t0 = width * rng.uniform(0.28, 0.36), 0.0, 0.0
    elif role == "runner":
        speed = 3.5 * walk
        x0, t0 = -off, seconds * 0.3
    elif pid == 2:
        x0, speed, t0 = width + off, -walk, 0.0
    elif pid == 1:
        x0, speed, t0 = -off, walk, 0.0
    else:  # extra walkers
        direction = rng.choice([-1.0, 1.0])
        speed = direction * walk * rng.uniform(0.8, 1.4)
        x0, t0 = (-off if direction > 0 else width + off), seconds * rng.uniform(0.0, 0.4)
    stride = fig_h * (1.1 if role == "runner" else 0.75)
    return Person(pid, role, sample_appearance(rng), fig_h, foot_y, float(x0), float(speed), float(t0), stride,
                  float(rng.uniform(0.7, 1.0)), rng.uniform(0.93, 1.07, 8), (0.05 * fig_h * rng.uniform(0.8, 1.2),
                                                                             0.07 * fig_h * rng.uniform(0.8, 1.2)),
                  (float(rng.uniform(5, 40)), float(rng.uniform(5, 40))), float(rng.uniform(0, 2 * np.pi)))


def pose_at(person: Person, t: float) -> tuple[np.ndarray, dict]:
    """Keypoints [17, 2] (px) and drawing sizes (as :func:`rsn_tf.data.synth.sample_pose`) at time ``t`` s."""
    H, L = person.height, person.lengths
    moving = person.speed != 0.0
    direction = np.sign(person.speed) if moving else 0.0
    phase = person.phase0 + 2 * np.pi * abs(person.speed) * max(t - person.t_start, 0.0) / person.stride
    run = person.role == "runner"
    leg_amp, arm_amp = (38.0, 45.0) if run else (24.0, 22.0)
    if not moving:
        leg_amp = arm_amp = 0.0
    pelvis = person.pelvis(t)
    if moving:  # the body rises when the legs pass each other
        pelvis[1] -= 0.02 * H * abs(np.cos(phase))
    lean = 8.0 * direction if run else 2.0 * direction
    down = _rot(np.array([0.0, 1.0]), -lean)
    right = np.array([down[1], -down[0]])
    shoulder_mid = pelvis - down * 0.30 * H * L[0]
    head_r = 0.065 * H * L[1]
    head_c = shoulder_mid - down * (0.105 * H * L[2] + head_r * 0.6)
    facing = person.facing
    sw, hw = 0.115 * H * facing * L[3], 0.085 * H * facing
    p = np.zeros((17, 2), np.float64)
    p[L_SHO], p[R_SHO] = shoulder_mid + right * sw, shoulder_mid - right * sw
    p[L_HIP], p[R_HIP] = pelvis + right * hw, pelvis - right * hw
    # the face turns a little toward the walking direction
    face_dx = (direction if moving else 1.0) * np.sqrt(max(0.0, 1 - facing ** 2)) * head_r * 0.7
    up = -down
    place_face(p, head_c, right, up, head_r, facing, face_dx)

    def chain(start, side, a1, a2, l1, l2):  # a1: away from the body's midline; a2: bend at the middle joint
        d1 = down * np.cos(np.deg2rad(a1)) + right * side * np.sin(np.deg2rad(a1))
        mid = start + d1 * l1
        return mid, mid + _rot(d1, -side * a2) * l2

    for k, (side, (hip, kne, ank)) in enumerate(((1, (L_HIP, L_KNE, L_ANK)), (-1, (R_HIP, R_KNE, R_ANK)))):
        ph = phase + np.pi * k
        swing = direction * leg_amp * np.sin(ph)             # + swings toward the walking direction
        knee = (8.0 + (55.0 if run else 30.0) * max(0.0, np.cos(ph))) if moving else 6.0
        p[kne], p[ank] = chain(p[hip], side, 4.0 + side * swing, side * direction * knee if moving else knee,
                               0.245 * H * L[4], 0.24 * H * L[5])
    for k, (side, (sho, elb, wri)) in enumerate(((1, (L_SHO, L_ELB, L_WRI)), (-1, (R_SHO, R_ELB, R_WRI)))):
        ph = phase + np.pi * (1 - k)                          # arms swing against the legs
        swing = direction * arm_amp * np.sin(ph)
        base = 12.0 if moving else person.arm_rest[k]
        elbow = (20.0 + 25.0 * max(0.0, np.sin(ph))) if moving else 15.0
        p[elb], p[wri] = chain(p[sho], side, base + side * swing, elbow, 0.17 * H * L[6], 0.15 * H * L[7])
    arm_w, leg_w = person.widths
    sizes = dict(head_r=head_r, head_c=head_c, shoulder_mid=shoulder_mid, facing=facing, arm_w=arm_w, leg_w=leg_w)
    return p.astype(np.float32), sizes


def clip_people(num_people: int, seed: int, width: int, height: int, seconds: float) -> list[Person]:
    roles = ["walker", "walker", "static", "runner"] + ["walker"] * max(0, num_people - 4)
    rng = np.random.default_rng([int(seed), 0])
    return [_person(rng, i + 1, roles[i], width, height, seconds) for i in range(num_people)]


def render_frame(background: np.ndarray, people: list[Person], t: float, noise_rng: np.random.Generator,
                 noise: float = 3.0) -> tuple[np.ndarray, list[dict]]:
    """One frame [H, W, 3] BGR uint8 at time ``t`` and the truth of every person with a visible pixel."""
    height, width = background.shape[:2]
    image = background.copy()
    idmap = np.zeros((height, width), np.uint8)
    here = [p for p in people if p.present(t)]
    # far (small) people first, so that nearer ones cover them
    here.sort(key=lambda p: p.foot_y)
    drawn = []
    for p in here:
        pts, sizes = pose_at(p, t)
        draw_figure(image, idmap, p.id, pts, sizes, appearance=p.appearance)
        drawn.append((p, pts))
    truth = []
    for p, pts in drawn:
        fig = figure_record(pts, idmap, p.id)
        if fig.area <= 0:
            continue
        truth.append({"id": p.id, "keypoints": np.round(pts.astype(np.float64), 3).tolist(),
                      "visible": fig.visible.tolist(), "box": [round(v, 2) for v in fig.bbox], "area": fig.area})
    truth.sort(key=lambda r: r["id"])
    if noise > 0:
        img = noise_rng.standard_normal(image.shape, dtype=np.float32)
        img *= noise
        img += image
        image = np.clip(img, 0, 255, out=img).astype(np.uint8)
    return image, truth


def make_synthetic_video(out_dir: str, seconds: float = 4.0, people: int = 2, seed: int = 0,
                         size: tuple[int, int] = (320, 240), fps: float = 25.0, noise: float = 3.0,
                         progress=None) -> dict:
    """Write ``out_dir/clip.mp4`` and ``out_dir/truth.json`` (see the module docstring); deterministic for ``seed``.

    size: (width, height); people: 1..16. Frame ``i`` is at time ``i / fps``. Returns
    ``{"clip", "truth", "frames", "people", "size", "fps"}``.
    """
    width, height = (int(v) for v in size)
    if width < 64 or height < 64 or width % 2 or height % 2:
        raise ValueError(f"--size must be at least 64x64 with even sides (got {width}x{height})")
    if not 1 <= int(people) <= 16:
        raise ValueError(f"--people must be 1..16 (got {people})")
    if not seconds > 0 or not fps > 0:
        raise ValueError(f"--seconds and --fps must be > 0 (got {seconds}, {fps})")
    num_frames = int(round(seconds * fps))
    if num_frames < 1:
        raise ValueError(f"--seconds {seconds} at {fps} frames/s gives no frame")
    persons = clip_people(int(people), seed, width, height, float(seconds))
    background = draw_background(np.random.default_rng([int(seed), 1]), width, height)
    os.makedirs(out_dir, exist_ok=True)
    clip_path, truth_path = os.path.join(out_dir, "clip.mp4"), os.path.join(out_dir, "truth.json")
    frames = []
    with atomic_path(clip_path) as tmp:
        writer = cv2.VideoWriter(tmp, cv2.VideoWriter_fourcc(*FOURCC), float(fps), (width, height))
        if not writer.isOpened():
            raise RuntimeError(f"OpenCV cannot write {FOURCC} video to {clip_path}")
        try:
            for i in range(num_frames):
                t = i / fps
                image, truth = render_frame(background, persons, t, np.random.default_rng([int(seed), 2, i]), noise)
                writer.write(image)
                frames.append({"index": i, "time": round(t, 6), "people": truth})
                if progress is not None:
                    progress(i + 1, num_frames)
        finally:
            writer.release()
    seen = {}
    for f in frames:
        for r in f["people"]:
            a, b = seen.get(r["id"], (f["index"], f["index"]))
            seen[r["id"]] = (min(a, f["index"]), max(b, f["index"]))
    meta = [{"id": p.id, "role": p.role, "first_frame": seen.get(p.id, (None, None))[0],
             "last_frame": seen.get(p.id, (None, None))[1]} for p in persons]
    write_json(truth_path, {"format": TRUTH_FORMAT, "seed": int(seed), "fps": float(fps), "width": width,
                            "height": height, "num_frames": num_frames, "keypoint_names": list(COCO.names),
                            "people": meta, "frames": frames}, indent=None)
    return {"clip": clip_path, "truth": truth_path, "frames": num_frames, "people": meta, "size": [width, height],
            "fps": float(fps)}
