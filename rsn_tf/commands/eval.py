"""rsn eval: top-down evaluation on a COCO-format keypoint set (OKS AP) or MPII (PCKh)."""
from __future__ import annotations

HELP = "evaluate a model: COCO OKS AP (pycocotools) with GT boxes or a detection file, or MPII PCKh"


def add_estimator_arguments(p):
    """Options shared by ``rsn eval`` and ``rsn infer``."""
    p.add_argument("--weights", required=True,
                   help="model: a .keras file (carries its config), a .weights.h5 with --config, an mmpose .pth "
                        "checkpoint (converted on the fly) or a named preset: mmpose/rsn18-coco, mmpose/rsn50-coco, "
                        "mmpose/2xrsn50-coco, mmpose/3xrsn50-coco (downloaded once into $RSN_TF_HOME)")
    p.add_argument("--config", default=None,
                   help="model config (YAML/JSON with ModelConfig fields, or a preset name such as rsn18); "
                        "optional for .keras files")
    p.add_argument("--recipe", choices=["authors", "mmpose"], default=None,
                   help="test recipe: decode, score rule and box padding of the authors or of mmpose (default: the "
                        "model's own: mmpose's for converted mmpose weights, the training loss mode's otherwise)")
    p.add_argument("--decode", choices=["authors", "mmpose"], default=None, help="override the recipe's decode")
    p.add_argument("--score-mode", choices=["authors", "mmpose"], default=None, help="override the recipe's score rule")
    p.add_argument("--no-flip", action="store_true", help="disable the flip test")
    p.add_argument("--batch-size", type=int, default=32, help="persons per network call (default 32)")
    p.add_argument("--keypoints", default=None, help="keypoint layout override: coco, mpii or a KeypointSpec JSON file")


def build_estimator(args):
    """The PoseEstimator of the shared options; prints the preset's mmpose accuracy and the recipe chosen."""
    import os

    from rsn_tf.inference.estimator import PoseEstimator
    from rsn_tf.io_utils import read_json
    from rsn_tf.weights import describe, load_model

    note = describe(args.weights)
    if note:
        print(note, flush=True)
    model = load_model(args.weights, args.config)
    kp = args.keypoints
    if kp is not None and os.path.exists(kp):
        kp = read_json(kp, "keypoint spec file")
    est = PoseEstimator(model, flip_test=not args.no_flip, decode_mode=args.decode, score_mode=args.score_mode,
                        batch_size=args.batch_size, keypoints=kp, recipe=args.recipe)
    print(f"test recipe: {est.recipe.name} ({est.recipe_source})", flush=True)
    return est


def add_arguments(p):
    add_estimator_arguments(p)
    p.add_argument("--ann", required=True, help="annotation file: COCO keypoint format, or MPII list format")
    p.add_argument("--images", required=True, help="folder of the annotated images")
    p.add_argument("--boxes", default="gt", help="person boxes: 'gt' or a detection file in COCO results format")
    p.add_argument("--det-threshold", type=float, default=0.0, help="minimum detection score (default 0: all, as the authors)")
    p.add_argument("--format", choices=["auto", "coco", "mpii"], default="auto", help="annotation format (default: detect)")
    p.add_argument("--oks-nms", action="store_true", help="apply OKS-NMS (threshold 0.9) per image (off, as the references)")
    p.add_argument("--sigmas", default=None, help="OKS sigmas s1,s2,... for a keypoint set that is not COCO's")
    p.add_argument("--overlays", type=int, default=0, help="also draw this many images into OUT/overlays")
    p.add_argument("--out", required=True, help="output folder: results.json, metrics.json")


def run(args) -> int:
    import os

    from rsn_tf.evaluation.runner import annotation_format, evaluate_coco, evaluate_mpii

    fmt = annotation_format(args.ann) if args.format == "auto" else args.format
    est = build_estimator(args)
    if fmt == "mpii":
        evaluate_mpii(est, args.ann, args.images, out_dir=args.out)
    else:
        sigmas = None if args.sigmas is None else [float(s) for s in args.sigmas.split(",")]
        evaluate_coco(est, args.ann, args.images, boxes=args.boxes, score_threshold=args.det_threshold,
                      out_dir=args.out, use_nms=args.oks_nms, sigmas=sigmas, num_overlays=args.overlays)
    print(f"wrote {os.path.join(args.out, 'results.json')} and metrics.json", flush=True)
    return 0
