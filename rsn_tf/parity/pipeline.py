"""``pipeline`` fixtures: mmpose's top-down pipeline, stage by stage, per annotated person.

rsn_tf's own input pipeline runs in its ``mmpose`` data mode (``DataConfig(mode="mmpose")``, what
``loss.mode: mmpose`` selects) with every random transform switched off, on the images and the
annotation file the manifest names (looked up in ``data_dir``), and each stage is compared with
mmpose's:

========================= ====================================================== ==============
check                     rsn_tf                                                 tolerance
========================= ====================================================== ==============
``instances``             the people the COCO reader keeps (by annotation id)    none missing
``bbox_xyxy``             ``augment.person_box`` (mmpose's clip rule)            exact
``center_scale``          ``augment.box_center_scale`` + aspect fix (float32)    exact
``warp_mat``              ``augment.crop_affine`` (mmpose's construction)        exact
``crop``                  the uint8 crop of ``SampleMaker`` (cv2.warpAffine)     0 levels (1 on another OpenCV)
``keypoints``             ``augment.apply_crop``'s crop-space keypoints          1e-4 px
``input_normalised``      the tf.data pipeline's batch (``build_dataset``)       1e-5
``heatmaps``              the tf.data pipeline's targets (0..255)                1e-3
``keypoint_weights``      the tf.data pipeline's weights                         identical
``eval.*``                the same for the val path (``SampleMaker(train=False)``) as above
========================= ====================================================== ==============

The crop check is bit-exact on the OpenCV the fixture was made with (4.x); OpenCV 5.0 rounds
``cv2.warpAffine``'s bilinear weights differently (up to 5 levels on the COCO sample), which the
check names. ``input_normalised`` is end to end (rsn_tf's crop -> rsn_tf's normalisation).
"""
from __future__ import annotations

import re

import numpy as np

from rsn_tf.parity.core import Check, Fixture, data_files

CROP_LEVELS_OTHER_OPENCV = 1
KEYPOINT_TOL_PX = 1e-4
INPUT_TOL = 1e-5
HEATMAP_TOL = 1e-3


# ------------------------------------------------------------------------------------- manifest
def pipeline_settings(fixture: Fixture) -> dict:
    """What mmpose's pipeline did, from either manifest layout (``pipeline`` kind: a list of transform
    dicts; ``train`` kind: ``data.pipeline`` strings + ``data.kernels`` + ``model_cfg``).

    Returns ``padding`` (float), ``input_size`` (H, W), ``kernels`` (per level), ``heatmap_size`` (h, w),
    ``mean``/``std`` (RGB or BGR per ``color_order``), ``color_order``, ``ann_file``, ``people``
    (``[{"ann_id", "img_file"}, ...]`` in fixture order), ``opencv`` (the version that made it).
    """
    m = fixture.manifest
    if isinstance(m.get("pipeline"), list) and m["pipeline"] and isinstance(m["pipeline"][0], dict):
        steps = {p["type"]: p for p in m["pipeline"]}
        padding = float(steps["GetBBoxCenterScale"].get("padding", 1.25))
        w, h = steps["TopdownAffine"]["input_size"]
        if steps["TopdownAffine"].get("use_udp"):
            raise ValueError(f"{fixture.json_path}: TopdownAffine(use_udp=True) is not what rsn_tf's mmpose mode runs")
        encoders = steps["GenerateTarget"]["encoder"]
        encoders = encoders if isinstance(encoders, list) else [encoders]
        if any(e.get("type") != "MegviiHeatmap" for e in encoders):
            raise ValueError(f"{fixture.json_path}: only MegviiHeatmap targets are supported")
        kernels = [int(e["kernel_size"]) for e in encoders]
        hw, hh = encoders[0]["heatmap_size"]
        pre = fixture.field("data_preprocessor")
        ann_file = fixture.field("dataset", "ann_file")
        people = fixture.field("people")
    else:
        text = " ".join(str(t) for t in fixture.field("data", "pipeline"))
        pad = re.search(r"GetBBoxCenterScale\(padding=([0-9.]+)\)", text)
        padding = float(pad.group(1)) if pad else 1.25
        decoder = fixture.field("model_cfg", "head", "decoder")
        w, h = decoder["input_size"]
        hw, hh = decoder["heatmap_size"]
        kernels = [int(k) for k in fixture.field("data", "kernels")]
        pre = fixture.field("model_cfg", "data_preprocessor")
        ann_file = fixture.field("data", "ann_file")
        people = fixture.field("data", "people")
    color_order = "rgb" if pre.get("bgr_to_rgb", False) else "bgr"
    return dict(padding=padding, input_size=(int(h), int(w)), heatmap_size=(int(hh), int(hw)), kernels=kernels,
                mean=tuple(float(v) for v in pre["mean"]), std=tuple(float(v) for v in pre["std"]),
                color_order=color_order, ann_file=str(ann_file), people=people,
                opencv=str(fixture.field("environment", "opencv", default="")))


# ------------------------------------------------------------------------------------- rsn_tf side
def run_rsn_tf_pipeline(settings: dict, data_dir: str, with_eval: bool = True) -> dict:
    """rsn_tf's input pipeline (mmpose mode, random transforms off) on the fixture's people.

    Returns per person (fixture order) ``found`` [N] bool and, for the people found, ``bbox_xyxy``
    [N, 4], ``center``/``scale`` [N, 2], ``warp_mat`` [N, 2, 3], ``crop`` [N, H, W, 3] uint8 BGR,
    ``keypoints`` [N, K, 2] crop px, ``inputs`` [N, H, W, 3] (the tf.data batch, normalised),
    ``heatmaps`` [N, L, h, w, K], ``weights`` [N, K]; with ``with_eval`` also ``eval_crop``,
    ``eval_heatmaps``, ``eval_weights`` (the val path), and ``kept_ann_ids`` (every id the reader kept).
    """
    from rsn_tf.data.augment import apply_crop, crop_affine
    from rsn_tf.data.config import AugmentConfig, DataConfig
    from rsn_tf.data.images import read_image
    from rsn_tf.data.pipeline import SampleMaker, build_dataset, load_instances
    from rsn_tf.codec import level_kernels
    from rsn_tf.model.config import ModelConfig, Preprocessing

    kernels = list(settings["kernels"])
    stages = next((s for s in range(1, 9) if list(level_kernels(s)) == kernels), None)
    if stages is None:
        raise ValueError(f"target kernels {kernels} are not rsn_tf's level_kernels(num_stages) for any num_stages")
    input_size = settings["input_size"]
    if (input_size[0] // 4, input_size[1] // 4) != settings["heatmap_size"]:
        raise ValueError(f"heatmap size {settings['heatmap_size']} is not input size {input_size} / 4")
    ann = f"{data_dir}/{settings['ann_file']}"
    aug = AugmentConfig(recipe="mmpose", flip_prob=0.0, half_body_prob=0.0, rotation_prob=0.0, shift_prob=0.0,
                        scale_range=(1.0, 1.0), padding=settings["padding"])
    data_cfg = DataConfig(format="coco", train_ann=ann, train_images=data_dir, val_ann=ann, val_images=data_dir,
                          mode="mmpose", augment=aug, test_padding=(settings["padding"],) * 2, num_parallel_calls=2)
    inst = load_instances(data_cfg, "train")
    model_cfg = ModelConfig(num_stages=stages, num_keypoints=inst.num_keypoints, input_size=tuple(input_size),
                            preprocessing=Preprocessing(settings["color_order"], settings["mean"], settings["std"]))
    index_of = {int(a): i for i, a in enumerate(inst.ann_ids)}
    wanted = [index_of.get(int(p["ann_id"]), -1) for p in settings["people"]]
    found = np.array([i >= 0 for i in wanted])
    rows = [i for i in wanted if i >= 0]
    out = {"found": found, "kept_ann_ids": inst.ann_ids.copy()}
    if not rows:
        return out

    output_size = (input_size[1], input_size[0])
    makers = {"": SampleMaker(inst, data_cfg, model_cfg, train=True, seed=0)}
    if with_eval:
        makers["eval_"] = SampleMaker(inst, data_cfg, model_cfg, train=False, seed=0)
    acc = {k: [] for k in ("bbox_xyxy", "center", "scale", "warp_mat", "crop", "keypoints", "eval_crop",
                           "eval_heatmaps", "eval_weights")}
    for i in rows:
        maker = makers[""]
        params = maker.params(i, 0)
        image = read_image(inst.image_paths[i])
        crop, kpts, _ = apply_crop(image, inst.keypoints[i], inst.visible[i], params, output_size,
                                   inst.spec.flip_pairs, "mmpose")
        acc["bbox_xyxy"].append(maker.box(i))
        acc["center"].append(params.center)
        acc["scale"].append(params.scale)
        acc["warp_mat"].append(crop_affine(params, image.shape[1], output_size, "mmpose"))
        acc["crop"].append(maker(i, 0)[0])
        acc["keypoints"].append(kpts)
        if with_eval:
            sample = makers["eval_"](i, 0)
            acc["eval_crop"].append(sample[0])
            acc["eval_heatmaps"].append(sample[1])
            acc["eval_weights"].append(sample[2])
    out.update({k: np.stack(v) for k, v in acc.items() if v})

    # The real tf.data pipeline (what `rsn train` iterates), on exactly these rows, in this order.
    ds = build_dataset(data_cfg, model_cfg, split="train", batch_size=len(rows), seed=0, shuffle=False,
                       repeat=False, drop_remainder=False, augment=True, with_meta=True, instances=inst.select(rows))
    images, targets, meta = next(iter(ds))
    if list(meta["index"].numpy()) != list(range(len(rows))):
        raise RuntimeError("the input pipeline reordered the instances")
    out["inputs"] = images.numpy()
    out["heatmaps"] = targets["heatmaps"].numpy()
    out["weights"] = targets["weights"].numpy()
    return out


# ------------------------------------------------------------------------------------- checks
def _max_abs(a, b) -> float:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.abs(a - b).max()) if a.size else 0.0


def crop_check(name: str, ours, ref, fixture_opencv: str) -> Check:
    """Crops [N, H, W, 3] uint8: bit-exact on the fixture's OpenCV, <= 1 level on another."""
    import cv2

    diff = np.abs(np.asarray(ours, np.int32) - np.asarray(ref, np.int32))
    ours_major = cv2.__version__.split(".")[0]
    same = not fixture_opencv or fixture_opencv.split(".")[0] == ours_major
    tol = 0 if same else CROP_LEVELS_OTHER_OPENCV
    src = f"bit-exact: OpenCV {cv2.__version__}, fixture {fixture_opencv or '?'}" if same else \
        f"{tol} level: OpenCV {cv2.__version__} vs the fixture's {fixture_opencv}"
    detail = f"{int((diff > 0).sum())} of {diff.size} values differ"
    if diff.max() > tol and not same:
        detail += (f"; cv2.warpAffine's bilinear rounding changed in OpenCV {ours_major}.x "
                   f"(the fixture used {fixture_opencv}; rsn_tf pins opencv-python-headless<5)")
    return Check(name, float(diff.max()), tol, unit="levels (0..255)", source=src, detail=detail)


def target_checks(prefix: str, heatmaps, weights, ref_heatmaps, ref_weights) -> list[Check]:
    """heatmaps [N, L, h, w, K] vs mmpose's (N, L, K, h, w); weights [N, K] (or [N, L, K]) vs (N, L, K)."""
    ref_h = np.asarray(ref_heatmaps).transpose(0, 1, 3, 4, 2)
    checks = []
    if heatmaps.shape != ref_h.shape:
        return [Check(f"{prefix}heatmaps", float("inf"), 0.0, passed=False,
                      detail=f"shape {tuple(heatmaps.shape)} vs mmpose {tuple(ref_h.shape)} (NHWC)")]
    d = np.abs(heatmaps.astype(np.float64) - ref_h)
    detail = f"maps up to {float(ref_h.max()):.1f}"
    if d.max() > 0:
        n, level, y, x, k = np.unravel_index(int(d.argmax()), d.shape)
        detail += f"; worst at person {n} level {level} keypoint {k} (y {y}, x {x})"
    checks.append(Check(f"{prefix}heatmaps", float(d.max()), HEATMAP_TOL, unit="abs (0..255)",
                        source="MegviiHeatmap.encode rules", detail=detail))
    ref_w = np.asarray(ref_weights, np.float64)
    ours_w = np.asarray(weights, np.float64)
    if ours_w.ndim == 2:
        ours_w = np.repeat(ours_w[:, None], ref_w.shape[1], axis=1)
    wd = _max_abs(ours_w, ref_w)
    checks.append(Check(f"{prefix}keypoint_weights", wd, 0.0, unit="abs", source="identical",
                        detail=f"{int((ref_w > 0).sum())} of {ref_w.size} weights > 0"))
    return checks


def check(fixture: Fixture, data_dir: str | None = None) -> list[Check]:
    settings = pipeline_settings(fixture)
    files = [settings["ann_file"]] + [p["img_file"] for p in settings["people"]]
    data_files(fixture, data_dir, files)  # every named file exists, before any long work
    ours = run_rsn_tf_pipeline(settings, data_dir)
    found = ours["found"]
    checks = [Check("instances", float((~found).sum()), 0.0, unit="people missing",
                    source="rsn_tf's COCO reader keeps mmpose's people",
                    detail=f"{int(found.sum())} of {len(found)} fixture people found "
                           f"({len(ours['kept_ann_ids'])} kept by rsn_tf)")]
    if not found.any():
        return checks
    sel = np.flatnonzero(found)
    ref = {k: fixture.get(k)[sel] for k in ("bbox_xyxy", "bbox_center", "bbox_scale", "warp_mat", "crop_hwc_bgr",
                                             "transformed_keypoints", "input_normalised", "heatmaps",
                                             "keypoint_weights", "keypoints_visible")}
    checks.append(Check("bbox_xyxy", _max_abs(ours["bbox_xyxy"], ref["bbox_xyxy"]), 0.0, unit="px",
                        source="exact: mmpose's clip rule in float32"))
    cs = max(_max_abs(ours["center"], ref["bbox_center"]), _max_abs(ours["scale"], ref["bbox_scale"]))
    checks.append(Check("center_scale", cs, 0.0, unit="px", source="exact: float32 arithmetic"))
    checks.append(Check("warp_mat", _max_abs(ours["warp_mat"], ref["warp_mat"]), 0.0, unit="abs",
                        source="exact: mmpose's point construction"))
    checks.append(crop_check("crop", ours["crop"], ref["crop_hwc_bgr"], settings["opencv"]))
    # Keypoints with any visibility (mmpose transforms invisible (0, 0) ones too, far outside the crop).
    kd = np.abs(ours["keypoints"].astype(np.float64) - ref["transformed_keypoints"])
    checks.append(Check("keypoints", float(kd.max()), KEYPOINT_TOL_PX, unit="px", source="cv2.transform, float32"))
    ref_in = ref["input_normalised"].transpose(0, 2, 3, 1)
    checks.append(Check("input_normalised", _max_abs(ours["inputs"], ref_in), INPUT_TOL, unit="abs",
                        source="end to end: rsn_tf crop + normalisation",
                        detail=f"range {float(ref_in.min()):.2f}..{float(ref_in.max()):.2f}"))
    checks += target_checks("", ours["heatmaps"], ours["weights"], ref["heatmaps"], ref["keypoint_weights"])
    checks.append(crop_check("eval.crop", ours["eval_crop"], ref["crop_hwc_bgr"], settings["opencv"]))
    checks += target_checks("eval.", ours["eval_heatmaps"], ours["eval_weights"], ref["heatmaps"],
                            ref["keypoint_weights"])
    return checks
