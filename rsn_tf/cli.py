"""``rsn`` console script: a thin dispatcher over :mod:`rsn_tf.commands`.

Each subcommand lives in ``rsn_tf/commands/<name>.py`` with ``HELP`` (one line),
``add_arguments(parser)`` and ``run(args) -> int``. Modules are imported only when their command is
used, so ``rsn --help`` stays fast and a command's heavy imports do not slow the others.
"""
from __future__ import annotations

import argparse
import importlib
import os
import sys

# name -> module. Order is the order shown in --help.
COMMANDS = {
    "demo": "rsn_tf.commands.demo",
    "complexity": "rsn_tf.commands.complexity",
    "synth": "rsn_tf.commands.synth",
    "train": "rsn_tf.commands.train",
    "convert-mmpose": "rsn_tf.commands.convert_mmpose",
    "infer": "rsn_tf.commands.infer",
    "eval": "rsn_tf.commands.eval",
    "export": "rsn_tf.commands.export",
    "bench": "rsn_tf.commands.bench",
    "synth-video": "rsn_tf.commands.synth_video",
    "video": "rsn_tf.commands.video",
}


def _quiet_tf():
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="rsn", description="Residual Steps Network (RSN) pose estimation in TF/Keras.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, module_name in COMMANDS.items():
        module = importlib.import_module(module_name)
        p = sub.add_parser(name, help=module.HELP, description=module.HELP)
        module.add_arguments(p)
        p.set_defaults(_run=module.run)
    return parser


def main(argv=None) -> int:
    _quiet_tf()
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "_run", None):
        parser.print_help()
        return 2
    try:
        return int(args._run(args) or 0)
    except (ValueError, FileNotFoundError, KeyError) as e:
        # Library code raises these with messages that name the file/field; show them plainly.
        print(f"rsn {args.command}: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
