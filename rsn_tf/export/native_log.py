"""Keep two native libraries' known chatter out of a user's terminal, and nothing else.

Both write straight to the process's stderr (file descriptor 2), where no Python logger or
``TF_CPP_MIN_LOG_LEVEL`` reaches them:

- TensorFlow's TFLite quantiser prints ``fully_quantize: 0, inference_type: 6, input_inference_type: FLOAT32,
  output_inference_type: FLOAT32`` with ``llvm::dbgs()`` (plain stderr in release builds) on every int8
  conversion.
- LiteRT's minimal logger prints ``INFO: Created TensorFlow Lite XNNPACK delegate for CPU.`` when the first
  XNNPACK interpreter of a process is built (ai-edge-litert 2.3 offers no setting for its log level).
- (:data:`TF_STARTUP`) TensorFlow's oneDNN note at ``import tensorflow`` (``rsn_tf.cli``).

:func:`without_native_chatter` sends fd 2 to a temporary file for the length of one such call, then writes
back every line except exactly these; if the call raises, everything is written back.
"""
from __future__ import annotations

import contextlib
import os
import re
import sys
import tempfile

#: TensorFlow's own start-up lines that ``TF_CPP_MIN_LOG_LEVEL`` does not reach (absl prints them before
#: its logging is initialised): the absl notice and oneDNN's "custom operations are on" (TF 2.21 prints
#: the pair twice while ``import tensorflow`` runs, with oneDNN on). The CLI drops them at that import.
TF_STARTUP = (
    re.compile(r"WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR"),
    re.compile(r"I\d{4} [\d:.]+ +\d+ port\.cc:\d+\] oneDNN custom operations are on\. .*"),
)

#: The lines dropped (full-line matches).
CHATTER = (
    re.compile(r"fully_quantize: \d+, inference_type: \d+, input_inference_type: \w+, output_inference_type: \w+"),
    re.compile(r"INFO: Created TensorFlow Lite XNNPACK delegate for CPU\."),
)


@contextlib.contextmanager
def without_native_chatter(patterns=CHATTER):
    """Run the block with fd 2 captured; afterwards replay it without the lines ``patterns`` match in full
    (all of it if the block raised). Output of other threads during the block is delayed, not lost."""
    fd = 2  # where native code writes
    _flush()
    saved = os.dup(fd)
    failed = True
    with tempfile.TemporaryFile() as capture:
        os.dup2(capture.fileno(), fd)
        try:
            yield
            failed = False
        finally:
            _flush()
            os.dup2(saved, fd)
            os.close(saved)
            capture.seek(0)
            lines = capture.read().decode("utf-8", errors="replace").splitlines(keepends=True)
            keep = lines if failed else [line for line in lines
                                         if not any(p.fullmatch(line.rstrip("\r\n")) for p in patterns)]
            if keep:
                os.write(fd, "".join(keep).encode("utf-8", errors="replace"))


def _flush():
    for stream in (sys.stdout, sys.stderr, sys.__stderr__):
        try:
            if stream is not None:
                stream.flush()
        except (OSError, ValueError):
            pass
