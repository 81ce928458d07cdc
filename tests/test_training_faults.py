"""What a training run does with a bad image and with val AP: ``rsn train`` on a tiny synthetic COCO set.

- ``train.evaluation`` + ``checkpoint.monitor: val_AP``: the AP reaches ``history.csv``, TensorBoard
  and the checkpoint metadata, and ``best.keras`` is the epoch with the highest AP.
- a JPEG truncated after the run started (its header still passes the load-time check): the rerun
  fails with one line naming the file, exit 2, and the last checkpoint and backup are left as they were.
"""
import glob
import hashlib
import json
import os

import keras
import pytest
import yaml

from helpers.tiny import TINY_MODEL
from rsn_tf.cli import main
from rsn_tf.training.callbacks import read_history


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    from rsn_tf.data.synth import make_synthetic_dataset

    root = str(tmp_path_factory.mktemp("synth"))
    make_synthetic_dataset(root, num_images=5, seed=0, max_people=2)
    return root


def _config(tmp_path, root, **train):
    cfg = {"model": TINY_MODEL,
           "data": {"format": "coco", "root": root, "train_ann": "person_keypoints_train.json", "train_images": "images",
                    "val_ann": "person_keypoints_val.json", "val_images": "images", "augment": {"recipe": "none"}},
           "train": {"batch_size": 2, "epochs": 2, "steps_per_epoch": 1, "validation_freq": 0, "verbose": 2,
                     "optimizer": {"lr": 1e-2}, "schedule": {"name": "constant"}, **train}}
    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return str(path)


def _sha(path):
    return hashlib.sha256(open(path, "rb").read()).hexdigest()


def test_val_ap_reaches_history_and_picks_best(tmp_path, synth):
    import tensorflow as tf

    wd = str(tmp_path / "wd")
    cfg = _config(tmp_path, synth, epochs=2, evaluation={"every": 1, "batch_size": 8, "flip_test": False},
                  checkpoint={"monitor": "val_AP"})
    assert main(["train", "--config", cfg, "--workdir", wd]) == 0
    rows = read_history(os.path.join(wd, "history.csv"))
    assert [int(r["epoch"]) for r in rows] == [0, 1]
    assert all(0.0 <= r["val_AP"] <= 1.0 and 0.0 <= r["val_AR"] <= 1.0 for r in rows), rows
    best = keras.models.load_model(os.path.join(wd, "checkpoints", "best.keras"))
    want = max(range(2), key=lambda i: (rows[i]["val_AP"], -i))  # the first epoch with the highest AP
    assert best.metadata["best"] == {"monitor": "val_AP", "mode": "max", "value": pytest.approx(rows[want]["val_AP"])}
    assert best.metadata["epoch"] == want + 1 and "val_AP" in best.metadata["logs"]
    tags = set()
    for f in glob.glob(os.path.join(wd, "logs", "validation", "events.out.tfevents.*")):
        for e in tf.compat.v1.train.summary_iterator(f):
            tags.update(v.tag for v in e.summary.value)
    assert {"epoch_AP", "epoch_AR"} <= tags
    state = json.load(open(os.path.join(wd, "checkpoints", "state.json")))
    assert state["monitor"] == "val_AP" and state["mode"] == "max"


def test_monitor_val_ap_needs_the_evaluation(tmp_path, synth, capsys):
    cfg = _config(tmp_path, synth, checkpoint={"monitor": "val_AP"})
    assert main(["train", "--config", cfg, "--workdir", str(tmp_path / "wd")]) == 2
    assert "train.checkpoint.monitor: val_AP is logged only when train.evaluation.every >= 1" in capsys.readouterr().err


def test_corrupt_jpeg_is_one_line_and_keeps_the_checkpoint(tmp_path, synth, capsys):
    import shutil

    root = str(tmp_path / "data")
    shutil.copytree(synth, root)
    wd = str(tmp_path / "wd")
    cfg = _config(tmp_path, root, epochs=1)
    assert main(["train", "--config", cfg, "--workdir", wd]) == 0
    last = os.path.join(wd, "checkpoints", "last.keras")
    before = {p: _sha(p) for p in [last, *glob.glob(os.path.join(wd, "backup", "*"))] if os.path.isfile(p)}
    train_images = [os.path.join(root, "images", im["file_name"])
                    for im in json.load(open(os.path.join(root, "person_keypoints_train.json")))["images"]]
    for p in train_images:  # truncated after the header: passes the 12-byte load-time check, fails to decode
        data = open(p, "rb").read()
        open(p, "wb").write(data[:64])
    capsys.readouterr()
    assert main(["train", "--config", cfg, "--workdir", wd, "--set", "train.epochs=2"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    assert err.startswith("rsn train: error: the input pipeline failed: ") and "cannot decode image" in err
    assert any(p in err for p in train_images) and "annotation id" in err and "data.skip_bad_images" in err
    assert {p: _sha(p) for p in before} == before  # the last checkpoint and the backup are as they were
    assert [int(r["epoch"]) for r in read_history(os.path.join(wd, "history.csv"))] == [0]
