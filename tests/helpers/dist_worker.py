"""Subprocess: one MultiWorkerMirroredStrategy worker on 127.0.0.1 training the tiny experiment.

Usage: python dist_worker.py WORKDIR INDEX PORT0 PORT1   (prints the final model path)
"""
import json
import os
import sys

workdir, index, ports = sys.argv[1], int(sys.argv[2]), sys.argv[3:5]
os.environ["TF_CONFIG"] = json.dumps({"cluster": {"worker": [f"127.0.0.1:{p}" for p in ports]},
                                      "task": {"type": "worker", "index": index}})
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from helpers.tiny import tiny_experiment  # noqa: E402
from rsn_tf.training.config import resolve_experiment  # noqa: E402
from rsn_tf.training.trainer import train_experiment  # noqa: E402

exp = resolve_experiment(tiny_experiment(distribution="auto", epochs=2, steps_per_epoch=2, validation_freq=0))
cfg = exp.model_config()


def datasets(batch_size):
    from rsn_tf.training.fake_data import fake_dataset

    return fake_dataset(cfg, batch_size, n=8, seed=0), None, None


print("FINAL", train_experiment(exp, workdir, datasets=datasets), flush=True)
