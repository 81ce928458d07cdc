"""rsn demo: the main job on the built-in default (no data needed)."""
from __future__ import annotations

HELP = "run the main job on built-in defaults (complexity, synthetic data, training, evaluation) into --out"


def add_arguments(p):
    p.add_argument("--out", default="runs/demo", help="output directory (default: runs/demo)")
    p.add_argument("--presets", default=None, help="comma-separated presets for the complexity table (default: all)")
    p.add_argument("--images", type=int, default=400, help="synthetic images to generate (default: 400)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="training config override, e.g. --set train.epochs=5 (repeatable)")


def run(args) -> int:
    from rsn_tf.demo import run_demo

    presets = args.presets.split(",") if args.presets else None
    run_demo(args.out, presets, num_images=args.images, seed=args.seed, train_overrides=args.overrides)
    print(f"results in {args.out}/ (summary.md)")
    return 0
