"""rsn video: tracked poses on a video file, a folder of frames or a camera -> overlay.mp4, poses.json, summary.md."""
from __future__ import annotations

import shlex
import sys

HELP = "pose tracking on video (file, frame folder, camera): overlay.mp4, poses.json, summary.md"


def add_arguments(p):
    from rsn_tf.video.model import RUNTIMES

    p.add_argument("input", help="a video file, a folder of frame images, or a camera index (0, 1, ...)")
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument("--weights", help="a trained model (.keras); runs in Keras")
    g.add_argument("--export", metavar="DIR", help="an export folder written by 'rsn export'")
    p.add_argument("--runtime", choices=RUNTIMES, default=None,
                   help="the network's runtime (default: tflite_int8 with --export, keras with --weights)")
    p.add_argument("--threads", type=int, default=None, help="runtime CPU threads (default: min(4, CPUs))")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--boxes", default="full-frame",
                   help="person boxes on key frames: 'detector' (optional SSDLite person detector), a box file "
                        "(a truth.json of rsn synth-video, or {'frames': [{'index', 'boxes': [[x,y,w,h(,score)]]}]}), "
                        "or 'full-frame' (single-person clips; default)")
    p.add_argument("--keyframe-interval", type=int, default=None,
                   help="run the box source every N frames (default: the config's, 10); 1 = every frame")
    p.add_argument("--smooth", action="store_true", help="One Euro smoothing of the keypoints (off by default)")
    p.add_argument("--flip-test", action="store_true", help="also run the mirrored crop (twice the network work)")
    p.add_argument("--config", default=None, help="video config YAML (e.g. configs/video/default.yaml)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config value, e.g. --set tracker.keep_score=0.55 (repeatable)")
    p.add_argument("--max-frames", type=int, default=None, help="stop after N frames")
    p.add_argument("--fps", type=float, default=None, help="frame rate (default: the video's; 25 for frame folders)")
    p.add_argument("--no-overlay", action="store_true", help="do not write overlay.mp4 (poses.json and summary only)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def run(args) -> int:
    from rsn_tf.video.config import load_video_config
    from rsn_tf.video.model import build_estimator
    from rsn_tf.video.run import run_video
    from rsn_tf.video.source import open_source

    overrides = list(args.overrides)
    if args.keyframe_interval is not None:
        overrides.append(f"tracker.keyframe_interval={args.keyframe_interval}")
    if args.smooth:
        overrides.append("smoothing.enabled=true")
    if args.flip_test:
        overrides.append("flip_test=true")
    if args.no_overlay:
        overrides.append("draw=false")
    config = load_video_config(args.config, overrides)
    if args.max_frames is not None and args.max_frames < 1:
        raise ValueError(f"--max-frames must be >= 1 (got {args.max_frames})")
    # check the input and the box source before loading the model
    source = open_source(args.input, args.fps)
    from rsn_tf.video.boxes import make_box_source
    boxes = make_box_source(args.boxes, config.det_threshold) if args.boxes != "detector" else None
    estimator, info = build_estimator(args.weights, args.export, args.runtime, args.threads)
    if boxes is None:
        boxes = make_box_source("detector", config.det_threshold)
    command = "rsn video " + " ".join(shlex.quote(a) for a in sys.argv[2:]) \
        if len(sys.argv) > 1 and sys.argv[1] == "video" else ""
    result = run_video(estimator, source, args.out, boxes, config, max_frames=args.max_frames,
                       progress=not args.no_progress, model_info=info, command=command)
    st = result["stats"]
    what = "interrupted (Ctrl-C): partial output" if result["interrupted"] else "wrote"
    print(f"{what} {result['frames']} frames: {result['poses']}, {result['summary']}"
          f"{', ' + result['overlay'] if result['overlay'] else ''}; {st['fps']} frames/s, {st['pps']} persons/s, "
          f"{len(result['tracks'])} tracks", flush=True)
    return 130 if result["interrupted"] else 0
