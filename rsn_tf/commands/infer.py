"""rsn infer: poses on plain images -> poses.json and overlay pictures."""
from __future__ import annotations

from rsn_tf.commands.eval import add_estimator_arguments, build_estimator

HELP = "run top-down pose estimation on images: writes poses.json and overlay PNGs"


def add_arguments(p):
    add_estimator_arguments(p)
    p.add_argument("images", nargs="+", help="image files or folders")
    p.add_argument("--boxes", default="auto",
                   help="person boxes: 'auto' (default: the person detector when the detector extra is installed, "
                        "else 'full-image'), 'full-image' (one box = the whole image; for single-person photos), "
                        "'detector' (optional SSDLite person detector), or a JSON {file name: [[x,y,w,h(,score)],...]}")
    p.add_argument("--det-threshold", type=float, default=0.5, help="detector score threshold (default 0.5)")
    p.add_argument("--out", required=True, help="output folder")


def run(args) -> int:
    from rsn_tf.inference.infer import infer_images

    est = build_estimator(args)
    out = infer_images(est, args.images, args.out, boxes=args.boxes, det_threshold=args.det_threshold)
    if out.get("note"):
        print(out["note"], flush=True)
    print(f"wrote {out['poses']} and {len(out['overlays'])} overlays", flush=True)
    return 0
