"""rsn convert-mmpose: an mmpose RSN checkpoint (.pth or .npz state dict) -> a Keras ``.keras`` model."""
from __future__ import annotations

HELP = "convert an mmpose RSN checkpoint (.pth, or its state dict as .npz) into a .keras model"


def add_arguments(p):
    p.add_argument("checkpoint", nargs="?",
                   help="mmpose checkpoint, e.g. td-hm_rsn18_8xb32-210e_coco-256x192-9049ed09_20221013.pth, or a "
                        "named preset (mmpose/rsn18-coco, ...: downloaded once into $RSN_TF_HOME)")
    p.add_argument("--out", help="output .keras file")
    p.add_argument("--list", action="store_true", help="list the named presets with mmpose's accuracy for each")
    p.add_argument("--preset", default=None,
                   help="build this preset (e.g. rsn50, 2xrsn50) instead of inferring the architecture from the keys")
    p.add_argument("--input", default="256x192", help="input crop size HxW the model is built for (default 256x192)")


def run(args) -> int:
    import os

    import numpy as np

    from rsn_tf.convert import from_mmpose
    from rsn_tf.io_utils import atomic_path
    from rsn_tf.model.config import parse_input_size
    from rsn_tf.weights import WEIGHTS_PRESETS, fetch_preset

    if args.list:
        for preset in WEIGHTS_PRESETS.values():
            print(preset.accuracy_line())
        return 0
    if not args.checkpoint or not args.out:
        raise ValueError("give a checkpoint (or a preset name) and --out MODEL.keras (or --list)")
    if args.checkpoint in WEIGHTS_PRESETS and not os.path.exists(args.checkpoint):
        preset = WEIGHTS_PRESETS[args.checkpoint]
        print(preset.accuracy_line(), flush=True)
        args.checkpoint = fetch_preset(preset.name)
        args.preset = args.preset or preset.architecture
    if not args.out.endswith(".keras"):
        raise ValueError(f"--out must end with .keras (got {args.out})")
    input_size, _ = parse_input_size(args.input)
    model = from_mmpose(args.checkpoint, preset=args.preset, input_size=input_size)
    with atomic_path(args.out) as tmp:  # the temp name keeps the .keras suffix Keras requires
        model.save(tmp)
    c = model.rsn_config
    params = sum(int(np.prod(w.shape)) for w in model.trainable_weights)  # as PyTorch counts (no BN stats)
    print(f"wrote {args.out}: {c.num_stages} stage(s), blocks {list(c.num_blocks)}, num_steps {c.num_steps}, "
          f"{c.num_keypoints} keypoints ({model.metadata['keypoints'] or 'custom layout'}), "
          f"input {c.input_size[0]}x{c.input_size[1]}, PRM {c.prm}, {params:,} parameters")
    return 0
