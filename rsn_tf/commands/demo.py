"""rsn demo: the main job on the built-in default (no data needed)."""
from __future__ import annotations

HELP = "run the main job on built-in defaults and write its results to --out"


def add_arguments(p):
    p.add_argument("--out", default="runs/demo", help="output directory (default: runs/demo)")
    p.add_argument("--presets", default=None, help="comma-separated presets for the complexity table (default: all)")


def run(args) -> int:
    from rsn_tf.demo import run_demo

    presets = args.presets.split(",") if args.presets else None
    written = run_demo(args.out, presets)
    print("wrote:\n" + "\n".join(f"  {v}" for v in written.values()))
    return 0
