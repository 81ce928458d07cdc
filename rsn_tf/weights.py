"""One model loader for every ``--weights``: ``.keras`` files, weights + config, mmpose checkpoints, presets.

:func:`load_model` takes

* a ``.keras`` file (carries its config, metadata and recipe);
* a ``.weights.h5`` file together with a config (a :class:`~rsn_tf.model.ModelConfig`, a dict, a
  preset name such as ``rsn18`` or a YAML/JSON file);
* an mmpose checkpoint (``.pth``; or its state dict as ``.npz``), converted on the fly;
* a **named preset with weights**, keras-hub style: ``mmpose/rsn18-coco``, ``mmpose/rsn50-coco``,
  ``mmpose/2xrsn50-coco``, ``mmpose/3xrsn50-coco`` (:data:`WEIGHTS_PRESETS`), the public checkpoints
  listed in mmpose's ``configs/body_2d_keypoint/topdown_heatmap/coco/rsn_coco.yml``.

A preset's first use downloads its checkpoint into the cache folder ``$RSN_TF_HOME/weights``
(default ``~/.cache/rsn_tf/weights``), checks that the file's sha256 starts with the prefix its name
carries (mmpose names files ``...-<sha256[:8]>_<date>.pth``), converts it and keeps the ``.keras``
beside it; later uses read the ``.keras`` and need no network. ``RSN_TF_WEIGHTS_URL`` replaces the
``https://download.openmmlab.com/`` base of the URLs (mirrors, proxies, tests). A failed download
(no network, an interrupted transfer, a wrong hash) raises :class:`WeightsError` with one line that
says how to pass a local file instead, and leaves nothing half-written in the cache.

The accuracies in :data:`WEIGHTS_PRESETS` are **mmpose's numbers** (its model zoo's COCO val2017
results with its person detections), not measured by rsn_tf.
"""
from __future__ import annotations

import dataclasses
import hashlib
import os
import re
import sys
import tempfile
import zipfile

MMPOSE_BASE_URL = "https://download.openmmlab.com/"
#: Environment variables: the cache root and the replacement for :data:`MMPOSE_BASE_URL`.
HOME_ENV, URL_ENV = "RSN_TF_HOME", "RSN_TF_WEIGHTS_URL"
DEFAULT_HOME = os.path.join("~", ".cache", "rsn_tf")
_HASH_IN_NAME = re.compile(r"-([0-9a-f]{8,64})_\d{8}\.pth$")


class WeightsError(ValueError):
    """A model reference could not be resolved or its weights could not be fetched."""


@dataclasses.dataclass(frozen=True)
class WeightsPreset:
    """A named checkpoint.

    Attributes:
      name: e.g. ``"mmpose/rsn18-coco"``.
      architecture: the :mod:`rsn_tf.model` preset it converts to (checked by the strict load).
      url: where the checkpoint is published; its file name ends in ``-<sha256 prefix>_<date>.pth``.
      config: the mmpose config that trained it.
      mmpose_metrics: mmpose's COCO val2017 results for it (fractions), as its ``rsn_coco.yml`` lists them.
      input_size: crop (H, W).
    """

    name: str
    architecture: str
    url: str
    config: str
    mmpose_metrics: dict
    input_size: tuple[int, int] = (256, 192)

    @property
    def filename(self) -> str:
        return self.url.rsplit("/", 1)[-1]

    @property
    def sha256_prefix(self) -> str:
        m = _HASH_IN_NAME.search(self.filename)
        if not m:
            raise WeightsError(f"preset {self.name}: file name {self.filename!r} carries no sha256 prefix")
        return m.group(1)

    def download_url(self) -> str:
        """:attr:`url` with ``$RSN_TF_WEIGHTS_URL`` in place of ``https://download.openmmlab.com/`` when set."""
        base = os.environ.get(URL_ENV)
        if base and self.url.startswith(MMPOSE_BASE_URL):
            return base.rstrip("/") + "/" + self.url[len(MMPOSE_BASE_URL):]
        return self.url

    def accuracy_line(self) -> str:
        """One line with mmpose's accuracy for this checkpoint, marked as mmpose's number."""
        m = self.mmpose_metrics
        parts = ", ".join(f"{k} {100 * v:.1f}" for k, v in m.items() if k != "AP")
        return (f"{self.name}: {self.architecture} {self.input_size[0]}x{self.input_size[1]}, COCO val2017 AP "
                f"{100 * m['AP']:.1f} ({parts}) -- mmpose's reported number (its detections, flip test), "
                "not measured by rsn_tf")


_ZOO = MMPOSE_BASE_URL + "mmpose/v1/body_2d_keypoint/topdown_heatmap/coco/"
_CONFIGS = "configs/body_2d_keypoint/topdown_heatmap/coco/"

#: The public mmpose RSN checkpoints (mmpose 1.x ``rsn_coco.yml``) and mmpose's results for them.
WEIGHTS_PRESETS: dict[str, WeightsPreset] = {p.name: p for p in (
    WeightsPreset("mmpose/rsn18-coco", "rsn18", _ZOO + "td-hm_rsn18_8xb32-210e_coco-256x192-9049ed09_20221013.pth",
                  _CONFIGS + "td-hm_rsn18_8xb32-210e_coco-256x192.py",
                  {"AP": 0.704, "AP50": 0.887, "AP75": 0.781, "AR": 0.773, "AR50": 0.927}),
    WeightsPreset("mmpose/rsn50-coco", "rsn50", _ZOO + "td-hm_rsn50_8xb32-210e_coco-256x192-c35901d5_20221013.pth",
                  _CONFIGS + "td-hm_rsn50_8xb32-210e_coco-256x192.py",
                  {"AP": 0.724, "AP50": 0.894, "AP75": 0.799, "AR": 0.790, "AR50": 0.935}),
    WeightsPreset("mmpose/2xrsn50-coco", "2xrsn50",
                  _ZOO + "td-hm_2xrsn50_8xb32-210e_coco-256x192-9ede341e_20221013.pth",
                  _CONFIGS + "td-hm_2xrsn50_8xb32-210e_coco-256x192.py",
                  {"AP": 0.748, "AP50": 0.900, "AP75": 0.821, "AR": 0.810, "AR50": 0.939}),
    WeightsPreset("mmpose/3xrsn50-coco", "3xrsn50",
                  _ZOO + "td-hm_3xrsn50_8xb32-210e_coco-256x192-c3e3c4fe_20221013.pth",
                  _CONFIGS + "td-hm_3xrsn50_8xb32-210e_coco-256x192.py",
                  {"AP": 0.750, "AP50": 0.900, "AP75": 0.824, "AR": 0.814, "AR50": 0.941}),
)}

KERAS_SUFFIX = ".keras"
CHECKPOINT_SUFFIXES = (".pth", ".pt", ".npz")
WEIGHTS_SUFFIX = ".h5"
ACCEPTED = ("a .keras file, a .weights.h5 file with a config, an mmpose checkpoint (.pth/.npz) or a named preset ("
            + ", ".join(WEIGHTS_PRESETS) + ")")


# ------------------------------------------------------------------------------------------ cache
def cache_dir() -> str:
    """The weights cache: ``$RSN_TF_HOME/weights`` (default ``~/.cache/rsn_tf/weights``)."""
    return os.path.join(os.path.expanduser(os.environ.get(HOME_ENV) or DEFAULT_HOME), "weights")


def get_preset(name: str) -> WeightsPreset:
    try:
        return WEIGHTS_PRESETS[name]
    except KeyError:
        raise WeightsError(f"unknown weights preset {name!r}; presets: {', '.join(WEIGHTS_PRESETS)}") from None


def preset_paths(name: str) -> tuple[str, str]:
    """(checkpoint path, converted ``.keras`` path) of a preset in the cache."""
    p = get_preset(name)
    ckpt = os.path.join(cache_dir(), p.filename)
    return ckpt, os.path.splitext(ckpt)[0] + KERAS_SUFFIX


def _local_hint(preset: WeightsPreset, ckpt_path: str) -> str:
    return (f"to use a copy you have, pass its path instead (--weights /path/to/{preset.filename}, or "
            f"rsn_tf.load_model('/path/to/{preset.filename}')), or put it at {ckpt_path}")


def file_sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def download(url: str, dest: str, sha256_prefix: str | None = None, hint: str = "", progress: bool = True,
             timeout: float = 60.0) -> str:
    """Download ``url`` to ``dest`` atomically, checking the sha256 prefix when given. Returns ``dest``.

    The bytes go to a temporary file beside ``dest``, renamed over it only when complete and verified;
    on any failure the temporary file is removed and :class:`WeightsError` names the URL, what went
    wrong and ``hint``.
    """
    import http.client
    import urllib.error
    import urllib.request

    hint = f"; {hint}" if hint else ""
    os.makedirs(os.path.dirname(os.path.abspath(dest)), exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(dest) + ".", suffix=".part",
                               dir=os.path.dirname(os.path.abspath(dest)))
    h = hashlib.sha256()
    got, total = 0, None
    try:
        with os.fdopen(fd, "wb") as out:
            try:
                with urllib.request.urlopen(url, timeout=timeout) as resp:
                    length = resp.headers.get("Content-Length")
                    total = int(length) if length and length.isdigit() else None
                    bar = _progress(total, os.path.basename(dest)) if progress else None
                    try:
                        while True:
                            block = resp.read(1 << 20)
                            if not block:
                                break
                            out.write(block)
                            h.update(block)
                            got += len(block)
                            if bar is not None:
                                bar.update(len(block))
                    finally:
                        if bar is not None:
                            bar.close()
            except urllib.error.HTTPError as e:
                raise WeightsError(f"cannot download {url}: HTTP {e.code} {e.reason}{hint}") from None
            except urllib.error.URLError as e:
                raise WeightsError(f"cannot download {url}: no connection ({e.reason}){hint}") from None
            except (http.client.IncompleteRead, ConnectionError, TimeoutError, OSError) as e:
                raise WeightsError(f"download of {url} interrupted after {got:,} bytes"
                                   f"{'' if total is None else f' of {total:,}'} ({type(e).__name__}: {e}){hint}") from None
        if total is not None and got != total:
            raise WeightsError(f"download of {url} interrupted: got {got:,} of {total:,} bytes{hint}")
        digest = h.hexdigest()
        if sha256_prefix and not digest.startswith(sha256_prefix):
            raise WeightsError(f"download of {url} has sha256 {digest[:len(sha256_prefix)]}..., expected "
                               f"{sha256_prefix}... (a corrupt or different file; nothing was kept){hint}")
        os.replace(tmp, dest)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return dest


def _progress(total, name):
    try:
        from tqdm import tqdm
    except ImportError:  # pragma: no cover - tqdm is a dependency
        return None
    return tqdm(total=total, unit="B", unit_scale=True, desc=f"downloading {name}", file=sys.stderr,
                disable=not sys.stderr.isatty())


def fetch_preset(name: str, progress: bool = True) -> str:
    """The preset's checkpoint in the cache (downloaded and hash-checked on first use). Returns its path."""
    p = get_preset(name)
    ckpt, _ = preset_paths(name)
    if os.path.exists(ckpt):
        return ckpt
    return download(p.download_url(), ckpt, p.sha256_prefix, hint=_local_hint(p, ckpt), progress=progress)


def preset_model_path(name: str, progress: bool = True) -> str:
    """The preset's converted ``.keras`` in the cache: converted (and kept) on first use, then reused offline."""
    from rsn_tf.io_utils import atomic_path

    p = get_preset(name)
    ckpt, keras_path = preset_paths(name)
    if os.path.exists(keras_path):
        return keras_path
    fetch_preset(name, progress)
    digest = file_sha256(ckpt)
    if not digest.startswith(p.sha256_prefix):  # a file placed in the cache by hand, or damaged since
        raise WeightsError(f"{ckpt}: sha256 {digest[:8]}..., expected {p.sha256_prefix}... for {name}; delete it "
                           "to download again, or pass the file you mean with --weights PATH")
    model = convert_checkpoint(ckpt, p.architecture, p.input_size, extra={
        "weights_preset": name, "url": p.url, "sha256_prefix": p.sha256_prefix, "mmpose_config": p.config,
        "mmpose_metrics": dict(p.mmpose_metrics)})
    with atomic_path(keras_path) as tmp:
        model.save(tmp)
    return keras_path


def convert_checkpoint(path: str, architecture: str | None = None, input_size=None, extra: dict | None = None):
    """An mmpose checkpoint as an RSNModel (recipe ``mmpose`` in its metadata), with ``extra`` metadata."""
    from rsn_tf.convert import from_mmpose
    from rsn_tf.convert.mmpose import DEFAULT_INPUT_SIZE

    model = from_mmpose(path, preset=architecture, input_size=input_size or DEFAULT_INPUT_SIZE)
    model.metadata.update(extra or {})
    return model


# ------------------------------------------------------------------------------------------ loader
def describe(ref: str) -> str | None:
    """mmpose's accuracy line when ``ref`` names a preset (see :meth:`WeightsPreset.accuracy_line`)."""
    p = WEIGHTS_PRESETS.get(os.fspath(ref)) if not os.path.exists(os.fspath(ref)) else None
    return p.accuracy_line() if p else None


def load_model(ref, config=None, *, input_size=None, progress: bool = True):
    """Load an RSN model from ``ref`` (see the module docstring for what it may be).

    config: for weights-only files (required there) — a ModelConfig, a dict (its ``model`` part), a
    preset name or a YAML/JSON path; given with a ``.keras`` file, the model is built from it and the
    file's weights copied in. input_size: (H, W) for mmpose checkpoints (default 256x192).
    Raises FileNotFoundError for a missing file and :class:`WeightsError` (a ValueError) otherwise.
    """
    ref = os.fspath(ref)
    if not os.path.exists(ref):
        if ref in WEIGHTS_PRESETS:
            return _load_keras(preset_model_path(ref, progress), config)
        if ref.startswith("mmpose/"):
            raise WeightsError(f"unknown weights preset {ref!r}; presets: {', '.join(WEIGHTS_PRESETS)}")
        raise FileNotFoundError(f"model weights not found: {ref} (expected {ACCEPTED})")
    lower = ref.lower()
    if os.path.isdir(ref):
        raise WeightsError(f"{ref} is a folder; expected {ACCEPTED}")
    if lower.endswith(KERAS_SUFFIX):
        return _load_keras(ref, config)
    if lower.endswith(CHECKPOINT_SUFFIXES):
        if config is not None:
            return convert_checkpoint(ref, None, _config(config).input_size)
        return convert_checkpoint(ref, None, input_size)
    if lower.endswith(WEIGHTS_SUFFIX):
        if config is None:
            raise WeightsError(f"{ref}: a weights-only file carries no config; pass the model config too "
                               "(--config CFG.yaml or a preset name such as rsn18)")
        from rsn_tf.model import build_rsn
        model = build_rsn(_config(config))
        try:
            model.load_weights(ref)
        except (ValueError, OSError) as e:
            raise WeightsError(f"{ref}: the weights do not fit the given config ({_first_line(e)})") from None
        return model
    raise WeightsError(f"{ref}: unknown model file type; expected {ACCEPTED}")


def _config(config):
    from rsn_tf.model import ModelConfig, preset_config

    if isinstance(config, ModelConfig):
        return config
    if isinstance(config, str) and os.path.exists(config):
        from rsn_tf.config import load_yaml
        data = load_yaml(config)
        return ModelConfig.from_dict(data.get("model", data) if isinstance(data, dict) else data)
    if isinstance(config, str):
        return preset_config(config)
    if isinstance(config, dict):
        return ModelConfig.from_dict(config.get("model", config))
    raise WeightsError(f"config must be a ModelConfig, a dict, a preset name or a YAML/JSON file (got {type(config).__name__})")


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__


def check_keras_archive(path: str) -> None:
    """Raise :class:`WeightsError` unless ``path`` is a Keras v3 archive (a zip with ``config.json``)."""
    if not zipfile.is_zipfile(path):
        with open(path, "rb") as f:
            head = f.read(64)
        kind = "a text file" if head and all(32 <= b < 127 or b in (9, 10, 13) for b in head) else \
            "empty" if not head else "not a zip file"
        raise WeightsError(f"{path}: not a Keras archive ({kind}; a .keras file is a zip written by model.save)")
    with zipfile.ZipFile(path) as zf:
        names = zf.namelist()
    if "config.json" not in names:
        torch_like = any(n.endswith("data.pkl") for n in names)
        raise WeightsError(f"{path}: not a Keras archive (a zip without config.json"
                           + ("; it looks like a PyTorch checkpoint: name it .pth to convert it" if torch_like else "")
                           + ")")


def _load_keras(path: str, config=None):
    import keras

    register_keras_classes()
    check_keras_archive(path)
    try:
        loaded = keras.saving.load_model(path, compile=False)
    except Exception as e:  # keras raises many types for a damaged archive
        raise WeightsError(f"{path}: not a readable Keras archive ({_first_line(e)})") from None
    if config is None:
        return loaded
    from rsn_tf.model import build_rsn
    model = build_rsn(_config(config), metadata=getattr(loaded, "metadata", None))
    model.set_weights(loaded.get_weights())
    return model


def register_keras_classes() -> None:
    """Register rsn_tf's Keras classes (layers, RSNModel, optimizer, schedules) for ``keras.saving``."""
    import rsn_tf.model  # noqa: F401
    import rsn_tf.training.optimizer  # noqa: F401  (also the schedules)
