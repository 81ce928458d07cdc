"""tf.distribute: 2 logical CPU devices (MirroredStrategy, fit and the custom loop: one step function) and
2 worker processes (MultiWorkerMirroredStrategy on 127.0.0.1) surviving a kill -9. Each runs in
subprocesses: devices must be configured before any TF op, and each worker is its own process."""
import json
import os
import signal
import socket
import subprocess
import sys
import time

import numpy as np
import pytest

from helpers.tiny import scalar_tags

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)


def _env():
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH=REPO)
    env.pop("TF_CONFIG", None)
    return env


def test_mirrored_two_replicas_match_one_device():
    """One SGD(lr=1) step on the same global batch: weight deltas (= gradients) with 1 device and with
    2 replicas (fit and the strategy.run loop) agree; a missing 1/replicas would double them."""
    out = subprocess.run([sys.executable, os.path.join(HERE, "helpers", "dist_mirrored.py")], env=_env(),
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    r = json.loads(out.stdout.strip().splitlines()[-1])
    assert r["replicas"] == 2
    assert r["grad_norm"] > 1.0
    # float32 sums in another order (batch 4 vs 2+2): measured 3.7e-6 relative on the tiny model
    assert r["fit_rel"] < 1e-5 and r["loop_rel"] < 1e-5, r
    assert abs(r["fit_ratio"] - 1.0) < 1e-5, r
    assert r["moving_rel"] < 1e-4, r
    assert r["loss"][0] == pytest.approx(r["loss"][1], rel=1e-5) and r["loss"][0] == pytest.approx(r["loss"][2], rel=1e-5)


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _workers(tmp_path, ports, run, *extra):
    """Start both workers; their output goes to files (a full pipe would block a worker)."""
    script = os.path.join(HERE, "helpers", "dist_worker.py")
    procs = []
    for i in range(2):
        out, err = (open(tmp_path / f"worker{i}_run{run}.{ext}", "w") for ext in ("out", "err"))
        procs.append(subprocess.Popen([sys.executable, script, str(tmp_path / "wd"), str(i), *ports, *extra],
                                      env=_env(), stdout=out, stderr=err, text=True))
    return procs


def _output(tmp_path, i, run, ext="out"):
    return (tmp_path / f"worker{i}_run{run}.{ext}").read_text()


def _finish(tmp_path, procs, run):
    try:
        for i, p in enumerate(procs):
            p.wait(timeout=600)
            assert p.returncode == 0, _output(tmp_path, i, run, "err")[-3000:]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    return [_output(tmp_path, i, run) for i in range(2)]


def _steps(stdout):
    """{global step: running epoch loss} from a worker's STEP lines."""
    return {int(a): float(b) for a, b in (ln.split()[1:3] for ln in stdout.splitlines() if ln.startswith("STEP "))}


def test_two_workers_survive_kill_9_mid_epoch(tmp_path):
    """2 MultiWorkerMirroredStrategy workers on 127.0.0.1, 3 epochs x 4 steps, a backup after every step.
    Worker 1 is killed with SIGKILL in epoch 2 after step 6 of 12 (the helper waits there on the first
    run only), worker 0, stuck in the next collective, too; the same two commands are then run again.
    They resume at step 7 from the chief's tf.train.CheckpointManager checkpoint and end with the
    planned 12 optimizer steps, identical weights on both workers, one history.csv row per epoch (with
    val_loss; epoch 2's loss includes the steps before the kill), TensorBoard records and best.keras;
    the loss continues where it stopped instead of starting over."""
    import keras

    import rsn_tf.model  # noqa: F401
    from rsn_tf.training.callbacks import read_history

    ports = [str(_free_port()), str(_free_port())]
    wd = tmp_path / "wd"
    procs = _workers(tmp_path, ports, 1, "6")
    try:
        deadline = time.time() + 600
        while not (wd / "paused_1").exists():
            ended = [i for i, p in enumerate(procs) if p.poll() is not None]
            assert not ended, f"worker {ended} ended before the kill: " + _output(tmp_path, ended[0], 1, "err")[-3000:]
            assert time.time() < deadline, "no worker reached step 6"
            time.sleep(0.2)
        procs[1].send_signal(signal.SIGKILL)
        procs[1].wait()
        procs[0].send_signal(signal.SIGKILL)  # blocked in step 7's all-reduce
        procs[0].wait()
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    before = _steps(_output(tmp_path, 0, 1))
    assert sorted(before) == [1, 2, 3, 4, 5, 6]
    assert not (wd / "model.keras").exists()
    assert [int(r["epoch"]) for r in read_history(str(wd / "history.csv"))] == [0]

    outs = _finish(tmp_path, _workers(tmp_path, ports, 2, "6"), 2)  # the same commands
    assert "ckpt-6: epoch 2, batch 3 of 4" in outs[0], outs[0][-2000:]
    after = _steps(outs[0])
    assert sorted(after) == list(range(7, 13))  # only the remaining steps ran
    paths = [[ln.split(" ", 1)[1] for ln in o.splitlines() if ln.startswith("FINAL ")][-1] for o in outs]
    assert paths[0] == str(wd / "model.keras")
    a, b = (keras.models.load_model(p) for p in paths)
    assert a.metadata["optimizer_steps"] == 12 and a.metadata["distribution"] == "multi_worker"
    for x, y in zip(a.get_weights(), b.get_weights()):  # trainable weights and BN statistics
        np.testing.assert_array_equal(x, y)

    # the loss curve continues: step 7 (the first after the restart) is close to step 6, far below step 1;
    # a run that restarted from scratch would be back near step 1's loss
    step_loss = {**before, **after}
    per_step = {g: step_loss[g] * ((g - 1) % 4 + 1) - (step_loss[g - 1] * ((g - 2) % 4 + 1) if (g - 1) % 4 else 0)
                for g in step_loss}
    drop = per_step[1] - per_step[6]
    assert drop > 0 and abs(per_step[7] - per_step[6]) < 0.5 * drop, per_step
    rows = read_history(str(wd / "history.csv"))
    assert [int(r["epoch"]) for r in rows] == [0, 1, 2]
    assert rows[1]["loss"] == pytest.approx(np.mean([per_step[g] for g in (5, 6, 7, 8)]), rel=1e-4)
    assert all(np.isfinite(r["val_loss"]) and r["learning_rate"] > 0 for r in rows)
    assert rows[0]["loss"] > rows[1]["loss"] > rows[2]["loss"]
    assert (wd / "checkpoints" / "best.keras").exists() and (wd / "loss_curve.png").exists()
    assert {"train/epoch_loss", "validation/epoch_loss"} <= scalar_tags(str(wd / "logs"))

