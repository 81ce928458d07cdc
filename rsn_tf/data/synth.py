"""The built-in synthetic dataset: articulated 17-joint people drawn with OpenCV, in COCO keypoint format.

``make_synthetic_dataset(out_dir, num_images, seed)`` writes ``out_dir/images/NNNNNN.jpg`` and
``out_dir/person_keypoints_{train,val}.json`` so that every command runs on a machine with no data.

A figure is a 2D stick-and-shape person seen from the front: pelvis, a torso leaning up to ~30 deg,
head with eyes, nose and ears, arms and legs with random joint angles inside human ranges, segment
lengths in adult proportions (x ~8% jitter, occasional foreshortening). Limbs are tapered filled
polygons, shirt/trouser/skin colours vary per figure, widths vary per figure; 1-4 figures per image
over gradient, noise-texture or clutter backgrounds, sometimes a foreground occluder.

Left/right cue: figures face the camera (eyes and nose drawn), so the person's left is on the image
right, and left and right parts are drawn alike. That cue survives a mirror flip with the label swap
(a mirrored front-facing figure is again a front-facing figure with its left on the image right),
so flip augmentation and the flip test stay consistent. A colour cue such as "left parts lighter"
would not: after a flip and the swap the lighter parts would be labelled right.

Visibility is exact: each figure is also drawn into an id map (later figures overwrite earlier ones);
a keypoint is 2 if its pixel shows its own figure, 1 if a later figure or occluder covers it, 0 (and
x = y = 0, COCO style) if it falls outside the image. ``bbox`` is the extent of the figure's visible
pixels and ``area`` their count (what COCO's segmentation area measures; OKS uses it).
"""
from __future__ import annotations

import dataclasses
import os

import cv2
import numpy as np

from rsn_tf.io_utils import atomic_path, write_json
from rsn_tf.keypoints import COCO

_SHIFT = 4  # OpenCV fixed-point bits: sub-pixel drawing so keypoints sit where the shapes are
_ONE = 1 << _SHIFT
OCCLUDER_ID = 255

# COCO keypoint indices
NOSE, L_EYE, R_EYE, L_EAR, R_EAR, L_SHO, R_SHO, L_ELB, R_ELB, L_WRI, R_WRI, L_HIP, R_HIP, L_KNE, R_KNE, L_ANK, \
    R_ANK = range(17)


@dataclasses.dataclass
class Figure:
    """One drawn person: true keypoints [17, 2] (image pixels, also outside the image) and visibility [17]."""

    points: np.ndarray
    visible: np.ndarray
    bbox: list
    area: float


def place_face(p, head_c, right, up, head_r: float, facing: float, face_dx: float) -> None:
    """Set the nose, eyes and ears of ``p`` [17, 2] in place: a head of radius ``head_r`` centred at
    ``head_c``, ``right``/``up`` the torso frame's unit vectors, ``facing`` = cos(yaw), ``face_dx`` the
    face's sideways shift toward where the figure looks."""
    p[NOSE] = head_c + right * face_dx - up * head_r * 0.15
    p[L_EYE] = head_c + right * (face_dx + head_r * 0.38 * facing) + up * head_r * 0.22
    p[R_EYE] = head_c + right * (face_dx - head_r * 0.38 * facing) + up * head_r * 0.22
    p[L_EAR] = head_c + right * (head_r * 0.82 * facing + face_dx * 0.3) + up * head_r * 0.05
    p[R_EAR] = head_c - right * (head_r * 0.82 * facing - face_dx * 0.3) + up * head_r * 0.05


def _rot(v, deg):
    a = np.deg2rad(deg)
    c, s = np.cos(a), np.sin(a)
    return np.array([c * v[0] - s * v[1], s * v[0] + c * v[1]], np.float64)


def sample_pose(rng: np.random.Generator, pelvis, height: float) -> tuple[np.ndarray, dict]:
    """Keypoints [17, 2] of a front-facing figure ``height`` px tall, pelvis at ``pelvis``; and drawing sizes."""
    j = lambda: rng.uniform(0.92, 1.08)  # noqa: E731  per-segment length jitter
    fs = lambda: 1.0 if rng.random() < 0.75 else rng.uniform(0.65, 1.0)  # noqa: E731  foreshortening
    H = height
    facing = rng.uniform(0.55, 1.0)  # cos(yaw): narrows shoulders/hips and shifts the face
    yaw_sign = rng.choice([-1.0, 1.0])
    lean = np.clip(rng.normal(0, 10), -30, 30)
    down = _rot(np.array([0.0, 1.0]), -lean)  # image y grows downward; positive lean tilts the top right
    right = np.array([down[1], -down[0]])       # image-right unit vector of the torso frame
    pelvis = np.asarray(pelvis, np.float64)
    shoulder_mid = pelvis - down * 0.30 * H * j()
    head_r = 0.065 * H * j()
    neck = 0.105 * H * j()
    head_c = shoulder_mid - _rot(down, rng.normal(0, 8)) * (neck + head_r * 0.6)
    sw, hw = 0.115 * H * facing * j(), 0.085 * H * facing * j()
    p = np.zeros((17, 2), np.float64)
    # person's left is on the image right (facing the camera)
    p[L_SHO], p[R_SHO] = shoulder_mid + right * sw, shoulder_mid - right * sw
    p[L_HIP], p[R_HIP] = pelvis + right * hw, pelvis - right * hw
    face_dx = yaw_sign * np.sqrt(max(0.0, 1 - facing ** 2)) * head_r * 0.7
    up = -down
    place_face(p, head_c, right, up, head_r, facing, face_dx)

    def chain(start, side, a1, a2, l1, l2):
        d1 = down * np.cos(np.deg2rad(a1)) + right * side * np.sin(np.deg2rad(a1))
        mid = start + d1 * l1
        d2 = _rot(d1, side * a2 * -1)
        return mid, mid + d2 * l2

    for side, (sho, elb, wri) in ((1, (L_SHO, L_ELB, L_WRI)), (-1, (R_SHO, R_ELB, R_WRI))):
        abduct = rng.uniform(-25, 165) if rng.random() < 0.8 else rng.uniform(-40, 10)
        flex = rng.uniform(-20, 150) * rng.choice([1, -1], p=[0.7, 0.3])
        p[elb], p[wri] = chain(p[sho], side, abduct, flex, 0.17 * H * j() * fs(), 0.15 * H * j() * fs())
    stride = rng.normal(0, 12)
    for side, (hip, kne, ank) in ((1, (L_HIP, L_KNE, L_ANK)), (-1, (R_HIP, R_KNE, R_ANK))):
        spread = rng.uniform(-8, 35) + side * stride * 0.3 if rng.random() < 0.85 else rng.uniform(30, 95)
        knee = rng.uniform(-35, 70) if rng.random() < 0.8 else rng.uniform(70, 130)
        p[kne], p[ank] = chain(p[hip], side, spread, knee, 0.245 * H * j() * fs(), 0.24 * H * j() * fs())
    sizes = dict(head_r=head_r, head_c=head_c, shoulder_mid=shoulder_mid, facing=facing,
                 arm_w=0.05 * H * rng.uniform(0.7, 1.3), leg_w=0.07 * H * rng.uniform(0.7, 1.3))
    return p.astype(np.float32), sizes


def _fx(p):
    return np.round(np.asarray(p, np.float64) * _ONE).astype(np.int32)


def _limb(canvases, a, b, w1, w2, colors):
    """Tapered filled limb from a (width w1) to b (width w2), round ends, on every (image, color) pair."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    d = b - a
    n = np.array([-d[1], d[0]]) / (np.hypot(*d) + 1e-6)
    poly = _fx([a + n * w1 / 2, b + n * w2 / 2, b - n * w2 / 2, a - n * w1 / 2])
    for img, col in zip(canvases, colors):
        cv2.fillConvexPoly(img, poly, col, cv2.LINE_AA if img.ndim == 3 else cv2.LINE_8, _SHIFT)
        for c, w in ((a, w1), (b, w2)):
            cv2.circle(img, tuple(_fx(c)), int(round(w / 2 * _ONE)), col, -1,
                       cv2.LINE_AA if img.ndim == 3 else cv2.LINE_8, _SHIFT)


def _random_color(rng, sat=(0.3, 1.0), val=(0.25, 0.95)):
    hsv = np.uint8([[[rng.integers(0, 180), int(255 * rng.uniform(*sat)), int(255 * rng.uniform(*val))]]])
    return tuple(int(v) for v in cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR)[0, 0])


@dataclasses.dataclass(frozen=True)
class Appearance:
    """A figure's colours (BGR): shirt, trousers, skin, and each foot's shoe (left, right)."""

    shirt: tuple
    pants: tuple
    skin: tuple
    shoes: tuple


def sample_appearance(rng: np.random.Generator) -> Appearance:
    """Random colours of one figure (a video keeps them for every frame of a person)."""
    shirt, pants = _random_color(rng), _random_color(rng)
    skin = _random_color(rng, sat=(0.2, 0.6), val=(0.35, 0.95))
    shoes = tuple(pants if rng.random() < 0.5 else (30, 30, 30) for _ in range(2))
    return Appearance(shirt, pants, skin, shoes)


def draw_figure(image, idmap, fid: int, p, sizes, rng=None, appearance: Appearance | None = None):
    """Draw one figure (keypoints ``p`` [17, 2] px, ``sizes`` as :func:`sample_pose` returns) on ``image``
    (BGR uint8) and its id ``fid`` on ``idmap`` (uint8). Colours: ``appearance``, else sampled from ``rng``.
    The one drawing function of the still-image set and of :mod:`rsn_tf.data.synth_video`."""
    look = appearance if appearance is not None else sample_appearance(rng)
    shirt, pants, skin = look.shirt, look.pants, look.skin
    aw, lw = sizes["arm_w"], sizes["leg_w"]
    can = (image, idmap)
    ids = lambda col: (col, fid)  # noqa: E731
    # legs (behind the torso), then torso and neck, head, arms on top
    for shoe, (hip, kne, ank) in zip(look.shoes, ((L_HIP, L_KNE, L_ANK), (R_HIP, R_KNE, R_ANK))):
        _limb(can, p[hip], p[kne], lw, lw * 0.85, ids(pants))
        _limb(can, p[kne], p[ank], lw * 0.85, lw * 0.6, ids(pants))
        foot = p[ank] + np.array([0.0, lw * 0.25])
        for img, c in zip(can, ids(shoe)):
            cv2.ellipse(img, tuple(_fx(foot)), (int(lw * 0.6 * _ONE), int(lw * 0.3 * _ONE)), 0, 0, 360, c, -1,
                        cv2.LINE_8, _SHIFT)
    pad = aw * 0.4
    torso = [p[L_SHO] + (p[L_SHO] - p[R_SHO]) / (np.linalg.norm(p[L_SHO] - p[R_SHO]) + 1e-6) * pad,
             p[R_SHO] + (p[R_SHO] - p[L_SHO]) / (np.linalg.norm(p[L_SHO] - p[R_SHO]) + 1e-6) * pad,
             p[R_HIP] - (p[L_HIP] - p[R_HIP]) * 0.15, p[L_HIP] + (p[L_HIP] - p[R_HIP]) * 0.15]
    for img, c in zip(can, ids(shirt)):
        cv2.fillConvexPoly(img, _fx(torso), c, cv2.LINE_AA if img.ndim == 3 else cv2.LINE_8, _SHIFT)
    hc, r = sizes["head_c"], sizes["head_r"]
    _limb(can, sizes["shoulder_mid"], hc, r * 0.8, r * 0.7, ids(skin))
    for img, c in zip(can, ids(skin)):
        cv2.ellipse(img, tuple(_fx(hc)), (int(r * 0.92 * _ONE), int(r * 1.1 * _ONE)), 0, 0, 360, c, -1,
                    cv2.LINE_AA if img.ndim == 3 else cv2.LINE_8, _SHIFT)
    # face features: ears (skin), eyes (dark), nose (reddish); all inside the head ellipse
    for ear in (L_EAR, R_EAR):
        for img, c in zip(can, ids(skin)):
            cv2.circle(img, tuple(_fx(p[ear])), int(r * 0.22 * _ONE), c, -1,
                       cv2.LINE_AA if img.ndim == 3 else cv2.LINE_8, _SHIFT)
    for eye in (L_EYE, R_EYE):
        cv2.circle(image, tuple(_fx(p[eye])), int(max(1.0, r * 0.14) * _ONE), (20, 20, 20), -1, cv2.LINE_AA, _SHIFT)
    cv2.circle(image, tuple(_fx(p[NOSE])), int(max(1.0, r * 0.13) * _ONE), (60, 60, 170), -1, cv2.LINE_AA, _SHIFT)
    for sho, elb, wri in ((L_SHO, L_ELB, L_WRI), (R_SHO, R_ELB, R_WRI)):
        _limb(can, p[sho], p[elb], aw, aw * 0.85, ids(shirt))
        _limb(can, p[elb], p[wri], aw * 0.8, aw * 0.6, ids(skin))
        for img, c in zip(can, ids(skin)):
            cv2.circle(img, tuple(_fx(p[wri])), int(aw * 0.45 * _ONE), c, -1, cv2.LINE_8, _SHIFT)


def draw_background(rng, width: int, height: int) -> np.ndarray:
    """A random BGR uint8 background: gradient, smooth noise texture or clutter of shapes."""
    kind = rng.integers(0, 3)
    if kind == 0:
        c0, c1 = np.array(_random_color(rng), np.float32), np.array(_random_color(rng), np.float32)
        t = np.linspace(0, 1, height if rng.random() < 0.5 else width, dtype=np.float32)
        ramp = t[:, None] * c1 + (1 - t[:, None]) * c0
        img = np.broadcast_to(ramp[:, None, :], (height, width, 3)) if len(t) == height else \
            np.broadcast_to(ramp[None, :, :], (height, width, 3))
        img = img.astype(np.float32).copy()
    elif kind == 1:
        cells = rng.integers(3, 12)
        small = rng.uniform(0, 255, (cells, cells, 3)).astype(np.float32)
        img = cv2.resize(small, (width, height), interpolation=cv2.INTER_CUBIC)
        img = img * rng.uniform(0.4, 1.0) + rng.uniform(0, 100)
    else:
        img = np.empty((height, width, 3), np.float32)
        img[:] = _random_color(rng)
    img = np.clip(img, 0, 255).astype(np.uint8)
    for _ in range(rng.integers(3, 25) if kind == 2 else rng.integers(0, 8)):
        col = _random_color(rng)
        x, y = int(rng.uniform(0, width)), int(rng.uniform(0, height))
        s = int(rng.uniform(0.03, 0.25) * min(width, height))
        shape = rng.integers(0, 3)
        if shape == 0:
            cv2.rectangle(img, (x, y), (x + s, y + int(s * rng.uniform(0.3, 2))), col, -1)
        elif shape == 1:
            cv2.circle(img, (x, y), s // 2, col, -1, cv2.LINE_AA)
        else:  # stick-like distractors: the model must use the body structure, not "a thick line"
            x2, y2 = x + int(rng.normal(0, s)), y + int(rng.normal(0, s))
            cv2.line(img, (x, y), (x2, y2), col, int(rng.integers(2, 10)), cv2.LINE_AA)
    return img


def render_image(rng: np.random.Generator, width: int = 384, height: int = 288,
                 max_people: int = 4) -> tuple[np.ndarray, list[Figure]]:
    """One synthetic image [height, width, 3] BGR uint8 and its figures (true points, visibility, bbox, area)."""
    image = draw_background(rng, width, height)
    idmap = np.zeros((height, width), np.uint8)  # 0 = background, i + 1 = figure i, 255 = occluder
    n = int(rng.choice(np.arange(1, max_people + 1), p=_people_probs(max_people)))
    poses = []
    for i in range(n):
        fig_h = height * rng.uniform(0.45, 0.95) * (1.0 if n == 1 else rng.uniform(0.7, 1.0))
        edge = rng.random() < 0.25  # truncation at the image border
        x = rng.uniform(-0.08, 1.08) * width if edge else rng.uniform(0.12, 0.88) * width
        y = rng.uniform(0.38, 0.62) * height + (rng.uniform(0, 0.3) * height if edge else 0)
        pts, sizes = sample_pose(rng, (x, y), fig_h)
        poses.append((pts, sizes))
    # draw far (small) figures first so overlaps look like depth
    order = sorted(range(n), key=lambda i: poses[i][0][:, 1].max())
    for rank, i in enumerate(order):
        draw_figure(image, idmap, rank + 1, poses[i][0], poses[i][1], rng)
    if rng.random() < 0.2:  # a foreground occluder (a post, a box)
        col = _random_color(rng)
        x0 = int(rng.uniform(0, width))
        w = int(rng.uniform(0.04, 0.15) * width)
        y0 = int(rng.uniform(0, height * 0.6)) if rng.random() < 0.5 else 0
        for img, c in ((image, col), (idmap, OCCLUDER_ID)):
            cv2.rectangle(img, (x0, y0), (x0 + w, height), c, -1)
    image = _finish(rng, image)
    figures = [figure_record(poses[i][0], idmap, rank + 1) for rank, i in enumerate(order)]
    return image, figures


def figure_record(points, idmap, fid: int) -> Figure:
    """The truth of figure ``fid`` drawn on ``idmap`` [H, W] uint8: visibility (2 own pixel, 1 covered,
    0 outside the image), ``bbox`` = extent of its visible pixels ([0, 0, 0, 0] if none), ``area`` = their count."""
    height, width = idmap.shape[:2]
    pts = points
    vis = np.full((len(pts),), 2, np.int32)
    xi, yi = np.round(pts[:, 0]).astype(int), np.round(pts[:, 1]).astype(int)
    inside = (pts[:, 0] >= 0) & (pts[:, 0] <= width - 1) & (pts[:, 1] >= 0) & (pts[:, 1] <= height - 1)
    xi, yi = np.clip(xi, 0, width - 1), np.clip(yi, 0, height - 1)
    covered = idmap[yi, xi] != fid
    vis[covered] = 1
    vis[~inside] = 0
    mask = idmap == fid
    ys, xs = np.nonzero(mask)
    if len(xs) == 0:
        bbox = [0.0, 0.0, 0.0, 0.0]
    else:
        bbox = [float(xs.min()), float(ys.min()), float(xs.max() - xs.min() + 1), float(ys.max() - ys.min() + 1)]
    return Figure(pts, vis, bbox, float(len(xs)))


def _people_probs(max_people):
    w = np.array([0.35, 0.3, 0.2, 0.15][:max_people] + [0.1] * max(0, max_people - 4))
    return w / w.sum()


def _finish(rng, image):
    """Camera-ish noise and blur."""
    img = image.astype(np.float32)
    img += rng.normal(0, rng.uniform(2, 9), img.shape).astype(np.float32)
    if rng.random() < 0.3:
        img = cv2.GaussianBlur(img, (3, 3), 0)
    return np.clip(img, 0, 255).astype(np.uint8)


def _annotation(fig: Figure, ann_id: int, image_id: int) -> dict | None:
    """COCO annotation of a figure, or None if no keypoint is in the image or nothing of it is visible."""
    num = int(np.sum(fig.visible > 0))
    if num == 0 or fig.area <= 0:
        return None
    kp = []
    for (x, y), v in zip(fig.points, fig.visible):
        kp += [round(float(x), 2), round(float(y), 2), int(v)] if v > 0 else [0, 0, 0]
    return dict(id=ann_id, image_id=image_id, category_id=1, iscrowd=0, num_keypoints=num, keypoints=kp,
                bbox=[round(v, 2) for v in fig.bbox], area=fig.area, segmentation=[])


def coco_category() -> dict:
    """The COCO person category (17 keypoint names, 1-based skeleton), from :data:`rsn_tf.keypoints.COCO`."""
    return dict(id=1, name="person", supercategory="person", keypoints=list(COCO.names),
                skeleton=[[a + 1, b + 1] for a, b in COCO.skeleton])


def make_synthetic_dataset(out_dir: str, num_images: int = 200, seed: int = 0, val_fraction: float = 0.2,
                           size: tuple[int, int] = (384, 288), max_people: int = 4, jpeg_quality: int = 92,
                           progress=None) -> dict:
    """Write a synthetic COCO keypoint dataset; deterministic for ``seed``.

    Layout: ``out_dir/images/{id:06d}.jpg``, ``out_dir/person_keypoints_train.json`` (the first
    ``num_images - round(num_images * val_fraction)`` images) and ``person_keypoints_val.json`` (the rest).
    size: (width, height) of every image. Image ``i`` uses ``default_rng([seed, i])``, so a larger set
    starts with the same images as a smaller one.

    Returns a summary dict: paths, image and instance counts per split.
    """
    if num_images < 1:
        raise ValueError(f"num_images must be >= 1 (got {num_images})")
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in [0, 1) (got {val_fraction})")
    width, height = (int(v) for v in size)
    if width < 64 or height < 64:
        raise ValueError(f"size must be at least 64x64 (got {width}x{height})")
    image_dir = os.path.join(out_dir, "images")
    os.makedirs(image_dir, exist_ok=True)
    num_val = int(round(num_images * val_fraction))
    if num_images > 1 and val_fraction > 0:
        num_val = max(1, num_val)
    num_train = num_images - num_val
    splits = {"train": dict(images=[], annotations=[]), "val": dict(images=[], annotations=[])}
    ann_id = 1
    for i in range(num_images):
        rng = np.random.default_rng([int(seed), i])
        image, figures = render_image(rng, width, height, max_people)
        image_id = i + 1
        name = f"{image_id:06d}.jpg"
        ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, int(jpeg_quality)])
        with atomic_path(os.path.join(image_dir, name)) as tmp:
            buf.tofile(tmp)
        split = splits["train" if i < num_train else "val"]
        split["images"].append(dict(id=image_id, file_name=name, width=width, height=height))
        for fig in figures:
            ann = _annotation(fig, ann_id, image_id)
            if ann is not None:
                split["annotations"].append(ann)
                ann_id += 1
        if progress is not None:
            progress(i + 1, num_images)
    summary = {"out_dir": out_dir, "images_dir": image_dir, "seed": int(seed), "size": [width, height]}
    for name, split in splits.items():
        path = os.path.join(out_dir, f"person_keypoints_{name}.json")
        write_json(path, dict(
            info=dict(description=f"rsn_tf synthetic people, seed {seed}", version="1"), licenses=[],
            categories=[coco_category()], **split), indent=None)
        summary[name] = {"ann": path, "images": len(split["images"]), "instances": len(split["annotations"])}
    return summary


def make_synthetic_demo(out_dir: str, num_images: int = 200, seed: int = 0, model_cfg=None) -> dict:
    """The synthetic dataset plus two pictures of it, for the demo and for a first look.

    Writes ``out_dir/images/``, ``out_dir/person_keypoints_{train,val}.json``, ``out_dir/synth_sheet.png``
    (train images with their annotations) and ``out_dir/synth_train_crops.png`` (augmented 256x192
    training crops as the network sees them, with the keypoints their targets encode).
    Returns {"dataset": summary, "sheet": path, "crops": path}.
    """
    from rsn_tf.data.config import synthetic_data_config
    from rsn_tf.data.contact_sheet import contact_sheet, training_crops_sheet
    from rsn_tf.model.config import preset_config

    summary = make_synthetic_dataset(out_dir, num_images, seed)
    sheet = contact_sheet(summary["train"]["ann"], summary["images_dir"], os.path.join(out_dir, "synth_sheet.png"))
    crops = training_crops_sheet(synthetic_data_config(out_dir), model_cfg or preset_config("rsn18"),
                                 os.path.join(out_dir, "synth_train_crops.png"), seed=seed)
    return {"dataset": summary, "sheet": sheet, "crops": crops}
