"""The README's main job on a built-in default: everything runs on a fresh machine with no data.

Steps (each writes into ``out_dir``; rerunning reuses finished steps and resumes training):

1. ``complexity/``: build every preset; parameters and MACs beside the paper's GFLOPs; RSN-18 summary.
2. ``synth/``: the synthetic COCO-format people dataset, with pictures of it.
3. ``train/``: train ``configs/synthetic_rsn18.yaml`` on it (checkpoints, CSV/TensorBoard logs, loss plot);
   the final model is ``train/final.keras`` style (path returned).
4. ``eval/``: the authors' test recipe (flip test, post-blur, quarter offset, rescoring) on the
   synthetic val split with pycocotools: ``metrics.json``, ``metrics.md`` and skeleton overlays.
5. ``summary.md``: the tables of all steps.
"""
from __future__ import annotations

import dataclasses
import os

from rsn_tf import io_utils


def complexity_step(out_dir: str, presets: list[str] | None = None) -> dict:
    """Build every preset, write the complexity table (markdown + JSON) and the RSN-18 layer summary."""
    import keras

    from rsn_tf.complexity import all_presets, format_table, preset_complexity, summary_text
    from rsn_tf.model import build_rsn

    rows = []
    names = presets or all_presets()
    for i, name in enumerate(names):
        r = preset_complexity(name)
        rows.append(r)
        print(f"  [{i + 1}/{len(names)}] {r.preset:<14} {r.params / 1e6:8.3f} M params {r.gmacs:7.3f} GMACs",
              flush=True)
    table = format_table(rows)
    written = {
        "table": table,
        "complexity_md": io_utils.write_text(os.path.join(out_dir, "complexity.md"), table + "\n"),
        "complexity_json": io_utils.write_json(os.path.join(out_dir, "complexity.json"),
                                               [dataclasses.asdict(r) for r in rows]),
    }
    keras.backend.clear_session()
    written["summary"] = io_utils.write_text(os.path.join(out_dir, "rsn18_summary.txt"),
                                             summary_text(build_rsn("rsn18")))
    return written


def run_demo(out_dir: str, presets: list[str] | None = None, num_images: int = 400, seed: int = 0,
             train_overrides: list[str] | None = None) -> dict:
    """Run the whole main job into ``out_dir``; returns what each step wrote."""
    from rsn_tf.data.synth import make_synthetic_demo
    from rsn_tf.evaluation.runner import evaluate_and_draw
    from rsn_tf.training.synthetic import train_synthetic

    from rsn_tf.model.config import preset_config

    for name in presets or []:
        preset_config(name)  # an unknown name is a clear error before any work
    if num_images < 2:
        raise ValueError(f"the demo needs at least 2 synthetic images (a train and a val split); got {num_images}")
    os.makedirs(out_dir, exist_ok=True)
    result: dict = {}

    print("[1/4] complexity of every preset", flush=True)
    result["complexity"] = complexity_step(os.path.join(out_dir, "complexity"), presets)
    print(result["complexity"]["table"], flush=True)

    print("[2/4] synthetic dataset", flush=True)
    synth_dir = os.path.join(out_dir, "synth")
    if not os.path.exists(os.path.join(synth_dir, "person_keypoints_val.json")):
        result["synth"] = make_synthetic_demo(synth_dir, num_images=num_images, seed=seed)
    else:
        result["synth"] = {"dataset": synth_dir, "sheet": os.path.join(synth_dir, "synth_sheet.png")}

    print("[3/4] training configs/synthetic_rsn18.yaml", flush=True)
    trained = train_synthetic(out_dir, num_images=num_images, seed=seed, overrides=train_overrides)
    result["train"] = trained

    print("[4/4] evaluation on the synthetic val split (authors' test recipe, pycocotools)", flush=True)
    metrics = evaluate_and_draw(trained["model"], os.path.join(synth_dir, "person_keypoints_val.json"),
                                os.path.join(synth_dir, "images"), os.path.join(out_dir, "eval"))
    result["eval"] = metrics

    result["summary"] = io_utils.write_text(os.path.join(out_dir, "summary.md"), _summary(result, out_dir))
    print(open(result["summary"]).read(), flush=True)
    return result


def _model_note(model_path: str) -> str:
    """What the demo model can and cannot do, from the metadata it carries (:mod:`rsn_tf.provenance`)."""
    import json
    import zipfile

    from rsn_tf.provenance import REAL_WEIGHTS_HINT, describe_model

    try:  # read the metadata from the archive's config without building the model again
        with zipfile.ZipFile(model_path) as z:
            meta = json.loads(z.read("config.json"))["config"].get("metadata", {})
    except (OSError, KeyError, ValueError, zipfile.BadZipFile):
        meta = {}
    card = describe_model(meta)
    return (f"**What this model can and cannot do.** It was {card.summary}. "
            f"{(card.caveat or REAL_WEIGHTS_HINT)[0].upper()}{(card.caveat or REAL_WEIGHTS_HINT)[1:]}.")


def _summary(result: dict, out_dir: str) -> str:
    from rsn_tf.evaluation import coco as coco_eval

    trained = result["train"]
    hist = trained.get("history") or []
    lines = ["# rsn demo results", "", "## Model family (parameters and MACs)", "", result["complexity"]["table"], ""]
    lines += ["## Training on the synthetic set (configs/synthetic_rsn18.yaml)", ""]
    if hist:
        first, last = hist[0], hist[-1]
        keys = [k for k in ("loss", "val_loss") if k in last]
        lines.append("| epoch | " + " | ".join(keys) + " |")
        lines.append("|---|" + "---|" * len(keys))
        for row in (first, last):
            lines.append(f"| {int(row.get('epoch', 0)) + 1} | " + " | ".join(f"{float(row[k]):.1f}" for k in keys) + " |")
        from rsn_tf.training.callbacks import bn_lag_epochs

        lagging = [int(r["epoch"]) + 1 for r in bn_lag_epochs(hist)]
        if lagging:
            lines += ["", f"A val_loss far above the training loss (epoch {', '.join(map(str, lagging))}) is BatchNorm's "
                      "moving statistics trailing the weights while the learning rate warms up within the first 20 steps, "
                      "not the model's loss: the same weights score about the training loss with batch statistics "
                      "(the training log prints both; docs/training.md, 'val_loss in the first epochs')."]
    h = trained.get("heldout")
    if h:
        lines += ["", f"Held-out localisation ({h.get('instances')} val people, {h.get('keypoints')} labelled joints, "
                  f"GT boxes): mean error {h['mean_px']:.1f} px, median {h['median_px']:.1f} px "
                  f"(every joint at the crop centre: {h['baseline_center_px']:.1f} px); "
                  f"{100 * h['pck_0.1']:.1f}% within 0.1 x the box size."]
    lines += ["", f"Model: `{os.path.relpath(trained['model'], out_dir)}`; loss curves: "
              f"`{os.path.relpath(os.path.join(trained['workdir'], 'loss_curve.png'), out_dir)}`", "",
              _model_note(trained["model"]), ""]
    lines += ["## COCO keypoint AP on the synthetic val split (flip test, authors' decode, GT boxes)", "",
              coco_eval.format_table(result["eval"]), "", "Overlays: `eval/overlays.png`", ""]
    return "\n".join(lines)
