"""rsn synth-video: a synthetic clip of walking people with per-frame truth (test data for rsn video)."""
from __future__ import annotations

HELP = "write a synthetic video of people walking, crossing and occluding (clip.mp4 + truth.json)"


def add_arguments(p):
    p.add_argument("--out", required=True, help="output folder (gets clip.mp4 and truth.json)")
    p.add_argument("--seconds", type=float, default=4.0, help="clip length in seconds (default 4)")
    p.add_argument("--people", type=int, default=2,
                   help="people: 1-2 walkers crossing, 3 also one standing still, 4 also a runner, more: walkers "
                        "(default 2)")
    p.add_argument("--seed", type=int, default=0, help="random seed; the same seed writes the same clip")
    p.add_argument("--size", default="320x240", help="frame size WxH (default 320x240)")
    p.add_argument("--fps", type=float, default=25.0, help="frames per second (default 25)")


def run(args) -> int:
    from rsn_tf.data.synth_video import make_synthetic_video

    try:
        w, h = (int(v) for v in args.size.lower().split("x"))
    except ValueError:
        raise ValueError(f"--size {args.size!r}: expected WxH, e.g. 320x240") from None
    out = make_synthetic_video(args.out, args.seconds, args.people, args.seed, size=(w, h), fps=args.fps)
    roles = ", ".join(f"{p['id']} {p['role']}" for p in out["people"])
    print(f"wrote {out['clip']} ({out['frames']} frames, {w}x{h}, {args.fps:g} frames/s; people: {roles}) "
          f"and {out['truth']}")
    return 0
