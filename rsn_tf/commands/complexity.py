"""rsn complexity: parameters and MACs of the presets, beside the paper's reported GFLOPs."""
from __future__ import annotations

import dataclasses
import json

HELP = "print parameters and MACs of a preset (or --all), with the paper's reported GFLOPs"


def add_arguments(p):
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument("--preset", help="preset name, e.g. rsn18, 2xrsn50, 4xrsn50_paper")
    g.add_argument("--all", action="store_true", help="every preset")
    p.add_argument("--input", default=None, help="input size HxW (default: the preset's, 256x192); 256x256 = MPII, 16 keypoints")
    p.add_argument("--json", action="store_true", help="one JSON object per preset instead of a table")


def run(args) -> int:
    from rsn_tf.complexity import all_presets, format_table, preset_complexity

    names = all_presets() if args.all else [args.preset]
    rows = []
    for name in names:
        r = preset_complexity(name, args.input)
        rows.append(r)
        if args.json:
            print(json.dumps({**dataclasses.asdict(r), "gmacs": round(r.gmacs, 4)}), flush=True)
    if not args.json:
        print(format_table(rows))
    return 0
