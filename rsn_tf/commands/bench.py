"""rsn bench: persons per second per runtime x threads x batch, beside a peer TFLite model and the matmul roofline."""
from __future__ import annotations

import os
import shlex
import sys

HELP = "benchmark persons/second of a preset in Keras, SavedModel, TFLite fp32/fp16/int8 and ONNX (+ peers)"


def add_arguments(p):
    p.add_argument("--preset", default="rsn18",
                   help="preset(s), comma list (e.g. rsn18,res18), random weights unless --weights (default rsn18)")
    p.add_argument("--weights", default=None, help="a trained .keras model to benchmark instead of --preset")
    p.add_argument("--input", default=None, help="input size HxW for presets (default 256x192)")
    p.add_argument("--out", required=True, help="output directory (bench.json, bench.md, bench.png, models/)")
    p.add_argument("--runtimes", default="keras,saved_model,tflite_fp32,tflite_fp16,tflite_int8,onnx",
                   help="comma list of keras,saved_model,tflite_fp32,tflite_fp16,tflite_int8,tflite_int8_io,"
                        "onnx,onnx_int8")
    p.add_argument("--threads", default="1", help="comma list of thread counts (default 1)")
    p.add_argument("--batch", default="1", help="comma list of batch sizes (default 1)")
    p.add_argument("--peer-tflite", nargs="*", default=[], metavar="PATH",
                   help="peer .tflite models timed at batch 1 in the same run (e.g. BlazePose full)")
    p.add_argument("--rounds", type=int, default=20, help="interleaved rounds (default 20)")
    p.add_argument("--block-seconds", type=float, default=0.25, help="length of one timed block (default 0.25 s)")
    p.add_argument("--warmup", type=int, default=5, help="warm-up invokes per cell (default 5)")
    p.add_argument("--reuse", action="store_true", help="reuse exports already under OUT/models/")
    p.add_argument("--profile", action="store_true",
                   help="also time the int8 graph stage by stage (1 thread) -> OUT/profile/<model>/profile.md")


def run(args) -> int:
    from rsn_tf.bench.report import markdown
    from rsn_tf.bench.run import RUNTIMES, parse_list, require_runtimes, run_benchmark
    from rsn_tf.weights import load_model
    from rsn_tf.model import build_rsn

    if args.rounds < 1 or args.block_seconds <= 0 or args.warmup < 0:
        raise ValueError("--rounds must be >= 1, --block-seconds > 0, --warmup >= 0")
    require_runtimes(parse_list(args.runtimes, "runtimes", RUNTIMES), args.peer_tflite)  # before any model loads
    if args.weights:
        models = {os.path.splitext(os.path.basename(args.weights))[0]: load_model(args.weights)}
    else:
        names = [s.strip() for s in args.preset.split(",") if s.strip()]
        models = {name: build_rsn(name, input_size=args.input, metadata={"weights": "random (untrained)"})
                  for name in names}
    # The command line as typed, for the report (empty when called as a library, e.g. from tests).
    command = "rsn " + " ".join(shlex.quote(a) for a in sys.argv[1:]) if sys.argv[0].endswith(("rsn", "__main__.py")) \
        else ""
    result = run_benchmark(models, args.out, args.runtimes, args.threads, args.batch, args.peer_tflite,
                           args.rounds, args.block_seconds, args.warmup, args.reuse, command)
    print(markdown(result))
    if args.profile:
        from rsn_tf.bench.profile import profile_stages
        from rsn_tf.export.crops import synthetic_crops

        for name, model in models.items():
            calib = synthetic_crops(model.rsn_config, num_images=16, seed=0, limit=32)
            prof = profile_stages(model, calib, os.path.join(args.out, "profile", name))
            print(f"{name}: " + ", ".join(f"{r['stage']} {r['ms']:.2f} ms" for r in prof["stages"]))
    return 0
