"""Check rsn_tf against a fixture made with the real mmpose code.

Usage: python scripts/mmpose_parity.py FIXTURE.npz [--data DIR] [--json OUT.json] [--graph]

Prints one line per check (worst figure, tolerance and its source) and ends with ``parity: PASS``
or ``parity: FAIL <what>``; the exit status is 0 only on PASS. The fixture kinds and what each
compares are listed in ``rsn_tf/parity/__init__.py``.
"""
from __future__ import annotations

import argparse
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# The shared fixtures were made from this folder; other fixtures name their own data: pass --data.
DEFAULT_DATA = os.path.normpath(os.path.join(REPO, "..", "shared", "data", "coco_sample"))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("fixture", help="NAME.npz (or NAME.json) of a fixture pair")
    p.add_argument("--data", default=DEFAULT_DATA,
                   help="folder with the images and annotation/detection files the manifest names by file name "
                        "(default: ../shared/data/coco_sample beside the repository, the shared fixtures' data)")
    p.add_argument("--json", default=None, help="also write the checks as JSON here")
    p.add_argument("--graph", action="store_true",
                   help="train fixtures: run the float32 steps as the traced tf.function (slower to start)")
    args = p.parse_args(argv)

    from rsn_tf.io_utils import write_json
    from rsn_tf.parity import run_fixture

    if args.graph:
        import rsn_tf.parity.train

        rsn_tf.parity.train.RUN_GRAPH = True

    try:
        report = run_fixture(args.fixture, args.data, log=lambda line: print(line, flush=True))
    except (ValueError, FileNotFoundError, KeyError) as e:
        print(f"mmpose_parity: error: {e}", file=sys.stderr)
        print("parity: FAIL could not run")
        return 2
    print(report.summary())
    if args.json:
        write_json(args.json, report.to_dict())
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
