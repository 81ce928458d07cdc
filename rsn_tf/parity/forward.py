"""``forward`` fixtures: a mmpose state_dict, an input, and every head's eval-mode output.

The weights are converted with :func:`rsn_tf.convert.from_mmpose` (architecture inferred from the
keys, so any stages/steps/widths the converter accepts work), the stored input (NCHW, already
normalised) is run through the Keras model, and each stored head ``output_s{s}_u{u}`` is compared.

Tolerance: 3x the fixture's own float32-vs-float64 distance (``verification.fp32_vs_fp64_max_abs_diff``,
absolute, on the heatmap scale); a fixture without that record falls back to 1e-4 x max|ref|.
"""
from __future__ import annotations

import re

import numpy as np

from rsn_tf.parity.core import Check, Fixture

NOISE_FACTOR = 3.0
FALLBACK_REL = 1e-4


def check(fixture: Fixture, data_dir: str | None = None) -> list[Check]:
    from rsn_tf.convert import from_mmpose

    model = from_mmpose(fixture.npz_path)
    x = fixture.get("input").transpose(0, 2, 3, 1)
    outs = model.predict(x, verbose=0, batch_size=len(x))
    outs = outs if isinstance(outs, (list, tuple)) else [outs]
    head_keys = sorted((k for k in fixture.keys("output_s") if re.fullmatch(r"output_s\d+_u\d+", k)),
                       key=lambda k: tuple(int(v) for v in re.findall(r"\d+", k)))
    if not head_keys:
        raise ValueError(f"{fixture.npz_path}: no output_s{{s}}_u{{u}} arrays (a forward fixture stores every head)")
    if len(head_keys) != len(outs):
        return [Check("heads.count", float(abs(len(outs) - len(head_keys))), 0.0, unit="heads",
                      detail=f"model has {len(outs)} heads, fixture {len(head_keys)}")]
    noise = (fixture.manifest.get("verification") or {}).get("fp32_vs_fp64_max_abs_diff")
    checks = []
    for key, out in zip(head_keys, outs):
        ref = fixture.get(key).transpose(0, 2, 3, 1)
        if out.shape != ref.shape:
            checks.append(Check(key, float("inf"), 0.0, passed=False,
                                detail=f"shape {tuple(out.shape)} vs mmpose {tuple(ref.shape)}"))
            continue
        diff = float(np.abs(out - ref).max())
        scale = float(np.abs(ref).max())
        if noise:
            tol, src = NOISE_FACTOR * float(noise), f"{NOISE_FACTOR:g}x mmpose fp32-vs-fp64 {float(noise):.2g}"
        else:
            tol, src = FALLBACK_REL * scale, f"{FALLBACK_REL:g} x max|ref|"
        checks.append(Check(key, diff, tol, unit="abs", source=src,
                            detail=f"max|ref| {scale:.3g}, ratio {diff / scale if scale else 0.0:.2g}"))
    return checks
