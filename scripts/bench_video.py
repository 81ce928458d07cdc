"""Video benchmark: tracked-pose accuracy against a synthetic clip's truth, and frames/s of `rsn video`.

    python scripts/bench_video.py --out /tmp/bench_video [--weights runs/demo/train/model.keras]

Without --weights it trains the demo's model first (rsn synth + rsn train configs/synthetic_rsn18.yaml,
as rsn demo does). Builds the int8 exports and clips it needs under OUT and reuses them on a rerun.
Prints the markdown tables (also OUT/bench_video.md). See rsn_tf/video/bench.py.
"""
import argparse
import os
import shlex
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def main(argv=None) -> int:
    from rsn_tf.video.bench import markdown, run_bench

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", required=True, help="output folder (models, exports, clips, runs, bench_video.md)")
    p.add_argument("--weights", default=None, help="the demo's trained model (.keras); default: train it into OUT/demo")
    p.add_argument("--threads", default="1,2", help="comma list of thread counts (default 1,2)")
    p.add_argument("--people", default="1,2,4", help="comma list of people per clip (default 1,2,4)")
    p.add_argument("--intervals", default="10,1", help="comma list of key-frame intervals (default 10,1)")
    p.add_argument("--seconds", type=float, default=4.0, help="clip length (default 4)")
    p.add_argument("--size", default="640x480", help="clip size WxH (default 640x480)")
    p.add_argument("--models", default="rsn18", help="speed models, comma list: rsn18 (256x192 int8), demo (the demo model, int8; default rsn18)")
    p.add_argument("--detector", choices=("auto", "on", "off"), default="auto",
                   help="time the SSDLite detector on key frames (auto: when installed)")
    p.add_argument("--quick", action="store_true", help="a quick validation: 2 s clips of 1 and 2 people at 320x240, "
                                                         "2 threads, rsn18 only")
    args = p.parse_args(argv)
    ints = lambda s: tuple(int(v) for v in s.split(","))  # noqa: E731
    threads, people, intervals = ints(args.threads), ints(args.people), ints(args.intervals)
    size = tuple(int(v) for v in args.size.lower().split("x"))
    seconds, models = args.seconds, tuple(args.models.split(","))
    if args.quick:
        threads, people, seconds, size, models = (2,), (1, 2), 2.0, (320, 240), ("rsn18",)
    command = "python scripts/bench_video.py " + " ".join(shlex.quote(a) for a in (argv or sys.argv[1:]))
    result = run_bench(args.out, args.weights, threads, people, intervals, seconds, size, models, args.detector,
                       command)
    print(markdown(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
