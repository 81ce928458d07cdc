"""Training step, side by side: images/s of ``rsn train``'s step vs mmpose's ``train_step``, same CPU, same threads.

RSN-18 at 256x192, batch 32, float32, on a batch of the COCO sample (each framework's own pipeline):
rsn_tf builds the model, optimizer and loss as ``rsn train`` does for ``configs/rsn18_coco_256x192_mmpose.yaml``
(``RSNTrainer`` compiled with ``build_optimizer``; each step is ``train_on_batch``, the ``fit`` train
function); mmpose builds ``td-hm_rsn18_8xb32-210e_coco-256x192.py``'s ``TopdownPoseEstimator`` and
``OptimWrapper`` and calls ``model.train_step``. Both are pinned to the same ``--threads`` cores
(``sched_setaffinity``; TF intra/inter-op threads and ``torch.set_num_threads`` = that count), stay
loaded, and alternate blocks of ``--steps`` steps for ``--rounds`` rounds, so load changes hit both
alike; the table gives medians and the median of the per-round ratios. With ``--profile`` (default when
rsn_tf is slower) the TF profiler traces two rsn_tf steps and the table lists where the time goes.

    .venv/bin/python scripts/bench_training.py [--threads 1,2] [--rounds 4] [--steps 2] [--out DIR]
    .venv/bin/python scripts/bench_training.py --quick          # batch 4, 1 thread, 1 round (validation)
"""
from __future__ import annotations

import argparse
import collections
import glob
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED = os.path.normpath(os.path.join(REPO, "..", "shared"))
sys.path.insert(0, os.path.join(REPO, "scripts"))

from bench_common import pin_cores, serve_timed_steps  # noqa: E402
from bench_input_pipeline import cpu_model, repeated_coco  # noqa: E402


# ----------------------------------------------------------------------------------------- rsn_tf worker
def rsn_tf_worker(args) -> int:
    cpus = pin_cores(args.threads)
    import keras
    import numpy as np
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    tf.config.threading.set_inter_op_parallelism_threads(args.threads)
    from rsn_tf.data.pipeline import build_dataset
    from rsn_tf.model import build_rsn
    from rsn_tf.training.config import load_experiment
    from rsn_tf.training.optimizer import build_optimizer
    from rsn_tf.training.trainer import RSNTrainer

    exp = load_experiment(os.path.join(REPO, "configs", "rsn18_coco_256x192_mmpose.yaml"),
                          [f"train.batch_size={args.batch}", f"data.train_ann={args.ann}",
                           f"data.train_images={args.images}", "data.root=\"\"", f"model.preset={args.preset}"])
    model_cfg = exp.model_config()
    images, targets = next(iter(build_dataset(exp.data, model_cfg, "train", batch_size=args.batch, seed=0)))
    keras.mixed_precision.set_global_policy("float32")
    rsn = build_rsn(model_cfg)
    trainer = RSNTrainer(rsn, exp.train.loss)
    trainer.build()
    trainer.compile(optimizer=build_optimizer(exp.train, steps_per_epoch=1000), jit_compile=exp.train.jit_compile)
    t0 = time.perf_counter()
    trainer.train_on_batch(images, targets)
    first = time.perf_counter() - t0
    for _ in range(max(0, args.warmup - 1)):
        trainer.train_on_batch(images, targets)
    print(json.dumps({"ready": True, "framework": "rsn_tf", "threads": args.threads, "cores": cpus,
                      "first_step_s": first, "tensorflow": tf.__version__, "keras": keras.__version__,
                      "params": int(sum(np.prod(v.shape) for v in rsn.trainable_variables))}), flush=True)
    serve_timed_steps(lambda: trainer.train_on_batch(images, targets),
                      {"profile": lambda n: {"profile": profile_steps(trainer, images, targets, int(n))}})
    return 0


CONTAINER_EVENTS = {"Process", "RunGraph", "FunctionRun", "ExecutorState::Process", "PartitionedCall",
                    "StatefulPartitionedCall"}


def profile_steps(trainer, images, targets, steps: int) -> list:
    """TF profiler over ``steps`` steps: [(op type, ms per step, share)] of host op time, largest first."""
    import tensorflow as tf
    from tensorflow.tsl.profiler.protobuf import xplane_pb2

    logdir = tempfile.mkdtemp(prefix="rsn_tf_profile_")
    tf.profiler.experimental.start(logdir)
    t0 = time.perf_counter()
    for _ in range(steps):
        trainer.train_on_batch(images, targets)
    wall = time.perf_counter() - t0
    tf.profiler.experimental.stop()
    totals = collections.Counter()
    for path in glob.glob(os.path.join(logdir, "**", "*.xplane.pb"), recursive=True):
        space = xplane_pb2.XSpace()
        with open(path, "rb") as f:
            space.ParseFromString(f.read())
        for plane in space.planes:
            if not plane.name.startswith("/host:CPU"):
                continue
            names = {k: v.name for k, v in plane.event_metadata.items()}
            for line in plane.lines:
                if not line.name.startswith("tf_Compute") and "Executor" not in line.name and \
                        not line.name.startswith("tf_"):
                    continue
                for ev in line.events:
                    name = names.get(ev.metadata_id, "")
                    op = name.rsplit(":", 1)[1] if ":" in name else ""
                    if not op or op in CONTAINER_EVENTS or op.startswith("__"):
                        continue  # executor/function spans enclose the op events: count the ops only
                    totals[op] += ev.duration_ps / 1e9  # ms
    busy = sum(totals.values())
    rows = [(op, ms / steps, ms / busy if busy else 0.0) for op, ms in totals.most_common(14)]
    rows.append(("(all ops, summed over threads)", busy / steps, 1.0))
    rows.append(("(wall time per step)", wall * 1e3 / steps, float("nan")))
    return rows


# ----------------------------------------------------------------------------------------- orchestration
class Worker:
    """A benchmark process kept alive; ``run(n)`` times n steps in it."""

    def __init__(self, cmd, env=None):
        self.cmd = cmd
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     text=True, env=env, bufsize=1)
        self.info = self._read()

    def _read(self) -> dict:
        while True:
            line = self.proc.stdout.readline()
            if not line:
                err = self.proc.stderr.read()[-1500:]
                raise RuntimeError(f"benchmark worker {' '.join(self.cmd[:3])} ended: {err}")
            if line.startswith("{"):
                return json.loads(line)

    def ask(self, command: str) -> dict:
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()
        return self._read()

    def close(self):
        try:
            self.proc.stdin.write("quit\n")
            self.proc.stdin.flush()
            self.proc.wait(timeout=60)
        except (BrokenPipeError, subprocess.TimeoutExpired, OSError):
            self.proc.kill()


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0], epilog=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--threads", default="1,2")
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--preset", default="rsn18", help=argparse.SUPPRESS)
    p.add_argument("--rounds", type=int, default=4)
    p.add_argument("--steps", type=int, default=2, help="steps per block")
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--profile", choices=["auto", "yes", "no"], default="auto")
    p.add_argument("--data", default=os.path.join(SHARED, "data", "coco_sample"))
    p.add_argument("--mmpose-python", default=os.environ.get("MMPOSE_PYTHON", "/work/mmpose_venv/bin/python"))
    p.add_argument("--mmpose-tools", default=os.path.join(SHARED, "tools"))
    p.add_argument("--out", default=None, help="also write bench_training.{json,md} here")
    p.add_argument("--quick", action="store_true")
    p.add_argument("--worker", choices=["rsn_tf"], help=argparse.SUPPRESS)
    p.add_argument("--ann", help=argparse.SUPPRESS)
    p.add_argument("--images", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:
        args.threads = int(args.threads)
        return rsn_tf_worker(args)
    if args.quick:
        args.threads, args.batch, args.rounds, args.steps, args.warmup = "1", 4, 1, 1, 1
        args.profile = "no" if args.profile == "auto" else args.profile

    tmp = tempfile.TemporaryDirectory()
    ann = os.path.join(tmp.name, "repeated.json")
    repeated_coco(os.path.join(args.data, "test_coco.json"), ann, max(1, -(-args.batch // 12)))
    env = {**os.environ, "PYTHONPATH": REPO + os.pathsep + os.environ.get("PYTHONPATH", "")}
    have_mmpose = os.path.exists(args.mmpose_python)
    load_before = os.getloadavg()
    t_start = time.time()
    rows, record = [], {"threads": {}}
    for threads in (int(t) for t in args.threads.split(",")):
        common = ["--threads", str(threads), "--batch", str(args.batch), "--warmup", str(args.warmup)]
        workers = {"rsn_tf": Worker([sys.executable, os.path.abspath(__file__), "--worker", "rsn_tf", "--ann", ann,
                                     "--images", args.data, "--preset", args.preset] + common, env)}
        print(f"threads={threads}: rsn_tf ready (first step {workers['rsn_tf'].info['first_step_s']:.1f} s)",
              file=sys.stderr, flush=True)
        if have_mmpose:
            workers["mmpose"] = Worker([args.mmpose_python, os.path.join(REPO, "scripts", "mmpose_bench_worker.py"),
                                        "train", "--ann", ann, "--images", args.data, "--tools", args.mmpose_tools]
                                       + common)
            print(f"threads={threads}: mmpose ready", file=sys.stderr, flush=True)
        times = {name: [] for name in workers}
        for r in range(args.rounds):
            order = list(workers) if r % 2 == 0 else list(workers)[::-1]
            for name in order:
                res = workers[name].ask(f"run {args.steps}")
                times[name].append(statistics.median(res["step_s"]))
                print(f"threads={threads} round {r + 1}: {name} {args.batch / times[name][-1]:.2f} images/s",
                      file=sys.stderr, flush=True)
        ips = {name: args.batch / statistics.median(t) for name, t in times.items()}
        ratio = (statistics.median(m / r_ for r_, m in zip(times["rsn_tf"], times["mmpose"]))
                 if "mmpose" in times else None)
        prof = None
        if args.profile == "yes" or (args.profile == "auto" and ratio is not None and ratio < 1.0):
            prof = workers["rsn_tf"].ask("profile 2")["profile"]
        for w in workers.values():
            w.close()
        record["threads"][threads] = {"step_s": times, "images_per_s": ips, "ratio": ratio, "profile": prof,
                                      "info": {k: w.info for k, w in workers.items()}}
        rows.append(f"| {threads} | {ips['rsn_tf']:.2f} | {ips['mmpose']:.2f} | {ratio:.2f}x |" if ratio is not None
                    else f"| {threads} | {ips['rsn_tf']:.2f} | - | - |")
    load_after = os.getloadavg()
    info = record["threads"][int(args.threads.split(",")[-1])]["info"]
    head = (f"CPU: {cpu_model()}, {os.cpu_count()} logical CPUs visible; load average {load_before[0]:.2f} before, "
            f"{load_after[0]:.2f} after; {args.preset.upper()} 256x192, batch {args.batch}, float32; {args.rounds} "
            f"rounds x {args.steps} steps, interleaved (median); TensorFlow {info['rsn_tf']['tensorflow']} / Keras "
            f"{info['rsn_tf']['keras']}, torch {info.get('mmpose', {}).get('torch', '-')}; "
            f"{time.time() - t_start:.0f} s")
    lines = [head, "", "| threads | rsn train step, images/s | mmpose train_step, images/s | rsn_tf / mmpose |",
             "|---|---|---|---|", *rows]
    for threads, rec in record["threads"].items():
        if rec["profile"]:
            lines += ["", f"Where rsn_tf's step time goes ({threads} thread(s), TF profiler, 2 steps):", "",
                      "| op | ms per step | share of op time |", "|---|---|---|"]
            lines += [f"| {op} | {ms:.1f} | {'' if share != share else f'{share:.0%}'} |"
                      for op, ms, share in rec["profile"]]
    text = "\n".join(lines)
    print(text)
    if args.out:
        os.makedirs(args.out, exist_ok=True)
        with open(os.path.join(args.out, "bench_training.json"), "w") as f:
            json.dump(record, f, indent=1, default=str)
        with open(os.path.join(args.out, "bench_training.md"), "w") as f:
            f.write(text + "\n")
    tmp.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
