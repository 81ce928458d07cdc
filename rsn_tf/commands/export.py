"""rsn export: a trained model -> SavedModel / TFLite fp32, fp16, int8 / ONNX, each validated, plus the agreement report."""
from __future__ import annotations

HELP = "export a model to SavedModel, TFLite (fp32/fp16/int8) and ONNX, validate each, write the agreement report"


def add_arguments(p):
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument("--weights", help="model: .keras, .weights.h5, an mmpose .pth or a named preset (mmpose/rsn18-coco)")
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
    p.add_argument("--recipe", choices=("authors", "mmpose"), default=None,
                   help="test recipe of the SavedModel's in-graph decode and the agreement report (default: the "
                        "model's own: mmpose for converted mmpose weights, else its training mode's)")
    p.add_argument("--decode-kernel", type=int, default=None,
                   help="decode blur kernel (default: the model's keypoint layout's, 9 for MPII, 5 otherwise)")
    p.add_argument("--opset", type=int, default=17, help="ONNX opset (>= 13)")


def run(args) -> int:
    from rsn_tf.export.core import ExportConfig

    check_coco = None if args.check_coco in (None, "", "none") else args.check_coco
    config = ExportConfig(
        formats=args.formats, recipe=args.recipe, decode_kernel=args.decode_kernel, opset=args.opset,
        input_order=args.input_order, calib_coco=args.calib_coco, calib_images=args.calib_images,
        calib_synth=args.calib_synth, calib_count=args.calib_count, check_coco=check_coco,
        check_synth=args.check_synth, weights_note=args.weights or f"{args.preset} with random weights (untrained)")
    config.check_inputs()  # files and installed runtimes, before the model loads
    from rsn_tf.export.exporter import export_with_crops

    if args.weights:
        from rsn_tf.weights import load_model  # .keras, weights + config, .pth, presets
        model = load_model(args.weights)  # export_with_crops checks it is an RSNModel before any work
    else:
        from rsn_tf.model import build_rsn
        model = build_rsn(args.preset, input_size=args.input, metadata={"weights": "random (untrained)"})
    manifest, report = export_with_crops(model, args.out, config)
    print(f"wrote {len(manifest['formats'])} formats to {args.out} (manifest.json"
          f"{', agreement.json/.md' if report else ''}; decode: recipe {manifest['decode']['recipe']}, "
          f"kernel {manifest['decode']['kernel']})")
    if report is not None and not report["all_targets_met"]:
        print("note: some agreement targets are not met; see agreement.md")
    return 0
