"""Options and helpers shared by several ``rsn`` commands (the model-running ones and the size spelling).

Sizes are spelled one way in every command: ``HxW``, height first, as the papers write crops
(``256x192``): ``--input`` of complexity/convert-mmpose/export/bench and ``--image-size`` of synth.
"""
from __future__ import annotations

import sys


def parse_hw(text: str, option: str = "--input") -> tuple[int, int]:
    """``"256x192"`` (also ``256X192``, ``256×192``) -> (256, 192) = (height, width); a clear error otherwise."""
    from rsn_tf.model.config import parse_input_size

    try:
        (h, w), _ = parse_input_size(text)
    except ValueError as e:
        raise ValueError(f"{option}: {e}") from None
    return h, w


def add_estimator_arguments(p):
    """Options shared by ``rsn eval`` and ``rsn infer``."""
    p.add_argument("--weights", required=True,
                   help="model: a .keras file (carries its config), a .weights.h5 with --config, an mmpose .pth "
                        "checkpoint (converted on the fly) or a named preset: mmpose/rsn18-coco, mmpose/rsn50-coco, "
                        "mmpose/2xrsn50-coco, mmpose/3xrsn50-coco (downloaded once into $RSN_TF_HOME)")
    p.add_argument("--config", default=None,
                   help="model config (YAML/JSON with ModelConfig fields, or a preset name such as rsn18); "
                        "optional for .keras files")
    p.add_argument("--recipe", choices=["authors", "mmpose"], default=None,
                   help="test recipe: decode, score rule and box padding of the authors or of mmpose (default: the "
                        "model's own: mmpose's for converted mmpose weights, the training loss mode's otherwise)")
    p.add_argument("--decode", choices=["authors", "mmpose"], default=None, help="override the recipe's decode")
    p.add_argument("--score-mode", choices=["authors", "mmpose"], default=None, help="override the recipe's score rule")
    p.add_argument("--no-flip", action="store_true", help="disable the flip test")
    p.add_argument("--batch-size", type=int, default=32, help="persons per network call (default 32)")
    p.add_argument("--keypoints", default=None, help="keypoint layout override: coco, mpii or a KeypointSpec JSON file")


def build_estimator(args):
    """The PoseEstimator of the shared options; prints the preset's mmpose accuracy and the recipe chosen."""
    import os

    from rsn_tf.inference.estimator import PoseEstimator
    from rsn_tf.io_utils import read_json
    from rsn_tf.weights import describe, load_model

    config = args.config
    if config is not None and not os.path.exists(config):
        if config.endswith((".yaml", ".yml", ".json")) or os.sep in config:
            raise FileNotFoundError(f"--config: file not found: {config}")
    note = describe(args.weights)
    if note:
        print(note, flush=True)
    model = load_model(args.weights, config)
    kp = args.keypoints
    if kp is not None and os.path.exists(kp):
        kp = read_json(kp, "keypoint spec file")
    est = PoseEstimator(model, flip_test=not args.no_flip, decode_mode=args.decode, score_mode=args.score_mode,
                        batch_size=args.batch_size, keypoints=kp, recipe=args.recipe)
    print(f"test recipe: {est.recipe.name} ({est.recipe_source})", flush=True)
    return est


def check_estimator_arguments(args) -> None:
    """Cheap checks of the shared options, before a model is loaded."""
    import os

    if args.batch_size < 1:
        raise ValueError(f"--batch-size must be >= 1 (got {args.batch_size})")
    if args.keypoints is not None and not os.path.exists(args.keypoints):
        from rsn_tf.keypoints import get_spec

        if args.keypoints.endswith(".json"):
            raise FileNotFoundError(f"--keypoints: keypoint spec file not found: {args.keypoints}")
        get_spec(args.keypoints)  # an unknown layout name is a clear error now, not after loading the model


def check_out_dir(path: str, option: str = "--out") -> None:
    """``path`` is a folder or can become one (not an existing file, no file in its parents)."""
    import os

    if os.path.exists(path) and not os.path.isdir(path):
        raise ValueError(f"{option} {path}: is a file; give a folder (it is created if missing)")
    parent = os.path.dirname(os.path.abspath(path))
    while parent and not os.path.exists(parent):
        parent = os.path.dirname(parent)
    if parent and not os.path.isdir(parent):
        raise ValueError(f"{option} {path}: {parent} is a file, so the folder cannot be created")
    if parent and not os.access(parent, os.W_OK):
        raise PermissionError(f"{option} {path}: {parent} is not writable")


def print_model_card(estimator, file=None) -> None:
    """One line on what the model is and, when it matters, what it cannot do (from its metadata)."""
    from rsn_tf.provenance import describe_model

    card = describe_model(getattr(estimator, "metadata", None))
    out = file or sys.stdout
    print(f"model: {card.summary}", file=out, flush=True)
    if card.caveat:
        print(f"note: {card.caveat}", file=out, flush=True)
