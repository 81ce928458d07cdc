"""``train`` fixtures: K real mmpose ``train_step``\\ s, replayed through rsn_tf's own training step.

What runs (nothing here re-implements training):

1. The architecture is read from the fixture's initial state_dict by the converter
   (:func:`rsn_tf.convert.infer_config`; any stages/steps/widths it accepts), the crop size from the
   manifest's codec, and an :class:`~rsn_tf.training.config.ExperimentConfig` is written for it with
   ``train.loss.mode: mmpose`` and the manifest's optimizer (Adam lr/betas/eps/weight decay), warm-up
   (mmengine ``LinearLR``), loss weights and OHKM top-k.
2. The model, optimizer and schedule come from the builders ``rsn train`` uses (``build_rsn``,
   :func:`rsn_tf.training.optimizer.build_optimizer`); the initial weights and BN statistics are
   loaded with :func:`rsn_tf.convert.load_mmpose_weights`.
3. Each of the K steps is one call of the project's training step
   (:func:`rsn_tf.training.step.make_distributed_train_step`, the step both training loops run) on
   the fixture's stored batch (inputs, every level's targets and keypoint weights, in ``step_batch``
   order).

Two replays, both through that step:

* **float64 replica** (the same builders under Keras' float64 policy, same float32 initial state and
  data: the analogue of the fixture's ``model.double()`` run). It shows the *math* is mmpose's: its
  distance from mmpose's float32 numbers must be within 3x mmpose's own recorded float32-vs-float64
  distance, per step (losses), per tensor (step-0 gradients), for ``after1`` and ``after{K}``. Run
  eagerly (no second trace).
* **float32** (what training runs in): step-0 loss terms, OHKM keypoint losses and train-mode output
  tightly, ``after1`` with the README's sign-flip allowance, later steps, ``after{K}`` and the eval
  outputs as a trajectory. rsn_tf's float32 *gradients* are not compared element-tight with mmpose's
  float32 gradients: both are float32 approximations of the same function and differ where a
  pre-activation within float32 noise of 0 flips a ReLU (on the shared fixture one such element at
  head 3 moves the upsample path's step-0 gradients by up to 2.5% of a tensor's max); the float64
  replica checks the gradient function instead, and ``after1`` checks the float32 step's result.

Before a step, a train-mode forward of the same model (BatchNorm statistics restored afterwards) gives
the per-head loss terms and OHKM per-keypoint losses; the step's own returned loss must equal their
sum. The step-0 gradients are read back from the optimizer: after Adam's first step its first moment
is exactly ``(1 - beta_1) * (g + l2 * w)``.

Tolerances come from the fixture's ``sensitivity`` block (mmpose float32 vs its float64 replica), 3x,
with small floors where that noise is ~0 (the constants below); quantities the fixture records no
noise for (train-mode and eval outputs) take 3x the float64 replica's distance from mmpose's float32
result, i.e. mmpose's own float32 error measured through rsn_tf's replica. Each check's line names
its tolerance. With ``data_dir`` the fixture's people are also run through rsn_tf's input pipeline
and the batches compared with the stored inputs and targets.
"""
from __future__ import annotations

import re

import numpy as np

from rsn_tf.parity.core import Check, Fixture, data_files

NOISE = 3.0                   # tolerance = NOISE x the fixture's recorded float32-vs-float64 distance
LOSS_FLOOR = 1e-6             # relative, steps 0-2 (float32 summation order)
TRAJECTORY_LOSS = 1e-3        # relative, steps >= 3 (chaotic: OHKM near-ties, BN over tiny branches)
GRAD_FLOOR = 1e-5             # of each tensor's max
LR_TOL = 1e-6                 # relative (the schedule runs in float32)
AFTER1_ATOL = 1e-6            # weights and BN statistics after one step
TRAJECTORY_WEIGHTS = 2e-2     # absolute, after step K
EVAL_OUTPUT_REL = 2e-2        # final eval outputs, of max |ref| (trajectory)
OUTPUT_FLOOR = 1e-5           # step-0 train-mode output, of max |ref|

#: Run the float32 replay's training step as the traced ``tf.function`` (what ``rsn train`` runs) instead
#: of executing the same function eagerly. Same kernels and results to float32 rounding; tracing the
#: step costs ~40 s on 2 CPU cores, so the default suite runs it eagerly and a slow test traces it
#: (``scripts/mmpose_parity.py --graph``).
RUN_GRAPH = False


# ------------------------------------------------------------------------------------- manifest
def _torch_adam(fixture: Fixture) -> dict:
    opt = fixture.field("optimizer", "optim_wrapper_cfg", "optimizer")
    if opt.get("type") != "Adam":
        raise ValueError(f"{fixture.json_path}: optimizer type {opt.get('type')!r}; rsn_tf's mmpose mode runs Adam")
    if fixture.field("optimizer", "optim_wrapper_cfg", "clip_grad", default=None):
        raise ValueError(f"{fixture.json_path}: optim_wrapper clip_grad is not supported")
    if opt.get("amsgrad"):
        raise ValueError(f"{fixture.json_path}: Adam(amsgrad=True) is not supported")
    betas = opt.get("betas", (0.9, 0.999))
    return dict(name="adam", lr=float(fixture.field("optimizer", "base_lr", default=opt["lr"])),
                beta_1=float(betas[0]), beta_2=float(betas[1]), epsilon=float(opt.get("eps", 1e-8)),
                weight_decay=float(opt.get("weight_decay", 0.0)), weight_decay_mode="l2", epsilon_mode="torch")


def _schedule(fixture: Fixture) -> dict:
    sched = fixture.field("optimizer", "scheduler", default=None)
    scheds = [] if sched is None else (sched if isinstance(sched, list) else [sched])
    warm = [s for s in scheds if s.get("type") == "LinearLR"]
    others = [s for s in scheds if s.get("type") != "LinearLR"]
    if others or len(warm) > 1:
        raise ValueError(f"{fixture.json_path}: schedulers {[s.get('type') for s in scheds]}; only one per-iteration "
                         "LinearLR warm-up is supported in a train fixture")
    if not warm:
        return dict(name="constant", warmup_steps=0)
    w = warm[0]
    if w.get("by_epoch", True) or int(w.get("begin", 0)) != 0 or float(w.get("end_factor", 1.0)) != 1.0:
        raise ValueError(f"{fixture.json_path}: LinearLR must be by_epoch=False, begin=0, end_factor=1 (got {w})")
    return dict(name="constant", warmup_steps=int(w["end"]), warmup_factor=float(w["start_factor"]))


def _loss(fixture: Fixture, num_heads: int) -> tuple[dict, list[int]]:
    head = fixture.field("model_cfg", "head")
    losses = head["loss"] if isinstance(head["loss"], list) else [head["loss"]] * num_heads
    if len(losses) != num_heads:
        raise ValueError(f"{fixture.json_path}: {len(losses)} losses for {num_heads} heads")
    weights, topk = [], 8
    for i, l in enumerate(losses):
        want = "KeypointOHKMMSELoss" if i % 4 == 3 else "KeypointMSELoss"
        if l.get("type") != want or not l.get("use_target_weight", False):
            raise ValueError(f"{fixture.json_path}: head {i} loss {l}; rsn_tf's mmpose mode is {want}"
                             "(use_target_weight=True)")
        weights.append(float(l.get("loss_weight", 1.0)))
        topk = int(l.get("topk", topk)) if i % 4 == 3 else topk
    per_unit = weights[:4]
    if weights != per_unit * (num_heads // 4):
        raise ValueError(f"{fixture.json_path}: loss weights {weights} differ between stages")
    levels = [int(v) for v in head.get("level_indices", range(num_heads))]
    return dict(mode="mmpose", topk=topk, head_weights=per_unit), levels


def build_experiment(fixture: Fixture):
    """(ExperimentConfig, normalised initial state_dict, level_indices) of a train fixture."""
    from rsn_tf.convert import infer_config, normalize_state_dict
    from rsn_tf.training.config import ExperimentConfig

    init = {k[len("init."):]: fixture.get(k) for k in fixture.keys("init.")}
    if not init:
        raise KeyError(f"{fixture.npz_path}: no init.<key> arrays (a train fixture stores its initial state_dict)")
    state, _ = normalize_state_dict(init)
    w, h = fixture.field("model_cfg", "head", "decoder", "input_size")
    model_cfg = infer_config(state, (int(h), int(w)))
    norm = fixture.field("model_cfg", "backbone", "norm_cfg", default={}) or {}
    changes = {}
    if "momentum" in norm:
        changes["bn_momentum"] = 1.0 - float(norm["momentum"])
    if "eps" in norm:
        changes["bn_epsilon"] = float(norm["eps"])
    pre = fixture.field("model_cfg", "data_preprocessor")
    changes["preprocessing"] = {"color_order": "rgb" if pre.get("bgr_to_rgb") else "bgr",
                                "mean": list(pre["mean"]), "std": list(pre["std"])}
    model_dict = {**model_cfg.to_dict(), **changes}
    step_batch = [int(b) for b in fixture.get("step_batch")]
    batch_size = int(fixture.get(f"batch{step_batch[0]}_inputs").shape[0])
    loss, levels = _loss(fixture, model_cfg.num_heads)
    exp = ExperimentConfig.from_dict({
        "name": fixture.name,
        "model": {"preset": None, "config": model_dict},
        "data": {"format": "coco", "mode": "mmpose"},
        "train": {"batch_size": batch_size, "epochs": 1, "steps_per_epoch": len(step_batch), "validation_freq": 0,
                  "optimizer": _torch_adam(fixture), "schedule": _schedule(fixture), "loss": loss,
                  "distribution": "none"},
    }, source=fixture.json_path)
    return exp, state, levels


# ------------------------------------------------------------------------------------- running
def _batches(fixture: Fixture, levels: list[int], dtype="float32"):
    """Per step: (images NHWC, targets dict) from the stored batches (level order = head order)."""
    out = []
    for b in (int(v) for v in fixture.get("step_batch")):
        images = fixture.get(f"batch{b}_inputs").transpose(0, 2, 3, 1).astype(dtype)
        heatmaps = fixture.get(f"batch{b}_heatmaps")[:, levels].transpose(0, 1, 3, 4, 2).astype(dtype)
        weights = fixture.get(f"batch{b}_keypoint_weights")[:, levels].astype(dtype)
        out.append((images, {"heatmaps": heatmaps, "weights": weights, "visible": weights[:, 0]}))
    return out


def replay(fixture: Fixture, dtype: str = "float32", graph: bool = True, terms_steps=None,
           eval_state: dict | None = None) -> dict:
    """Run the fixture's K steps through rsn_tf's training step; returns everything the checks compare.

    Args:
      dtype: ``"float32"`` (what training runs in) or ``"float64"``: the same model, optimizer and
        step built under Keras' float64 policy, the analogue of the fixture's ``model.double()``
        replica (same float32 initial state and data).
      graph: run the step as the ``tf.function`` it is (``False``: the same function executed
        eagerly, ``tf.config.run_functions_eagerly``; identical kernels, no tracing cost).
      terms_steps: steps before which a separate train-mode forward (BN statistics restored) gives
        the per-head loss terms and OHKM keypoint losses (default: all).
      eval_state: also run the eval-mode forward of a model holding this mmpose state dict (e.g. the
        fixture's ``after{K}``) on ``batch0_inputs``.

    Returns: ``exp``; ``lr`` [K]; ``loss_terms`` {step: [L]} (batch means, head weights applied);
    ``step_loss`` [K] (what the step returned); ``ohkm`` {step: [S, B, K_kpt]}; ``step0_outputs`` (list
    of [B, h, w, K]); ``grad0`` {key: torch-layout array}; ``after1``/``final`` {key: array} (mmpose
    state-dict keys, weights and BN statistics); ``iterations``; ``final_eval`` (list of [B, h, w, K]
    on ``batch0_inputs``); with ``eval_state`` also ``state_eval``.
    """
    import keras
    import tensorflow as tf

    from rsn_tf.convert import load_mmpose_weights, mmpose_variables, normalize_state_dict, to_mmpose_state_dict
    from rsn_tf.losses import RSNLoss, ohkm_keypoint_losses, rsn_loss_terms
    from rsn_tf.model import build_rsn
    from rsn_tf.training.step import make_distributed_train_step
    from rsn_tf.training.optimizer import build_optimizer

    exp, state, levels = build_experiment(fixture)
    tcfg = exp.train
    batches = _batches(fixture, levels, dtype)
    terms_steps = set(range(len(batches)) if terms_steps is None else terms_steps)
    previous_policy = keras.mixed_precision.global_policy().name
    previous_eager = tf.config.functions_run_eagerly()
    keras.mixed_precision.set_global_policy(dtype)
    tf.config.run_functions_eagerly(not graph)
    try:
        model = build_rsn(exp.model_config(), metadata={"parity_fixture": fixture.name})
        load_mmpose_weights(model, state)
        optimizer = build_optimizer(tcfg, tcfg.steps_per_epoch)
        # the one training step of `rsn train` (fit and multi-worker), with its Keras loss
        step = make_distributed_train_step(tf.distribute.get_strategy(), model, optimizer,
                                           RSNLoss(tcfg.loss, dtype=dtype))
        ds = tf.data.Dataset.from_tensor_slices((np.stack([b[0] for b in batches]),
                                                 {k: np.stack([b[1][k] for b in batches]) for k in batches[0][1]}))
        iterator = iter(ds)
        ohkm_heads = [i for i in range(len(model.outputs)) if i % 4 == 3]
        out = {"exp": exp, "lr": [], "loss_terms": {}, "step_loss": [], "ohkm": {}}
        for k, (images, targets) in enumerate(batches):
            out["lr"].append(float(keras.ops.convert_to_numpy(optimizer.learning_rate)))
            if k in terms_steps:
                saved = [v.numpy() for v in model.non_trainable_variables]
                outputs = model(images, training=True)
                for v, value in zip(model.non_trainable_variables, saved):
                    v.assign(value)
                terms = rsn_loss_terms(outputs, targets, tcfg.loss)
                out["loss_terms"][k] = np.array([float(tf.reduce_mean(t)) for t in terms])
                out["ohkm"][k] = np.stack([ohkm_keypoint_losses(outputs[i], targets["heatmaps"][:, i],
                                                                targets["weights"][:, i], weight_inside=True).numpy()
                                           for i in ohkm_heads])
                if k == 0:
                    out["step0_outputs"] = [o.numpy() for o in outputs]
            out["step_loss"].append(float(step(iterator)))
            if k == 0:
                out["grad0"] = _gradients_from_first_moment(model, optimizer, state, tcfg.optimizer, mmpose_variables)
                out["after1"] = dict(to_mmpose_state_dict(model, num_batches_tracked=False))
        out["iterations"] = int(optimizer.iterations.numpy())
        out["final"] = dict(to_mmpose_state_dict(model, num_batches_tracked=False))
        x0 = fixture.get("batch0_inputs").transpose(0, 2, 3, 1).astype(dtype)
        out["final_eval"] = [o.numpy() for o in model(x0, training=False)]
        if eval_state is not None:
            load_mmpose_weights(model, normalize_state_dict(eval_state)[0])
            out["state_eval"] = [o.numpy() for o in model(x0, training=False)]
    finally:
        keras.mixed_precision.set_global_policy(previous_policy)
        tf.config.run_functions_eagerly(previous_eager)
    out["lr"], out["step_loss"] = np.asarray(out["lr"], np.float64), np.asarray(out["step_loss"], np.float64)
    return out


def _gradients_from_first_moment(model, optimizer, state, opt_cfg, mmpose_variables) -> dict:
    """Step-0 gradients in torch layout: Adam's first moment after one step is (1 - beta_1) * (g + l2 * w0)."""
    if not hasattr(optimizer, "first_moment"):
        raise ValueError(f"{type(optimizer).__name__} has no first_moment(): the gradient read-back needs AdamL2")
    trainable = {id(v) for v in model.trainable_variables}
    grads = {}
    for key, var, perm in mmpose_variables(model):
        if id(var) not in trainable:
            continue
        g = np.asarray(optimizer.first_moment(var).numpy(), np.float64) / (1.0 - opt_cfg.beta_1)
        if perm:
            g = g.transpose(np.argsort(perm))
        if opt_cfg.weight_decay:
            g = g - opt_cfg.weight_decay * np.asarray(state[key], np.float64)
        grads[key] = g
    return grads


# ------------------------------------------------------------------------------------- checks
def _rel(a, b) -> float:
    """max |a - b| / |b| over elements (b: the reference)."""
    b = np.asarray(b, np.float64)
    return float(np.max(np.abs(np.asarray(a, np.float64) - b) / np.maximum(np.abs(b), 1e-30)))


def _rel_to_max(a, b) -> float:
    """max |a - b| / max |b|."""
    b = np.asarray(b, np.float64)
    scale = float(np.abs(b).max())
    return float(np.abs(np.asarray(a, np.float64) - b).max() / scale) if scale else float(np.abs(a).max())


def _loss_noise(fixture: Fixture, k_steps: int) -> list[float]:
    noise = fixture.field("sensitivity", "float64_replica", "loss_components_rel_diff_per_step", default=None)
    return [float(v) for v in noise] if noise else [0.0] * k_steps


def _fp64_loss_check(fixture: Fixture, r64: dict, noise: list[float]) -> list[Check]:
    """Per step: the loss terms where the replay computed them (steps 0-2), else the step's total."""
    ref = np.asarray(fixture.get("loss_components"), np.float64)
    total = ref.sum(1)
    rels = [(_rel(r64["loss_terms"][k], ref[k]) if k in r64["loss_terms"]
             else abs(r64["step_loss"][k] - total[k]) / abs(total[k])) for k in range(len(r64["step_loss"]))]
    tols = [max(NOISE * noise[k], LOSS_FLOOR) for k in range(len(rels))]
    ratios = [r / t for r, t in zip(rels, tols)]
    worst = int(np.argmax(ratios))
    return [Check("fp64.loss_terms", rels[worst], tols[worst], unit="rel", passed=all(x <= 1 for x in ratios),
                  source=f"per step max({NOISE:g}x fp64 noise, {LOSS_FLOOR:g})",
                  detail=f"steps 0-{len(rels) - 1} (terms for {sorted(r64['loss_terms'])}, totals after): "
                         + ", ".join(f"{r:.2g}" for r in rels) + " | mmpose's own fp32-vs-fp64: "
                         + ", ".join(f"{n:.2g}" for n in noise[:len(rels)]) + f"; worst ratio at step {worst}")]


def _grad_checks(fixture: Fixture, grads: dict, prefix: str) -> list[Check]:
    per_key = fixture.field("sensitivity", "float64_replica", "grad0", "rel_to_tensor_max_per_key", default={}) or {}
    groups = {"head": [], "upsample": [], "backbone": []}
    names = [k[len("grad0."):] for k in fixture.keys("grad0.")]
    missing = [k for k in names if k not in grads]
    extra = [k for k in grads if not fixture.has(f"grad0.{k}")]
    for key in names:
        if key not in grads:
            continue
        rel = _rel_to_max(grads[key], fixture.get(f"grad0.{key}"))
        tol = max(NOISE * float(per_key.get(key, 0.0)), GRAD_FLOOR)
        group = "head" if key.startswith("head.") else "upsample" if ".upsample." in key else "backbone"
        groups[group].append((rel / tol, rel, tol, float(per_key.get(key, 0.0)), key))
    checks = []
    for group, rows in groups.items():
        if not rows:
            continue
        ratio, rel, tol, noise, key = max(rows)
        ratios = np.array([r[0] for r in rows]) * NOISE  # in units of the recorded distance
        checks.append(Check(f"{prefix}step0.grad.{group}", rel, tol, unit="rel to tensor max",
                            source=f"per tensor: max({NOISE:g}x fp64 distance, {GRAD_FLOOR:g})",
                            passed=all(r[1] <= r[2] for r in rows),
                            detail=f"{len(rows)} tensors; distance / mmpose's own fp32-vs-fp64 distance: median "
                                   f"{float(np.median(ratios)):.2f}, worst {ratio * NOISE:.2f} at {key} "
                                   f"(fp64 {noise:.2g})"))
    if missing or extra:
        checks.append(Check(f"{prefix}step0.grad.keys", float(len(missing) + len(extra)), 0.0, unit="tensors",
                            detail=f"missing {missing[:3]}, extra {extra[:3]}"))
    return checks


def _state_diff(fixture: Fixture, prefix: str, state: dict):
    """(weight diffs, BN-statistics diffs, missing keys): {key: ours - ref (float64)}."""
    weights, stats, missing = {}, {}, []
    for full in fixture.keys(prefix):
        key = full[len(prefix):]
        if key.endswith("num_batches_tracked"):
            continue
        if key not in state:
            missing.append(key)
            continue
        d = np.asarray(state[key], np.float64) - np.asarray(fixture.get(full), np.float64)
        (stats if key.endswith(("running_mean", "running_var")) else weights)[key] = d
    return weights, stats, missing


def _after1_checks(fixture: Fixture, state: dict, prefix: str) -> list[Check]:
    weights, stats, missing = _state_diff(fixture, "after1.", state)
    lr0 = float(fixture.get("lr")[0])
    flips_ref = fixture.field("sensitivity", "float64_replica", "after1", "n_elements_diff_above_1e_6", default=None)
    flat = np.concatenate([np.abs(d).ravel() for d in weights.values()])
    allowed = int(NOISE * flips_ref) if flips_ref is not None else int(1e-3 * flat.size)
    above = flat > AFTER1_ATOL
    bound = 2 * lr0 * 1.001 + AFTER1_ATOL
    rest = float(flat[~above].max()) if (~above).any() else 0.0
    checks = [Check(f"{prefix}after1.weights", float(flat.max()), bound, unit="abs",
                    source=f"<= 2*lr[0] = {2 * lr0:.3g}, at most {allowed} elements above {AFTER1_ATOL:g} "
                           f"({NOISE:g}x the fp64 replica's {flips_ref})",
                    passed=bool(flat.max() <= bound and above.sum() <= allowed),
                    detail=f"{int(above.sum())} of {flat.size} elements above {AFTER1_ATOL:g} (Adam's first step is "
                           f"~lr*sign(g): tiny gradients whose sign flips); the others within {rest:.2g}")]
    rel = {k: float(np.abs(d).max() / max(1.0, float(np.abs(fixture.get("after1." + k)).max())))
           for k, d in stats.items()}
    if rel:
        key = max(rel, key=rel.get)
        checks.append(Check(f"{prefix}after1.bn_stats", rel[key], AFTER1_ATOL, unit="abs (rel above 1)",
                            source=f"atol {AFTER1_ATOL:g}",
                            detail=f"{len(stats)} running mean/var tensors (PyTorch's unbiased update); worst {key}"))
    if missing:
        checks.append(Check(f"{prefix}after1.keys", float(len(missing)), 0.0, unit="tensors",
                            detail=f"missing {missing[:3]}"))
    return checks


def _eval_outputs(fixture: Fixture, outputs: list) -> dict:
    """{fixture key: rel-to-max distance} for every stored ``final_eval_output_s{s}_u{u}``."""
    keys = [k for k in fixture.keys("final_eval_output_") if re.fullmatch(r"final_eval_output_s\d+_u\d+", k)]
    out = {}
    for key in keys:
        s, u = (int(v) for v in re.findall(r"\d+", key))
        out[key] = _rel_to_max(outputs[s * 4 + u], fixture.get(key).transpose(0, 2, 3, 1))
    return out


def _data_checks(fixture: Fixture, data_dir: str) -> list[Check]:
    """The stored batches against rsn_tf's own input pipeline on the same people."""
    from rsn_tf.parity.pipeline import crop_check, pipeline_settings, run_rsn_tf_pipeline, target_checks

    settings = pipeline_settings(fixture)
    data_files(fixture, data_dir, [settings["ann_file"]] + [p["img_file"] for p in settings["people"]])
    ours = run_rsn_tf_pipeline(settings, data_dir, with_eval=False)
    if not ours["found"].all():
        return [Check("data.instances", float((~ours["found"]).sum()), 0.0, unit="people missing")]
    batches = [[int(i) for i in b] for b in fixture.field("data", "batches")]
    rows = [i for b in batches for i in b]
    stored = range(len(batches))
    checks = []
    if fixture.has("batch0_inputs_uint8_bgr"):
        crops = np.concatenate([fixture.get(f"batch{b}_inputs_uint8_bgr") for b in stored]).transpose(0, 2, 3, 1)
        checks.append(crop_check("data.crops", ours["crop"][rows], crops, settings["opencv"]))
    inputs = np.concatenate([fixture.get(f"batch{b}_inputs") for b in stored]).transpose(0, 2, 3, 1)
    checks.append(Check("data.inputs", float(np.abs(ours["inputs"][rows] - inputs).max()), 1e-5, unit="abs",
                        source="rsn_tf's tf.data batch vs the stored step inputs"))
    hm = np.concatenate([fixture.get(f"batch{b}_heatmaps") for b in stored])
    kw = np.concatenate([fixture.get(f"batch{b}_keypoint_weights") for b in stored])
    checks += target_checks("data.", ours["heatmaps"][rows], ours["weights"][rows], hm, kw)
    return checks


def check(fixture: Fixture, data_dir: str | None = None) -> list[Check]:
    k_steps = len(fixture.get("step_batch"))
    checks = _data_checks(fixture, data_dir) if fixture.field("data", "people", default=None) else []
    final_key = f"after{k_steps}."
    final_state = {k[len(final_key):]: fixture.get(k) for k in fixture.keys(final_key)} or None
    noise = _loss_noise(fixture, k_steps)
    ref_loss = np.asarray(fixture.get("loss_components"), np.float64)

    # float64 replica (the math, without rsn_tf's own float32 rounding), executed eagerly
    r64 = replay(fixture, "float64", graph=False, terms_steps=range(min(3, k_steps)), eval_state=final_state)
    checks += _fp64_loss_check(fixture, r64, noise)
    if fixture.has("ohkm_keypoint_losses"):
        ref_o = np.asarray(fixture.get("ohkm_keypoint_losses"), np.float64)
        ohkm64 = _rel_to_max(r64["ohkm"][0], ref_o[0])
        checks.append(Check("fp64.step0.ohkm_keypoint_losses", ohkm64, max(NOISE * noise[0], LOSS_FLOOR),
                            unit="rel to max", source=f"max({NOISE:g}x fp64 loss noise, {LOSS_FLOOR:g})"))
    checks += _grad_checks(fixture, r64["grad0"], "fp64.")
    checks += _after1_checks(fixture, r64["after1"], "fp64.")
    if final_state:
        weights, stats, _ = _state_diff(fixture, final_key, r64["final"])
        d = max(float(np.abs(v).max()) for v in list(weights.values()) + list(stats.values()))
        rec = fixture.field("sensitivity", "float64_replica", f"after{k_steps}", "max_abs", default=None)
        tol = NOISE * float(rec) if rec is not None else TRAJECTORY_WEIGHTS
        checks.append(Check(f"fp64.after{k_steps}.state", d, tol, unit="abs",
                            source=f"{NOISE:g}x the fp64 replica's {rec:.3g}" if rec is not None else "trajectory",
                            detail="weights and BN statistics after the last step"))

    # float32: what training runs in (the step traced as `rsn train` runs it with RUN_GRAPH)
    r32 = replay(fixture, "float32", graph=RUN_GRAPH, terms_steps=[0], eval_state=final_state)
    ref_lr = np.asarray(fixture.get("lr"), np.float64)
    checks.append(Check("lr", _rel(r32["lr"], ref_lr), LR_TOL, unit="rel",
                        source="float32 schedule; mmengine LinearLR per iteration",
                        detail=", ".join(f"{v:.5g}" for v in r32["lr"])))
    checks.append(Check("step0.loss_terms", _rel(r32["loss_terms"][0], ref_loss[0]),
                        max(NOISE * noise[0], LOSS_FLOOR), unit="rel",
                        source=f"max({NOISE:g}x fp64 noise {noise[0]:.2g}, {LOSS_FLOOR:g})",
                        detail="ours " + ", ".join(f"{v:.6g}" for v in r32["loss_terms"][0]) +
                               " | mmpose " + ", ".join(f"{v:.6g}" for v in ref_loss[0])))
    total = np.asarray(fixture.get("loss_total"), np.float64) if fixture.has("loss_total") else ref_loss.sum(1)
    consistency = max(abs(r["step_loss"][k] - r["loss_terms"][k].sum()) / abs(total[k])
                      for r in (r32, r64) for k in r["loss_terms"])
    checks.append(Check("step_loss.vs_terms", consistency, LOSS_FLOOR, unit="rel",
                        source="the training step's own loss = the sum of the per-head terms"))
    if fixture.has("ohkm_keypoint_losses"):
        tol = max(NOISE * ohkm64, LOSS_FLOOR)
        checks.append(Check("step0.ohkm_keypoint_losses", _rel_to_max(r32["ohkm"][0], ref_o[0]), tol,
                            unit="rel to max", source=f"max({NOISE:g}x the fp64 replica's {ohkm64:.2g}, {LOSS_FLOOR:g})"))
    if fixture.has("step0_train_output_s0_u3"):
        ref = fixture.get("step0_train_output_s0_u3").transpose(0, 2, 3, 1)
        d64 = _rel_to_max(r64["step0_outputs"][3], ref)
        checks.append(Check("step0.train_output_s0_u3", _rel_to_max(r32["step0_outputs"][3], ref),
                            max(NOISE * d64, OUTPUT_FLOOR), unit="rel to max",
                            source=f"max({NOISE:g}x the fp64 replica's {d64:.2g}, {OUTPUT_FLOOR:g})",
                            detail="train-mode forward (batch statistics) before any update"))
    if k_steps > 1:
        rels = [abs(r32["step_loss"][k] - total[k]) / abs(total[k]) for k in range(1, k_steps)]
        tols = [max(NOISE * noise[k], TRAJECTORY_LOSS) for k in range(1, k_steps)]
        worst = int(np.argmax(np.asarray(rels) / np.asarray(tols)))
        checks.append(Check(f"steps1-{k_steps - 1}.loss", rels[worst], tols[worst], unit="rel",
                            source=f"trajectory: max({NOISE:g}x fp64 noise, {TRAJECTORY_LOSS:g})",
                            passed=all(r <= t for r, t in zip(rels, tols)),
                            detail="per step " + ", ".join(f"{r:.2g}" for r in rels) + f"; worst at step {1 + worst}"))
    checks += _after1_checks(fixture, r32["after1"], "")
    if final_state:
        weights, stats, missing = _state_diff(fixture, final_key, r32["final"])
        rec = fixture.field("sensitivity", "float64_replica", f"after{k_steps}", "max_abs", default=None)
        tol = max(TRAJECTORY_WEIGHTS, NOISE * float(rec)) if rec is not None else TRAJECTORY_WEIGHTS
        for name, diffs in (("weights", weights), ("bn_stats", stats)):
            if diffs:
                key = max(diffs, key=lambda k: float(np.abs(diffs[k]).max()))
                checks.append(Check(f"after{k_steps}.{name}", float(np.abs(diffs[key]).max()), tol, unit="abs",
                                    source=f"trajectory: max({TRAJECTORY_WEIGHTS:g}, {NOISE:g}x fp64 "
                                           f"{float(rec or 0):.2g})", detail=f"{len(diffs)} tensors; worst {key}"))
        nbt = [int(np.max(fixture.get(k))) for k in fixture.keys(final_key) if k.endswith("num_batches_tracked")]
        if nbt:
            checks.append(Check("steps_run", float(abs(r32["iterations"] - max(nbt))), 0.0, unit="steps",
                                detail=f"optimizer iterations {r32['iterations']}, mmpose num_batches_tracked "
                                       f"{max(nbt)}"))
        ev32, ev64 = _eval_outputs(fixture, r32["state_eval"]), _eval_outputs(fixture, r64["state_eval"])
        if ev32:
            key = max(ev32, key=ev32.get)
            d64 = max(ev64.values())
            checks.append(Check(f"eval_forward.after{k_steps}", ev32[key], max(NOISE * d64, OUTPUT_FLOOR),
                                unit="rel to max", source=f"max({NOISE:g}x the fp64 replica's {d64:.2g}, "
                                                          f"{OUTPUT_FLOOR:g})",
                                detail=f"rsn_tf's eval forward on mmpose's after{k_steps} state; worst {key}"))
    traj32, traj64 = _eval_outputs(fixture, r32["final_eval"]), _eval_outputs(fixture, r64["final_eval"])
    if traj32:
        key = max(traj32, key=traj32.get)
        d64 = max(traj64.values())
        checks.append(Check(f"after{k_steps}.eval_outputs", traj32[key], max(NOISE * d64, EVAL_OUTPUT_REL),
                            unit="rel to max", source=f"trajectory: max({NOISE:g}x the fp64 replica's {d64:.2g}, "
                                                      f"{EVAL_OUTPUT_REL:g})",
                            detail=f"rsn_tf's own trained model on batch0_inputs; worst {key} (the fp64 replica is "
                                   f"{d64:.2g} from mmpose's float32 run: BN statistics over 4-16-channel branches "
                                   "make eval outputs chaotic)"))
    return checks
