"""The export core: the format table, the export config, the decode choice and the one comparison.

A leaf of :mod:`rsn_tf.export`: it imports numpy and :mod:`rsn_tf.recipes` only (plus
:mod:`rsn_tf.inference.estimator` and :mod:`rsn_tf.codec` inside functions), never another export module,
so that the orchestration (:mod:`rsn_tf.export.exporter`), the agreement report
(:mod:`rsn_tf.export.agreement`) and the benchmark (:mod:`rsn_tf.bench`) all read the same table without
importing each other.

Bounds: every number an export is judged by is written once, in :data:`FORMAT_TABLE`:

- ``validation``: checked at export time on any weights (random ones included); an export that misses it is
  not reported good. ``heatmap_rel_max`` = max |diff| / max |Keras|; ``heatmap_mean_over_range`` = mean |diff| /
  (max - min of Keras), int8 quantisation noise against the range it is quantised over (one int8 step is 1/255
  of it; 0.05 allows ~13 steps of accumulated error and catches a broken calibration).
- ``target``: judged in the agreement report, meaningful on trained weights (int8: mean keypoint distance
  <= 1 heatmap pixel).
"""
from __future__ import annotations

import dataclasses
import importlib.util
import os

import numpy as np

from rsn_tf import recipes

#: Heatmap relative max difference of the float32 formats (and of the deploy rewrite) to the Keras model.
FP32_REL_MAX = 1e-4
#: The same for float16 weights.
FP16_REL_MAX = 1e-2
#: Mean |diff| / output range of the int8 formats at export time (any weights).
INT8_MEAN_OVER_RANGE = 0.05
#: Mean keypoint distance (heatmap pixels) of the int8 formats in the agreement report (trained weights).
INT8_KEYPOINT_MEAN_HM_PX = 1.0
DEFAULT_OPSET = 17
INPUT_ORDERS = ("bgr", "rgb")
#: The setup.py extra that carries the export runtimes, and the command that installs it from a clone.
EXPORT_EXTRA_INSTALL = 'pip install -e ".[export]"'


@dataclasses.dataclass(frozen=True)
class Bound:
    """``row[field] <= limit`` (a NaN or missing value fails)."""

    field: str
    limit: float

    def check(self, row: dict) -> dict:
        """{"field", "bound", "value", "ok"} for one comparison row (see :func:`compare`)."""
        value = float(row.get(self.field, float("nan")))
        return {"field": self.field, "bound": self.limit, "value": value, "ok": bool(value <= self.limit)}


@dataclasses.dataclass(frozen=True)
class Format:
    """One export format.

    Attributes:
      name: the ``--formats`` name.
      file: where it is written, relative to the export folder.
      runtime: the :func:`rsn_tf.export.runtimes.load_runner` kind that runs it.
      validation: the export-time bound (any weights).
      target: the agreement-report target (trained weights), or None.
      in_all: part of ``--formats all`` (the others are exported only when named).
      modules: Python modules it needs, beyond TensorFlow (the ``export`` extra of setup.py).
    """

    name: str
    file: str
    runtime: str
    validation: Bound
    target: Bound | None
    in_all: bool
    modules: tuple[str, ...]


_FP32 = Bound("heatmap_rel_max", FP32_REL_MAX)
_INT8 = Bound("heatmap_mean_over_range", INT8_MEAN_OVER_RANGE)
_INT8_TARGET = Bound("keypoint_mean_hm_px", INT8_KEYPOINT_MEAN_HM_PX)
_LITERT = ("ai_edge_litert",)
_ONNX = ("tf2onnx", "onnx", "onnxruntime")

#: Every format, in the order ``all`` exports them. int8_io: int8 input/output tensors (no float
#: QUANTIZE/DEQUANTIZE at the ends; the caller quantises with the input tensor's scale/zero point).
#: onnx_int8: onnxruntime static QDQ quantisation of the ONNX export (per-channel, uint8 activations).
FORMAT_TABLE: dict[str, Format] = {f.name: f for f in (
    Format("saved_model", os.path.join("saved_model", "1"), "saved_model", _FP32, _FP32, True, ()),
    Format("tflite_fp32", "rsn_fp32.tflite", "tflite", _FP32, _FP32, True, _LITERT),
    Format("tflite_fp16", "rsn_fp16.tflite", "tflite", Bound("heatmap_rel_max", FP16_REL_MAX), None, True, _LITERT),
    Format("tflite_int8", "rsn_int8.tflite", "tflite", _INT8, _INT8_TARGET, True, _LITERT),
    Format("onnx", "rsn.onnx", "onnx", _FP32, _FP32, True, _ONNX),
    Format("tflite_int8_io", "rsn_int8_io.tflite", "tflite", _INT8, _INT8_TARGET, False, _LITERT),
    Format("onnx_int8", "rsn_int8.onnx", "onnx", _INT8, _INT8_TARGET, False, _ONNX),
)}
FORMATS = tuple(name for name, f in FORMAT_TABLE.items() if f.in_all)
EXTRA_FORMATS = tuple(name for name, f in FORMAT_TABLE.items() if not f.in_all)


def parse_formats(text: str | list[str] | tuple[str, ...]) -> list[str]:
    """A comma list (or sequence) of format names, ``all`` standing for :data:`FORMATS` (e.g.
    ``"all,onnx_int8"``) -> list (order kept, duplicates dropped). Raises ValueError naming unknown names."""
    items = text.split(",") if isinstance(text, str) else list(text)
    items = [s.strip() for s in items if s.strip()]
    bad = [s for s in items if s not in FORMAT_TABLE and s != "all"]
    if bad or not items:
        raise ValueError(f"--formats: unknown {bad or items}; expected 'all' or a comma list of "
                         f"{', '.join(FORMAT_TABLE)}")
    expanded = [f for s in items for f in (FORMATS if s == "all" else (s,))]
    return list(dict.fromkeys(expanded))


def artifact_path(out_dir: str, fmt: str) -> str:
    """Where format ``fmt`` lives under an export folder."""
    return os.path.join(out_dir, FORMAT_TABLE[fmt].file)


def file_size(path: str) -> int:
    """Bytes of a file, or of every file under a directory (SavedModel)."""
    if os.path.isdir(path):
        return sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(path) for f in fs)
    return os.path.getsize(path)


def installed(module: str) -> bool:
    """Whether top-level ``module`` can be imported (found without importing it)."""
    return importlib.util.find_spec(module) is not None


class MissingExtraError(ModuleNotFoundError, ValueError):
    """An optional runtime is not installed. A ``ModuleNotFoundError`` (what it is) that is also a
    ``ValueError``, so that the ``rsn`` CLI reports it as one line, like every other input error."""


def require_modules(formats, what: str = "rsn export") -> None:
    """Raise :class:`MissingExtraError` (one line naming the extra to install) when a format's runtime
    (``ai_edge_litert``, ``tf2onnx``/``onnx``/``onnxruntime``) is not installed. Imports nothing."""
    missing = {}
    for fmt in formats:
        for module in FORMAT_TABLE[fmt].modules:
            if not installed(module):
                missing.setdefault(module, []).append(fmt)
    if missing:
        names = ", ".join(sorted(missing))
        fmts = sorted({f for fs in missing.values() for f in fs})
        raise MissingExtraError(f"{what}: {', '.join(fmts)} need{'s' if len(fmts) == 1 else ''} {names}, which "
                                  f"{'is' if len(missing) == 1 else 'are'} not installed; install the export extra: "
                                  f"{EXPORT_EXTRA_INSTALL}", name=sorted(missing)[0])


# ------------------------------------------------------------------------------------------ the config
@dataclasses.dataclass(frozen=True)
class ExportConfig:
    """Everything ``rsn export`` decides, checked on construction (one clear error per bad field).

    Attributes:
      formats: format names (``"all"`` or a comma string is accepted and parsed; see :data:`FORMAT_TABLE`).
      recipe: test recipe of the in-graph decode and the agreement report (``"authors"``/``"mmpose"``);
        None = the model's own (:func:`rsn_tf.recipes.default_recipe` of its metadata).
      decode_kernel: decode blur kernel (odd); None = the keypoint layout's
        (:func:`rsn_tf.recipes.decode_kernel_for`: 9 for MPII, 5 otherwise).
      opset: ONNX opset (>= 13).
      input_order: channel order of the SavedModel's uint8 ``images`` ("bgr", OpenCV's, or "rgb").
      calib_coco: int8 calibration crops from a COCO keypoints json (images beside it or in ``calib_images``).
      calib_images: image folder of ``calib_coco``.
      calib_synth: int8 calibration crops from a synthetic set written by ``rsn synth`` (its val split).
      calib_count: representative crops for int8 (>= 1). Without ``calib_coco``/``calib_synth``: fresh
        synthetic images (seed 0).
      check_coco: real crops for the agreement report (a COCO keypoints json), or None.
      check_synth: fresh synthetic images (seed 1000, unseen by calibration) for the agreement report (>= 0).
      weights_note: where the weights came from, for the reports (default: ``model.metadata["weights"]``).
    """

    formats: tuple[str, ...] = FORMATS
    recipe: str | None = None
    decode_kernel: int | None = None
    opset: int = DEFAULT_OPSET
    input_order: str = "bgr"
    calib_coco: str | None = None
    calib_images: str | None = None
    calib_synth: str | None = None
    calib_count: int = 64
    check_coco: str | None = None
    check_synth: int = 16
    weights_note: str = ""

    def __post_init__(self):
        object.__setattr__(self, "formats", tuple(parse_formats(self.formats)))
        if self.recipe is not None:
            recipes.get_recipe(self.recipe)
        if self.decode_kernel is not None and (int(self.decode_kernel) != self.decode_kernel
                                               or self.decode_kernel < 1 or self.decode_kernel % 2 != 1):
            raise ValueError(f"--decode-kernel: must be an odd positive integer (got {self.decode_kernel})")
        if self.opset < 13:
            raise ValueError(f"--opset: ONNX opset must be >= 13 (got {self.opset})")
        if self.input_order not in INPUT_ORDERS:
            raise ValueError(f"--input-order: expected one of {INPUT_ORDERS} (got {self.input_order!r})")
        if self.calib_count < 1:
            raise ValueError(f"--calib-count: must be >= 1 (got {self.calib_count})")
        if self.check_synth < 0:
            raise ValueError(f"--check-synth: must be >= 0 (got {self.check_synth})")

    def replace(self, **changes) -> "ExportConfig":
        return dataclasses.replace(self, **changes)

    def check_inputs(self) -> None:
        """Every named input exists and every format's runtime is installed (run before any work)."""
        for flag, path, kind in (("--calib-coco", self.calib_coco, "file"), ("--calib-images", self.calib_images, "dir"),
                                 ("--calib-synth", self.calib_synth, "dir"), ("--check-coco", self.check_coco, "file")):
            if path and not (os.path.isfile(path) if kind == "file" else os.path.isdir(path)):
                raise FileNotFoundError(f"{flag}: {path} not found (expected a {'COCO keypoints json' if kind == 'file' else 'folder'})")
        require_modules(self.formats)


@dataclasses.dataclass(frozen=True)
class DecodeChoice:
    """How heatmaps become keypoints in an export (the SavedModel's in-graph decode, the agreement report,
    :func:`rsn_tf.export.exporter.load_exported_estimator`).

    Attributes:
      recipe: "authors" or "mmpose" (:mod:`rsn_tf.recipes`).
      mode: the codec's decode rule of that recipe (``MegviiHeatmapCodec.decode_mode``).
      kernel: decode blur kernel.
      layout: the keypoint layout name the kernel follows (e.g. "coco", "mpii").
      recipe_from: "config" (an explicit choice) or "model metadata".
      kernel_from: "config" or "keypoint layout".
    """

    recipe: str
    mode: str
    kernel: int
    layout: str
    recipe_from: str
    kernel_from: str

    def codec(self, input_size, heatmap_size=None):
        """The numpy :class:`rsn_tf.codec.MegviiHeatmapCodec` of this choice."""
        from rsn_tf.codec import MegviiHeatmapCodec

        return MegviiHeatmapCodec(tuple(input_size), tuple(heatmap_size) if heatmap_size else None, self.kernel,
                                  self.mode)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def resolve_decode(num_keypoints: int, metadata: dict | None, recipe: str | None = None,
                   decode_kernel: int | None = None) -> DecodeChoice:
    """The decode of a model with ``num_keypoints`` and ``metadata``: an explicit ``recipe``/``decode_kernel``
    wins; else the model's recipe (:func:`rsn_tf.recipes.default_recipe`) and its keypoint layout's kernel
    (:func:`rsn_tf.recipes.decode_kernel_for`)."""
    from rsn_tf.inference.estimator import resolve_keypoint_spec

    spec = resolve_keypoint_spec(num_keypoints, metadata)
    name = recipe or recipes.default_recipe(metadata)
    return DecodeChoice(recipe=name, mode=recipes.get_recipe(name).decode_mode,
                        kernel=int(decode_kernel or recipes.decode_kernel_for(spec.name)), layout=spec.name,
                        recipe_from="config" if recipe else "model metadata",
                        kernel_from="config" if decode_kernel else "keypoint layout")


# ------------------------------------------------------------------------------------------ the comparison
def compare(reference: np.ndarray, other: np.ndarray, codec=None) -> dict:
    """How far heatmaps ``other`` are from ``reference`` (both [N,h,w,K] float32, peak ~255).

    Heatmaps: ``heatmap_max_abs``, ``heatmap_mean_abs``, ``heatmap_rel_max`` (max |diff| / max |reference|),
    ``heatmap_mean_over_range`` (mean |diff| / (max - min of reference)), ``reference_max_abs``. With a
    ``codec`` (:class:`rsn_tf.codec.MegviiHeatmapCodec`) both sides are decoded by it and the distance of
    every (crop, joint) pair is reported in heatmap pixels (``keypoint_mean/p95/max_hm_px``) and crop pixels
    (``keypoint_mean_crop_px``). Non-finite outputs give NaN/inf values (every :class:`Bound` fails them).
    Raises ValueError if the shapes differ.
    """
    ref = np.asarray(reference, np.float32)
    out = np.asarray(other, np.float32)
    if ref.shape != out.shape:
        raise ValueError(f"heatmap shapes differ: reference {ref.shape} vs {out.shape}")
    diff = np.abs(ref - out)
    scale = float(np.abs(ref).max()) or 1.0
    row = {
        "crops": int(ref.shape[0]),
        "heatmap_max_abs": float(diff.max()),
        "heatmap_mean_abs": float(diff.mean()),
        "heatmap_rel_max": float(diff.max()) / scale,
        "heatmap_mean_over_range": float(diff.mean()) / (float(ref.max() - ref.min()) or 1.0),
        "reference_max_abs": scale,
    }
    if codec is not None:
        kr, _ = codec.decode(ref)
        ko, _ = codec.decode(out)
        stride = np.asarray(codec.stride, np.float32)
        dist = np.linalg.norm((kr - ko) / stride, axis=-1).ravel()
        row.update({
            "keypoints": int(dist.size),
            "keypoint_mean_hm_px": float(dist.mean()),
            "keypoint_p95_hm_px": float(np.percentile(dist, 95)),
            "keypoint_max_hm_px": float(dist.max()),
            "keypoint_mean_crop_px": float(np.linalg.norm(kr - ko, axis=-1).mean()),
        })
    return row


def decode_agreement(kpts_graph, scores_graph, kpts_codec, scores_codec) -> dict:
    """How far in-graph keypoints [N,K,2] / scores [N,K] are from the numpy codec's on the same heatmaps
    (crop pixels; ``identical_fraction``: share of keypoints closer than 1e-3 px)."""
    d = np.linalg.norm(np.asarray(kpts_graph) - np.asarray(kpts_codec), axis=-1).ravel()
    return {"keypoints": int(d.size), "mean_crop_px": float(d.mean()), "max_crop_px": float(d.max()),
            "identical_fraction": float((d < 1e-3).mean()),
            "score_max_abs": float(np.abs(np.asarray(scores_graph) - np.asarray(scores_codec)).max())}
