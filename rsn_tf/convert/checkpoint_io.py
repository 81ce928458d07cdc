"""Read a checkpoint's state dict as ``{name: numpy array}`` from ``.pth`` (torch) or ``.npz`` files.

``.pth`` files are read by :mod:`rsn_tf.convert.torch_pickle` without PyTorch. If that reader cannot
handle a file (an exotic torch format) and PyTorch is installed (``pip install rsn_tf[torch]``), we
fall back to ``torch.load(weights_only=True)``.
"""
from __future__ import annotations

import os
import zipfile

import numpy as np

from rsn_tf.convert.torch_pickle import load as load_torch_pickle

TORCH_HINT = "install PyTorch to read it (pip install rsn_tf[torch]) or save the state dict as .npz"


class CheckpointError(ValueError):
    """The file is missing, unreadable, or holds no state dict."""


def load_state_dict(path: str) -> tuple[dict[str, np.ndarray], dict]:
    """``(state_dict, info)`` from a checkpoint file.

    state_dict: parameter/buffer name -> array, in file order (torch layouts, e.g. conv OIHW).
    info: ``{"format": "pth"|"pth-legacy"|"npz", "ignored": [names of non-state-dict arrays]}``.

    A ``.pth`` may hold the state dict itself or a dict with ``state_dict`` (mmpose, mmengine) or
    ``model``. In an ``.npz``, names without a dot (``input``, ``output_s0_u3``...) are not module
    parameters (a state-dict key is always ``module.param``): they are skipped and listed in ``ignored``.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise CheckpointError(f"checkpoint not found: {path}")
    if path.lower().endswith(".npz"):
        return _load_npz(path)
    obj, fmt = _load_torch(path)
    return _state_dict_of(obj, path), {"format": fmt, "ignored": []}


def _load_npz(path):
    try:
        with np.load(path, allow_pickle=False) as z:
            names = list(z.files)
            sd = {k: z[k] for k in names if "." in k}
    except (ValueError, OSError, zipfile.BadZipFile) as e:
        raise CheckpointError(f"{path}: not a readable .npz file ({e})") from None
    if not sd:
        raise CheckpointError(f"{path}: no state-dict arrays (names like 'backbone.x.weight') in this .npz")
    return sd, {"format": "npz", "ignored": [k for k in names if "." not in k]}


def _load_torch(path):
    fmt = "pth" if zipfile.is_zipfile(path) else "pth-legacy"
    size = os.path.getsize(path)
    if size == 0:
        raise CheckpointError(f"{path}: empty file (expected a PyTorch checkpoint)")
    with open(path, "rb") as f:
        head = f.read(4)
    if fmt == "pth-legacy" and head == b"PK\x03\x04":
        raise CheckpointError(f"{path}: truncated or damaged PyTorch checkpoint: it starts as a zip-format torch "
                              f"file but its zip directory is missing ({size:,} bytes); download it again")
    try:
        return load_torch_pickle(path), fmt
    except Exception as e:  # any failure of the pure reader: a non-checkpoint, or a format it lacks
        first_error = str(e).replace(f"{path}: ", "")
        if first_error.startswith("truncated"):
            raise CheckpointError(f"{path}: {first_error} ({size:,} bytes); download it again") from None
    try:
        import torch
    except ImportError:
        raise CheckpointError(f"{path}: could not read it as a PyTorch checkpoint ({first_error}); "
                              f"if it is one, {TORCH_HINT}") from None
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises many types for a non-checkpoint file
        # torch's own message runs to many lines of advice; its first line says what failed
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise CheckpointError(f"{path}: not a PyTorch checkpoint ({first_error}; torch.load: {reason})") from None
    return _tensors_to_numpy(obj), "pth-torch"


def _tensors_to_numpy(obj):
    if hasattr(obj, "detach") and hasattr(obj, "numpy"):
        t = obj.detach().cpu()
        return t.float().numpy() if str(t.dtype) == "torch.bfloat16" else t.numpy()
    if isinstance(obj, dict):
        return {k: _tensors_to_numpy(v) for k, v in obj.items()}
    return obj


def _state_dict_of(obj, path):
    if not isinstance(obj, dict):
        raise CheckpointError(f"{path}: expected a dict (a checkpoint or a state dict), found {type(obj).__name__}")
    for key in ("state_dict", "model"):
        if key in obj and isinstance(obj[key], dict):
            obj = obj[key]
            break
    sd = {k: v for k, v in obj.items() if isinstance(v, np.ndarray)}
    if not sd or len(sd) != len(obj):
        raise CheckpointError(f"{path}: no state_dict found (top-level keys: {sorted(map(str, obj))[:10]})")
    return dict(sd)
