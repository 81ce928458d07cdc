"""Subprocess: one MultiWorkerMirroredStrategy worker on 127.0.0.1 training the tiny experiment.

Usage: python dist_worker.py WORKDIR INDEX PORT0 PORT1 [PAUSE_AT]

3 epochs x 4 steps, global batch 4 (2 per worker), every worker's batch the same at every step (so
the loss curve is smooth), validation every epoch, a backup after every step. Prints
``STEP <global step> <running epoch loss>`` after each step and ``FINAL <model path>`` at the end.
With ``PAUSE_AT`` (a global step count), worker 1 stops before its next step the first time it
gets there (writing ``WORKDIR/paused_1``) and waits to be killed, while worker 0 goes on into that
step's all-reduce and waits for it; the same commands run again do not pause (the file exists), so a
test can kill the workers at a known point mid-epoch and rerun the very same commands.
"""
import json
import os
import sys
import time

workdir, index, ports = sys.argv[1], int(sys.argv[2]), sys.argv[3:5]
pause_at = int(sys.argv[5]) if len(sys.argv) > 5 else None
os.environ["TF_CONFIG"] = json.dumps({"cluster": {"worker": [f"127.0.0.1:{p}" for p in ports]},
                                      "task": {"type": "worker", "index": index}})
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import keras  # noqa: E402

from helpers.tiny import tiny_experiment  # noqa: E402
from rsn_tf.training.config import resolve_experiment  # noqa: E402
from rsn_tf.training.trainer import train_experiment  # noqa: E402

STEPS = 4
exp = resolve_experiment(tiny_experiment(distribution="auto", epochs=3, steps_per_epoch=STEPS, validation_freq=1,
                                         optimizer={"lr": 1e-2}, checkpoint={"backup_freq": 1}))
cfg = exp.model_config()


def datasets(batch_size):
    from rsn_tf.training.fake_data import fake_dataset

    return (fake_dataset(cfg, batch_size, n=batch_size, seed=0),
            fake_dataset(cfg, batch_size, n=2 * batch_size, seed=1, repeat=False), None)


class Report(keras.callbacks.Callback):
    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_begin(self, batch, logs=None):
        marker = os.path.join(workdir, "paused_1")
        if index == 1 and pause_at is not None and self.epoch * STEPS + batch == pause_at and not os.path.exists(marker):
            open(marker, "w").close()
            print("PAUSED", flush=True)
            time.sleep(600)

    def on_train_batch_end(self, batch, logs=None):
        print("STEP", self.epoch * STEPS + batch + 1, logs["loss"], flush=True)


print("FINAL", train_experiment(exp, workdir, datasets=datasets, extra_callbacks=[Report()]), flush=True)
