"""rsn export: a trained model -> SavedModel / TFLite fp32, fp16, int8 / ONNX, each validated, plus the agreement report."""
from __future__ import annotations

import os

HELP = "export a model to SavedModel, TFLite (fp32/fp16/int8) and ONNX, validate each, write the agreement report"

DEFAULT_CHECK_COCO = os.path.join("..", "shared", "data", "coco_sample", "test_coco.json")


def add_arguments(p):
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument("--weights", help="trained model (.keras)")
    g.add_argument("--preset", help="export a preset with random weights instead (speed work; keypoints mean nothing)")
    p.add_argument("--input", default=None, help="with --preset: input size HxW (default 256x192)")
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument("--formats", default="all",
                   help="'all' or a comma list of saved_model,tflite_fp32,tflite_fp16,tflite_int8,onnx")
    p.add_argument("--calib-coco", default=None, help="int8 calibration from a COCO keypoints json (a user's dataset)")
    p.add_argument("--calib-images", default=None, help="image folder of --calib-coco (default: beside the json)")
    p.add_argument("--calib-synth", default=None, help="int8 calibration from a synthetic set written by 'rsn synth'")
    p.add_argument("--calib-count", type=int, default=64, help="representative crops for int8 (default 64)")
    p.add_argument("--check-coco", default=DEFAULT_CHECK_COCO,
                   help="real crops for the agreement report: a COCO keypoints json ('none' to skip; default "
                        "../shared/data/coco_sample/test_coco.json when present)")
    p.add_argument("--check-synth", type=int, default=16,
                   help="synthetic images (seed 1000, unseen by calibration) for the agreement report (0 = none)")
    p.add_argument("--input-order", choices=("bgr", "rgb"), default="bgr",
                   help="channel order of the SavedModel's uint8 input (default bgr, as OpenCV reads images)")
    p.add_argument("--decode-kernel", type=int, default=5, help="decode blur kernel (5 COCO, 9 MPII)")
    p.add_argument("--opset", type=int, default=17, help="ONNX opset (>= 13)")


def run(args) -> int:
    from rsn_tf.export.crops import coco_crops, synthetic_crops
    from rsn_tf.export.exporter import export_and_report, load_model, parse_formats

    formats = parse_formats(args.formats)
    model = load_model(args.weights, args.preset, args.input)
    cfg = model.rsn_config
    if args.calib_coco:
        calibration, source = coco_crops(args.calib_coco, cfg, args.calib_images, args.calib_count), args.calib_coco
    elif args.calib_synth:
        calibration, source = synthetic_crops(cfg, root=args.calib_synth, limit=args.calib_count), args.calib_synth
    else:
        n_images = max(4, args.calib_count // 2)
        calibration = synthetic_crops(cfg, num_images=n_images, seed=0, limit=args.calib_count)
        source = f"synthetic set, seed 0, {n_images} images"
    checks = {}
    if args.check_coco and args.check_coco != "none":
        if os.path.exists(args.check_coco):
            checks["coco (real)"] = coco_crops(args.check_coco, cfg)
        elif args.check_coco != DEFAULT_CHECK_COCO:
            raise FileNotFoundError(f"--check-coco: {args.check_coco} not found")
    if args.check_synth > 0:
        checks["synthetic"] = synthetic_crops(cfg, num_images=args.check_synth, seed=1000)
    extra = {"weights": args.weights or f"{args.preset} with random weights (untrained)",
             "calibration": f"{len(calibration)} crops from {source}"}
    manifest, report = export_and_report(model, args.out, formats, calibration, checks, args.decode_kernel,
                                         args.opset, args.input_order, extra=extra)
    print(f"wrote {len(manifest['formats'])} formats to {args.out} (manifest.json"
          f"{', agreement.json/.md' if report else ''})")
    if report is not None and not report["all_targets_met"]:
        print("note: some agreement targets are not met; see agreement.md")
    return 0
