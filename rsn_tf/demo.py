"""The README's main job on a built-in default: everything runs on a fresh machine with no data.

Current steps: build every preset, write the complexity table (markdown + JSON) and the RSN-18
layer summary.
"""
from __future__ import annotations

import dataclasses
import os

from rsn_tf import io_utils


def run_demo(out_dir: str, presets: list[str] | None = None) -> dict:
    """Run the demo into ``out_dir``; returns a dict of the files written."""
    import keras

    from rsn_tf.complexity import all_presets, format_table, preset_complexity
    from rsn_tf.model import build_rsn

    os.makedirs(out_dir, exist_ok=True)
    written = {}
    rows = []
    for name in presets or all_presets():
        r = preset_complexity(name)
        rows.append(r)
        print(f"  {r.preset:<14} {r.params / 1e6:8.3f} M params {r.gmacs:7.3f} GMACs", flush=True)
    table = format_table(rows)
    print(table)
    written["complexity_md"] = io_utils.write_text(os.path.join(out_dir, "complexity.md"), table + "\n")
    written["complexity_json"] = io_utils.write_json(
        os.path.join(out_dir, "complexity.json"), [dataclasses.asdict(r) for r in rows])

    keras.backend.clear_session()
    model = build_rsn("rsn18")
    lines: list[str] = []
    model.summary(print_fn=lambda s, **_: lines.append(s), line_length=140)
    written["summary"] = io_utils.write_text(os.path.join(out_dir, "rsn18_summary.txt"), "\n".join(lines) + "\n")
    return written
