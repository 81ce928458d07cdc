"""rsn eval: top-down evaluation on a COCO-format keypoint set (OKS AP) or MPII (PCKh)."""
from __future__ import annotations

from rsn_tf.commands.common import add_estimator_arguments, build_estimator  # noqa: F401  (used by run)

HELP = "evaluate a model: COCO OKS AP (pycocotools) with GT boxes or a detection file, or MPII PCKh"


def add_arguments(p):
    add_estimator_arguments(p)
    p.add_argument("--ann", required=True, help="annotation file: COCO keypoint format, or MPII list format")
    p.add_argument("--images", required=True, help="folder of the annotated images")
    p.add_argument("--boxes", default="gt", help="person boxes: 'gt' or a detection file in COCO results format")
    p.add_argument("--det-threshold", type=float, default=0.0, help="minimum detection score (default 0: all, as the authors)")
    p.add_argument("--format", choices=["auto", "coco", "mpii"], default="auto", help="annotation format (default: detect)")
    p.add_argument("--oks-nms", action="store_true", help="apply OKS-NMS (threshold 0.9) per image (off, as the references)")
    p.add_argument("--sigmas", default=None, help="OKS sigmas s1,s2,... for a keypoint set that is not COCO's")
    p.add_argument("--overlays", type=int, default=0,
                   help="also draw this many images (predictions over the ground truth) into OUT/overlays")
    p.add_argument("--out", required=True, help="output folder: results.json, metrics.json, metrics.md")


def _sigmas(text):
    if text is None:
        return None
    try:
        values = [float(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise ValueError(f"--sigmas {text!r}: expected comma-separated numbers, e.g. 0.026,0.025,...") from None
    if not values or any(not v > 0 for v in values):
        raise ValueError(f"--sigmas {text!r}: every OKS sigma must be a positive number")
    return values


def run(args) -> int:
    import os

    from rsn_tf.commands.common import check_estimator_arguments, check_out_dir, print_model_card
    from rsn_tf.evaluation.runner import (annotation_format, check_coco_inputs, check_mpii_inputs, evaluate_coco,
                                          evaluate_mpii)

    # every input is read and checked before the model is loaded (and long before the network runs)
    check_estimator_arguments(args)
    check_out_dir(args.out)
    if args.overlays < 0:
        raise ValueError(f"--overlays must be >= 0 (got {args.overlays})")
    if not os.path.isdir(args.images):
        raise FileNotFoundError(f"--images: folder not found: {args.images}")
    sigmas = _sigmas(args.sigmas)
    fmt = annotation_format(args.ann) if args.format == "auto" else args.format
    if fmt == "mpii":
        if args.boxes != "gt" or sigmas is not None:
            raise ValueError("an MPII file is evaluated on its own person regions with PCKh: --boxes and --sigmas "
                             "do not apply")
        inputs = check_mpii_inputs(args.ann, args.images)
    else:
        inputs = check_coco_inputs(args.ann, args.images, args.boxes, args.det_threshold, sigmas)
    earlier = [f for f in ("results.json", "metrics.json", "metrics.md") if os.path.exists(os.path.join(args.out, f))]
    est = build_estimator(args)
    print_model_card(est)
    if fmt == "mpii":
        evaluate_mpii(est, inputs, args.images, out_dir=args.out, num_overlays=args.overlays)
    else:
        evaluate_coco(est, inputs, args.images, out_dir=args.out, use_nms=args.oks_nms, num_overlays=args.overlays)
    print(f"wrote {os.path.join(args.out, 'results.json')}, metrics.json and metrics.md"
          + (" and overlays/" if args.overlays else ""), flush=True)
    if earlier:
        print(f"replaced {', '.join(earlier)} of an earlier run in {args.out}", flush=True)
    return 0
