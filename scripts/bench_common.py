"""What every side-by-side benchmark script shares; standard library only, so that mmpose's own Python
(``scripts/mmpose_bench_worker.py``) can import it as well as rsn_tf's."""
from __future__ import annotations

import os


def pin_cores(cores: int) -> list[int]:
    """Pin this process to its first ``cores`` allowed CPUs and size the BLAS/OpenMP pools to match
    (before numpy, torch or TensorFlow start their thread pools); returns the CPU ids."""
    cpus = sorted(os.sched_getaffinity(0))[:cores]
    os.sched_setaffinity(0, cpus)
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[var] = str(cores)
    return cpus


def serve_timed_steps(step, commands=None) -> None:
    """A benchmark worker's command loop over stdin, one JSON line answered per command line:
    ``run N`` -> ``{"step_s": [seconds of each of N calls of step()]}``; a word in ``commands``
    (``{"profile": fn(arg) -> dict}``) -> ``fn``'s result; ``quit`` or end of input stops."""
    import json
    import sys
    import time

    for line in sys.stdin:
        cmd = line.split()
        if not cmd or cmd[0] == "quit":
            break
        if commands and cmd[0] in commands:
            print(json.dumps(commands[cmd[0]](*cmd[1:])), flush=True)
            continue
        times = []
        for _ in range(int(cmd[1])):
            t0 = time.perf_counter()
            step()
            times.append(time.perf_counter() - t0)
        print(json.dumps({"step_s": times}), flush=True)
