"""rsn train: train an experiment config with keras model.fit (or the multi-worker loop)."""
from __future__ import annotations

HELP = "train an RSN from an experiment config (YAML); rerunning the same command resumes"


def add_arguments(p):
    p.add_argument("--config", required=True, help="experiment YAML, e.g. configs/synthetic_rsn18.yaml")
    p.add_argument("--workdir", required=True, help="output folder: checkpoints, logs, loss curve, model.keras")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config value (YAML syntax), e.g. --set train.epochs=3; repeatable")
    p.add_argument("--save", default=None, help="also copy the final model to this .keras path")
    p.add_argument("--heldout", action="store_true",
                   help="after training, report the mean pixel error of decoded keypoints on the val split")


def run(args) -> int:
    import json
    import shutil

    from rsn_tf.training.trainer import train_experiment

    final = train_experiment(args.config, args.workdir, args.overrides)
    print(f"model: {final}")
    if args.save:
        from rsn_tf.io_utils import atomic_path

        with atomic_path(args.save) as tmp:
            shutil.copyfile(final, tmp)
        print(f"saved: {args.save}")
    if args.heldout:
        from rsn_tf.training.config import load_experiment
        from rsn_tf.training.heldout import heldout_keypoint_error

        exp = load_experiment(args.config, args.overrides)
        print("held-out:", json.dumps(heldout_keypoint_error(final, exp.data)))
    return 0
