"""rsn export: a trained model -> SavedModel / TFLite fp32, fp16, int8 / ONNX, each validated, plus the agreement report."""
from __future__ import annotations

import os

HELP = "export a model to SavedModel, TFLite (fp32/fp16/int8) and ONNX, validate each, write the agreement report"


def add_arguments(p):
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument("--weights", help="trained model (.keras)")
    g.add_argument("--preset", help="export a preset with random weights instead (speed work; keypoints mean nothing)")
    p.add_argument("--input", default=None, help="with --preset: input size HxW (default 256x192)")
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument("--formats", default="all",
                   help="'all' or a comma list of saved_model,tflite_fp32,tflite_fp16,tflite_int8,onnx "
                        "(and, only when named: tflite_int8_io = int8 input/output tensors, "
                        "onnx_int8 = onnxruntime QDQ int8)")
    p.add_argument("--calib-coco", default=None, help="int8 calibration from a COCO keypoints json (a user's dataset)")
    p.add_argument("--calib-images", default=None, help="image folder of --calib-coco (default: beside the json)")
    p.add_argument("--calib-synth", default=None, help="int8 calibration from a synthetic set written by 'rsn synth'")
    p.add_argument("--calib-count", type=int, default=64, help="representative crops for int8 (default 64)")
    p.add_argument("--check-coco", default=None,
                   help="real crops for the agreement report: a COCO keypoints json with its images beside it "
                        "(default: none, synthetic crops only)")
    p.add_argument("--check-synth", type=int, default=16,
                   help="synthetic images (seed 1000, unseen by calibration) for the agreement report (0 = none)")
    p.add_argument("--input-order", choices=("bgr", "rgb"), default="bgr",
                   help="channel order of the SavedModel's uint8 input (default bgr, as OpenCV reads images)")
    p.add_argument("--decode-kernel", type=int, default=5, help="decode blur kernel (5 COCO, 9 MPII)")
    p.add_argument("--opset", type=int, default=17, help="ONNX opset (>= 13)")


def run(args) -> int:
    from rsn_tf.export.exporter import export_with_crops, load_model, parse_formats

    formats = parse_formats(args.formats)
    check_coco = None if args.check_coco in (None, "", "none") else args.check_coco
    if check_coco and not os.path.exists(check_coco):
        raise FileNotFoundError(f"--check-coco: {check_coco} not found")
    model = load_model(args.weights, args.preset, args.input)
    note = args.weights or f"{args.preset} with random weights (untrained)"
    manifest, report = export_with_crops(
        model, args.out, formats, args.calib_coco, args.calib_images, args.calib_synth, args.calib_count,
        check_coco, args.check_synth, args.decode_kernel, args.opset, args.input_order, note)
    print(f"wrote {len(manifest['formats'])} formats to {args.out} (manifest.json"
          f"{', agreement.json/.md' if report else ''})")
    if report is not None and not report["all_targets_met"]:
        print("note: some agreement targets are not met; see agreement.md")
    return 0
