"""Experiment configuration: model + data + training, typed, from YAML with ``--set`` overrides.

A config file has three sections (and optional ``name`` and ``base``)::

    name: rsn18_coco_256x192                             # default: the file name
    base: authors_coco                                   # optional: a recipe below, the file overrides it
    model: {preset: rsn18, input_size: [256, 192]}      # or {config: {...full ModelConfig...}}
    data: {...DataConfig...}                             # rsn_tf.data.config
    train: {...TrainConfig...}

``base`` names one of the recipes the bundled configs share (:func:`base_config`: the references'
data layout, preprocessing, optimizer, schedule and loss, written once); the file's sections are
merged over it key by key (mappings merge, anything else replaces), so a file says only what is
particular to it. ``--set`` overrides apply after that merge. Every key is checked: an unknown or
mistyped one is a :class:`~rsn_tf.config.ConfigError` naming the file and the key path
(``train.optimizer.lrr``) and the keys allowed there; the resolved config (``to_dict()``, what a
workdir's ``config.yaml`` and a model's metadata hold) is complete and has no ``base``.
"""
from __future__ import annotations

import dataclasses
import os
from typing import Any, Literal, Union

from rsn_tf.config import ConfigError, apply_overrides, from_dict, load_yaml, to_dict
from rsn_tf.data.config import AugmentConfig, DataConfig, coco_data_config, mpii_data_config
from rsn_tf.losses import LossConfig
from rsn_tf.model.config import AUTHORS_PREPROCESSING, ModelConfig, preset_config


@dataclasses.dataclass(frozen=True)
class ModelSection:
    """Which network: a preset plus overrides, or a full :class:`ModelConfig` dict.

    Attributes:
      preset: preset name (``rsn18``, ``4xrsn50``...; see ``rsn complexity --all``).
      input_size: crop (H, W); ``None`` = the preset's 256x192. (256, 256) implies 16 keypoints.
      num_keypoints: K; ``None`` = 17, or 16 at 256x256.
      overrides: any other :class:`ModelConfig` fields, e.g. ``{num_blocks: [1, 1, 1, 1]}``.
      config: a complete ModelConfig dict; when given, ``preset`` and the rest must be left unset.
    """

    preset: str | None = "rsn18"
    input_size: tuple[int, int] | None = None
    num_keypoints: int | None = None
    overrides: dict[str, Any] = dataclasses.field(default_factory=dict)
    config: dict[str, Any] | None = None

    def build(self) -> ModelConfig:
        if self.config is not None:
            return from_dict(ModelConfig, self.config, "model.config")
        if not self.preset:
            raise ConfigError("model: give a preset name or a full config")
        input_size = self.input_size
        if input_size is not None and tuple(input_size) == (256, 256) and self.num_keypoints is None:
            input_size = "256x256"  # MPII: the preset helper then picks 16 keypoints
        base = preset_config(self.preset, input_size, self.num_keypoints)
        merged = {**to_dict(base), **self.overrides}
        try:
            return from_dict(ModelConfig, merged, "model.overrides")
        except ConfigError:
            raise
        except (TypeError, ValueError) as e:
            raise ConfigError(f"model.overrides: {e}") from None


@dataclasses.dataclass(frozen=True)
class OptimizerConfig:
    """Adam(W) settings.

    Attributes:
      name: ``adam`` or ``adamw``.
      lr: peak learning rate at ``base_batch_size``.
      base_batch_size: the lr is scaled by ``batch_size / base_batch_size`` (linear rule, like the
        authors' ``5e-4 x num_gpu`` and mmpose's ``auto_scale_lr``); ``None`` = use ``lr`` as given.
      weight_decay: decay coefficient (authors 1e-5, mmpose 0).
      weight_decay_mode: ``l2`` adds ``weight_decay * w`` to every gradient before Adam (PyTorch
        ``Adam(weight_decay=...)``, what the authors ran); ``decoupled`` is Keras' ``weight_decay``
        (``w -= lr * wd * w``, AdamW style).
      beta_1, beta_2, epsilon: Adam constants (PyTorch defaults).
      epsilon_mode: ``torch`` adds ``epsilon`` to the bias-corrected root, as ``torch.optim.Adam``
        (both references); ``keras`` to the raw root, as ``keras.optimizers.Adam`` (see
        :mod:`rsn_tf.training.optimizer`).
      clipnorm: per-variable gradient norm clip (``None`` = off; the references do not clip).
    """

    name: Literal["adam", "adamw"] = "adam"
    lr: float = 5e-4
    base_batch_size: int | None = None
    weight_decay: float = 0.0
    weight_decay_mode: Literal["l2", "decoupled"] = "l2"
    beta_1: float = 0.9
    beta_2: float = 0.999
    epsilon: float = 1e-8
    epsilon_mode: Literal["torch", "keras"] = "torch"
    clipnorm: float | None = None


@dataclasses.dataclass(frozen=True)
class ScheduleConfig:
    """Learning-rate schedule (see :mod:`rsn_tf.training.schedules`).

    Attributes:
      name: ``warmup_linear`` (authors: warmup then linear decay to 0), ``warmup_step`` (mmpose:
        warmup then x``gamma`` at ``milestones``) or ``constant`` (warmup then flat).
      warmup_steps: optimizer steps of linear warmup (authors 2400, mmpose 500).
      warmup_factor: the lr factor at step 0 (authors 0.1, mmpose 0.001).
      total_steps: ``warmup_linear``: step where the lr reaches 0; ``None`` = epochs x steps_per_epoch.
      milestones: ``warmup_step``: epochs after which the lr is multiplied by ``gamma``.
      gamma: step-decay factor.
    """

    name: Literal["warmup_linear", "warmup_step", "constant"] = "warmup_linear"
    warmup_steps: int = 0
    warmup_factor: float = 0.1
    total_steps: int | None = None
    milestones: tuple[int, ...] = ()
    gamma: float = 0.1


@dataclasses.dataclass(frozen=True)
class CheckpointConfig:
    """What is saved in the workdir.

    Attributes:
      monitor: the logged value that picks ``best.keras``: ``val_loss`` (falls back to ``loss``
        when there is no validation), ``loss``, or ``val_AP`` / ``val_AP50`` / ``val_AP75`` /
        ``val_AR`` (needs ``train.evaluation.every``).
      mode: ``min`` (lower is better), ``max``, or ``auto``: ``max`` for the AP/AR keys, else ``min``.
      backup_freq: ``epoch`` or every N batches: how often the resumable backup
        (``workdir/backup``, weights + optimizer state + epoch) is written.
    """

    monitor: str = "val_loss"
    backup_freq: Union[Literal["epoch"], int] = "epoch"
    mode: Literal["auto", "min", "max"] = "auto"

    def __post_init__(self):
        if not isinstance(self.backup_freq, str) and self.backup_freq < 1:
            raise ConfigError(f"train.checkpoint.backup_freq must be 'epoch' or >= 1 (got {self.backup_freq})")


AP_KEYS = ("val_AP", "val_AP50", "val_AP75", "val_AR")


@dataclasses.dataclass(frozen=True)
class EvaluationConfig:
    """COCO keypoint AP on the val split during training (``rsn_tf.evaluation.callback.EvaluationCallback``).

    Its ``val_AP``, ``val_AP50``, ``val_AP75``, ``val_AR`` go into the epoch logs before
    ``history.csv``, TensorBoard and the checkpoints see them, so ``checkpoint.monitor: val_AP``
    picks ``best.keras`` by AP.

    Attributes:
      every: evaluate after every N-th epoch and after the last (0 = never; other epochs log NaN).
      boxes: ``gt`` or a detection file (COCO results format) for the val images.
      flip_test: average with the flipped image's heatmaps (both references' test recipe).
      batch_size: crops per inference batch.
      recipe: the test recipe (``authors``/``mmpose``); ``auto`` = the training loss mode's.
    """

    every: int = 0
    boxes: str = "gt"
    flip_test: bool = True
    batch_size: int = 32
    recipe: Literal["auto", "authors", "mmpose"] = "auto"

    def __post_init__(self):
        if self.every < 0 or self.batch_size < 1:
            raise ConfigError(f"train.evaluation: every must be >= 0 and batch_size >= 1 "
                              f"(got {self.every}, {self.batch_size})")


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """How to train.

    Attributes:
      batch_size: global batch (split across replicas; must divide evenly).
      epochs: training epochs.
      steps_per_epoch: optimizer steps per epoch; ``None`` = one pass over the training instances.
      validation_freq: validate every N epochs (0 = never).
      validation_steps: batches per validation; ``None`` = the whole val split.
      optimizer, schedule, loss: see their classes.
      mixed_precision: ``none``, ``mixed_bfloat16`` or ``mixed_float16`` (GPUs; float16 adds
        dynamic loss scaling). The loss is always computed in float32.
      distribution: ``auto`` (MultiWorkerMirrored if ``TF_CONFIG`` lists >1 worker, Mirrored if >1
        GPU, else none), ``none``, ``mirrored`` or ``multi_worker``.
      seed: seeds Python, NumPy, TF and the data pipeline.
      jit_compile: XLA; keep ``false`` on CPU (5x slower there).
      verbose: Keras progress output: ``null`` = a bar on a terminal, one line per epoch otherwise.
      checkpoint: see :class:`CheckpointConfig`.
      evaluation: COCO AP on the val split every N epochs; see :class:`EvaluationConfig`.
    """

    batch_size: int = 32
    epochs: int = 210
    steps_per_epoch: int | None = None
    validation_freq: int = 1
    validation_steps: int | None = None
    optimizer: OptimizerConfig = OptimizerConfig()
    schedule: ScheduleConfig = ScheduleConfig()
    loss: LossConfig = LossConfig()
    mixed_precision: Literal["none", "mixed_bfloat16", "mixed_float16"] = "none"
    distribution: Literal["auto", "none", "mirrored", "multi_worker"] = "auto"
    seed: int = 0
    jit_compile: bool = False
    verbose: int | None = None
    checkpoint: CheckpointConfig = CheckpointConfig()
    evaluation: EvaluationConfig = EvaluationConfig()

    def __post_init__(self):
        if self.batch_size < 1 or self.epochs < 0:
            raise ConfigError(f"train: batch_size must be >= 1 and epochs >= 0 (got {self.batch_size}, {self.epochs})")
        if self.steps_per_epoch is not None and self.steps_per_epoch < 1:
            raise ConfigError(f"train.steps_per_epoch must be >= 1 or null (got {self.steps_per_epoch})")
        if self.checkpoint.monitor in AP_KEYS and not self.evaluation.every:
            raise ConfigError(f"train.checkpoint.monitor: {self.checkpoint.monitor} is logged only when "
                              "train.evaluation.every >= 1 (COCO AP on the val split every N epochs)")


@dataclasses.dataclass(frozen=True)
class ExperimentConfig:
    """A whole training experiment (see module docstring).

    ``data.mode`` left unset takes ``train.loss.mode``, so ``loss: {mode: mmpose}`` alone makes the
    crops and targets mmpose's too (and ``data.encode_mode`` follows ``data.mode``).
    """

    name: str = ""
    model: ModelSection = ModelSection()
    data: DataConfig = DataConfig()
    train: TrainConfig = TrainConfig()

    def __post_init__(self):
        if self.data.mode is None:
            object.__setattr__(self, "data", dataclasses.replace(self.data, mode=self.train.loss.mode))
        if self.train.evaluation.every and self.data.format != "coco":
            raise ConfigError(f"train.evaluation: COCO AP needs a COCO-format val split (data.format is "
                              f"{self.data.format!r}); set train.evaluation.every=0")

    def model_config(self) -> ModelConfig:
        return self.model.build()

    def to_dict(self) -> dict:
        return to_dict(self)

    @classmethod
    def from_dict(cls, data: dict, source: str = "config") -> "ExperimentConfig":
        try:
            exp = from_dict(cls, data)
            exp.model_config()  # validate the model section now, not at build time
        except ConfigError as e:
            raise ConfigError(f"{source}: {e}") from None
        return exp


# ----------------------------------------------------------------------------------------- bases
BASES = ("authors_coco", "authors_mpii", "mmpose_coco")


def _layout(data: DataConfig) -> dict:
    """Where a dataset lives (format, root, annotation files, image folders) as config keys."""
    keys = ("format", "root", "train_ann", "train_images", "val_ann", "val_images")
    return {k: getattr(data, k) for k in keys}


def _augment(augment: AugmentConfig) -> dict:
    """The knobs an :class:`AugmentConfig` sets (``None`` = the recipe's default, left out)."""
    return {k: v for k, v in to_dict(augment).items() if v is not None}


def base_config(name: str) -> dict:
    """The recipe ``name`` as a partial experiment dict: only the keys it sets, like a YAML file.

    - ``authors_coco``: the official RSN code on COCO: 256x192, BGR input with the ImageNet
      statistics reversed (``AUTHORS_PREPROCESSING``), ``data/coco``
      (:func:`rsn_tf.data.config.coco_data_config`), the authors' augmentation and loss, Adam + L2
      1e-5 at lr 4e-3 for batch 256 (linear scaling: the authors' 5e-4 per 32-image GPU), 2,400
      warmup steps from 0.1x then linear decay to 0, 164 epochs (96,000 iterations at batch 256 of
      COCO train2017's ~149,813 people: 585 per epoch), validation every 10 epochs.
    - ``authors_mpii``: the same on MPII, 256x256 (16 keypoints), ``data/mpii`` with the authors' MPII
      augmentation (:func:`rsn_tf.data.config.mpii_data_config`), 331 epochs (28,800 iterations of
      ~22,246 MPII train people: 87 per epoch).
    - ``mmpose_coco``: mmpose 1.x's RSN configs: 256x192, RGB ImageNet input (the default), mmpose
      augmentation and loss, eval box padding 1.25 (``GetBBoxCenterScale(padding=1.25)``), Adam lr
      5e-3 at batch 256 (``auto_scale_lr`` base 256) without weight decay, 500 warmup steps from
      0.001x, x0.1 after epochs 170 and 200 of 210 (RSN-18's config overrides lr and milestones).
      mmpose 1.x trains with fp16: ``--set train.mixed_precision=mixed_float16`` on GPUs.

    Every recipe trains with a global batch of 256 (32 per GPU x 8 GPUs) and ``distribution: auto``.
    """
    if name == "authors_coco":
        return {"model": {"input_size": [256, 192], "overrides": {"preprocessing": to_dict(AUTHORS_PREPROCESSING)}},
                "data": {**_layout(coco_data_config()), "keypoints": "coco", "augment": {"recipe": "authors"}},
                "train": {"batch_size": 256, "epochs": 164, "validation_freq": 10,
                          "optimizer": {"name": "adam", "lr": 4.0e-3, "base_batch_size": 256, "weight_decay": 1.0e-5,
                                        "weight_decay_mode": "l2"},
                          "schedule": {"name": "warmup_linear", "warmup_steps": 2400, "warmup_factor": 0.1},
                          "loss": {"mode": "authors", "topk": 8},
                          "mixed_precision": "none", "distribution": "auto", "seed": 0}}
    if name == "authors_mpii":
        mpii = mpii_data_config()
        base = base_config("authors_coco")
        base["model"]["input_size"] = [256, 256]
        base["data"] = {**_layout(mpii), "keypoints": mpii.keypoints, "augment": _augment(mpii.augment)}
        base["train"]["epochs"] = 331
        return base
    if name == "mmpose_coco":
        return {"model": {"input_size": [256, 192]},
                "data": {**_layout(coco_data_config()), "keypoints": "coco", "augment": {"recipe": "mmpose"},
                         "test_padding": [1.25, 1.25]},
                "train": {"batch_size": 256, "epochs": 210, "validation_freq": 10,
                          "optimizer": {"name": "adam", "lr": 5.0e-3, "base_batch_size": 256, "weight_decay": 0.0},
                          "schedule": {"name": "warmup_step", "warmup_steps": 500, "warmup_factor": 0.001,
                                       "milestones": [170, 200], "gamma": 0.1},
                          "loss": {"mode": "mmpose", "topk": 8},
                          "mixed_precision": "none", "distribution": "auto", "seed": 0}}
    raise ConfigError(f"base: {name!r} is not one of {list(BASES)}")


def _merge(base: dict, over: dict) -> dict:
    """``over`` merged into a copy of ``base``: mappings key by key, anything else replaced."""
    out = dict(base)
    for k, v in over.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def expand_base(data: dict) -> dict:
    """``data`` with its ``base`` recipe merged under it (and the ``base`` key gone); as it is without one."""
    if "base" not in data:
        return data
    data = dict(data)
    name = data.pop("base")
    if not isinstance(name, str):
        raise ConfigError(f"base: expected a recipe name (one of {list(BASES)}), got {name!r}")
    return _merge(base_config(name), data)


CONFIG_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "configs")


def find_config(path: str) -> str:
    """``path`` if it exists, else the bundled ``configs/<path>[.yaml]`` (so ``synthetic_rsn18`` works)."""
    if os.path.exists(path):
        return path
    for candidate in (os.path.join(CONFIG_DIR, path), os.path.join(CONFIG_DIR, f"{path}.yaml")):
        if os.path.isfile(candidate):
            return candidate
    raise ConfigError(f"config file not found: {path} (nor in {CONFIG_DIR})")


def load_experiment(path: str, overrides: list[str] | None = None) -> ExperimentConfig:
    """Read an experiment YAML, apply ``key.sub=value`` overrides, validate everything.

    ``path`` may also name a bundled config (``synthetic_rsn18``). The name defaults to the file
    name without extension; a ``base`` is merged under the file first (module docstring).
    """
    path = find_config(path)
    try:
        data = expand_base(load_yaml(path))
    except ConfigError as e:
        raise ConfigError(f"{path}: {e}") from None
    apply_overrides(data, list(overrides or []))
    data.setdefault("name", os.path.splitext(os.path.basename(path))[0])
    return ExperimentConfig.from_dict(data, source=path)


def resolve_experiment(config: "ExperimentConfig | str | dict", overrides: list[str] | None = None) -> ExperimentConfig:
    """An :class:`ExperimentConfig` from a YAML path, a dict or an instance (overrides applied)."""
    if isinstance(config, (str, os.PathLike)):
        return load_experiment(os.fspath(config), overrides)
    data = config.to_dict() if isinstance(config, ExperimentConfig) else expand_base(dict(config))
    if overrides:
        apply_overrides(data, list(overrides))
    return ExperimentConfig.from_dict(data)
