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
