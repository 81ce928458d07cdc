"""rsn complexity: parameters and MACs of the presets, beside the paper's reported GFLOPs."""
from __future__ import annotations

import dataclasses
import json

HELP = "print parameters and MACs of a preset (or --all), with the paper's reported GFLOPs"


def add_arguments(p):
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument("--preset", help="preset name, e.g. rsn18, 2xrsn50, 4xrsn50_paper")
    g.add_argument("--all", action="store_true", help="every preset (each row is printed as soon as it is counted)")
    p.add_argument("--input", default=None,
                   help="input size HxW (height x width; default: the preset's, 256x192); 256x256 = MPII, 16 keypoints")
    p.add_argument("--json", action="store_true", help="one JSON object per preset instead of a table")


def run(args) -> int:
    from rsn_tf.commands.common import parse_hw
    from rsn_tf.complexity import TABLE_HEADER, TABLE_NOTE, all_presets, format_row, preset_complexity
    from rsn_tf.model.config import preset_config

    names = all_presets() if args.all else [args.preset]
    size = None if args.input is None else "x".join(str(v) for v in parse_hw(args.input))
    for name in names:  # every name and size checked before the first (slow) build
        preset_config(name, size)
    if not args.json:
        print("\n".join(TABLE_HEADER), flush=True)
    for name in names:  # each row as soon as it is counted (--all builds 13 networks)
        r = preset_complexity(name, size)
        if args.json:
            print(json.dumps({**dataclasses.asdict(r), "gmacs": round(r.gmacs, 4)}), flush=True)
        else:
            print(format_row(r), flush=True)
    if not args.json:
        print("\n" + TABLE_NOTE, flush=True)
    return 0
