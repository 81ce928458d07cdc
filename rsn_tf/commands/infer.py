"""rsn infer: poses on plain images -> poses.json and overlay pictures."""
from __future__ import annotations

from rsn_tf.commands.common import add_estimator_arguments, build_estimator

HELP = "run top-down pose estimation on images: writes poses.json and overlay PNGs"


def add_arguments(p):
    add_estimator_arguments(p)
    p.add_argument("images", nargs="+", help="image files or folders")
    p.add_argument("--boxes", default="auto",
                   help="person boxes: 'auto' (default: the person detector when the detector extra is installed, "
                        "else 'full-image'), 'full-image' (one box = the whole image; for single-person photos), "
                        "'detector' (optional SSDLite person detector), or a JSON {file name: [[x,y,w,h(,score)],...]}")
    p.add_argument("--det-threshold", type=float, default=0.5, help="detector score threshold (default 0.5)")
    p.add_argument("--orientation", choices=["exif", "stored"], default="exif",
                   help="'exif' (default): turn photos upright as their EXIF tag says, as viewers show them "
                        "(keypoints are then in that upright frame); 'stored': the pixels as stored, the frame "
                        "dataset annotations use")
    p.add_argument("--out", required=True, help="output folder")


def run(args) -> int:
    from rsn_tf.commands.common import check_estimator_arguments, check_out_dir, print_model_card
    from rsn_tf.inference.infer import check_infer_inputs, infer_images

    # every input is listed and checked before the model is loaded
    check_estimator_arguments(args)
    check_out_dir(args.out)
    if args.boxes == "detector":
        from rsn_tf.inference.boxes import detector_graph_path
        detector_graph_path()  # the optional detector is installed (else the install line)
    inputs = check_infer_inputs(args.images, args.boxes)
    est = build_estimator(args)
    print_model_card(est)
    out = infer_images(est, inputs, args.out, det_threshold=args.det_threshold, orientation=args.orientation)
    if out["note"]:
        print(out["note"], flush=True)
    n = len(out["overlays"])
    print(f"wrote {out['poses']} and {n} overlay{'s' if n != 1 else ''}"
          + (f" ({len(out['skipped'])} unreadable file(s) skipped, listed in poses.json)" if out["skipped"] else ""),
          flush=True)
    if out["replaced"]:
        print(f"replaced {len(out['replaced'])} file(s) of an earlier run in {args.out}", flush=True)
    return 0
