"""rsn synth: write the built-in synthetic COCO-format keypoint dataset."""
from __future__ import annotations

import argparse

HELP = "write a synthetic COCO-format keypoint dataset (images + person_keypoints_{train,val}.json)"


def add_arguments(p):
    p.add_argument("--out", required=True, help="output folder (gets images/ and person_keypoints_*.json)")
    p.add_argument("--images", type=int, default=200, help="number of images, train + val (default 200)")
    p.add_argument("--seed", type=int, default=0, help="random seed; the same seed writes the same dataset")
    p.add_argument("--val-fraction", type=float, default=0.2, help="share of images in the val split (default 0.2)")
    p.add_argument("--image-size", default="288x384",
                   help="image size HxW (height x width, as --input elsewhere; default 288x384)")
    p.add_argument("--size", default=None, help=argparse.SUPPRESS)  # the old WxH spelling: a clear error
    p.add_argument("--max-people", type=int, default=4, help="people per image, 1..N (default 4)")
    p.add_argument("--sheet", default=None, help="also write a PNG contact sheet of train images with skeletons")
    p.add_argument("--overwrite", action="store_true", help="replace a dataset already in --out")


def run(args) -> int:
    from rsn_tf.commands.common import check_out_dir, parse_hw
    from rsn_tf.data.synth import make_synthetic_dataset

    if args.size is not None:
        raise ValueError(f"--size (width x height) was replaced by --image-size HxW, height first as in every "
                         f"other command: for a {args.size} WxH image write --image-size "
                         f"{'x'.join(reversed(args.size.lower().split('x')))}")
    h, w = parse_hw(args.image_size, "--image-size")
    if h < 64 or w < 64:
        raise ValueError(f"--image-size {args.image_size}: height and width must be at least 64")
    check_out_dir(args.out)
    import os
    existing = [f for f in ("person_keypoints_train.json", "person_keypoints_val.json")
                if os.path.exists(os.path.join(args.out, f))]
    if existing and not args.overwrite:
        raise ValueError(f"--out {args.out} already holds a dataset ({', '.join(existing)}); choose another "
                         "folder or pass --overwrite to replace it")
    if args.images < 1:
        raise ValueError(f"--images must be >= 1 (got {args.images})")
    if args.max_people < 1:
        raise ValueError(f"--max-people must be >= 1 (got {args.max_people})")
    if args.sheet and not args.sheet.lower().endswith(".png"):
        raise ValueError(f"--sheet {args.sheet!r}: the contact sheet is a PNG file (name it *.png)")
    summary = make_synthetic_dataset(args.out, args.images, args.seed, val_fraction=args.val_fraction, size=(w, h),
                                     max_people=args.max_people)
    for split in ("train", "val"):
        s = summary[split]
        print(f"{split}: {s['images']} images, {s['instances']} people -> {s['ann']}")
    print(f"images: {summary['images_dir']}")
    if args.sheet:
        from rsn_tf.data.contact_sheet import contact_sheet
        print("contact sheet:", contact_sheet(summary["train"]["ann"], summary["images_dir"], args.sheet))
    return 0
