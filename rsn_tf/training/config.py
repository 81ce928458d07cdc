"""Experiment configuration: model + data + training, typed, from YAML with ``--set`` overrides.

A config file has three sections (and an optional ``name``)::

    name: rsn18_coco_256x192
    model: {preset: rsn18, input_size: [256, 192]}      # or {config: {...full ModelConfig...}}
    data: {...DataConfig...}                             # rsn_tf.data.config
    train: {...TrainConfig...}

Every key is checked: an unknown or mistyped one is a :class:`~rsn_tf.config.ConfigError` naming the
file and the key path (``train.optimizer.lrr``) and the keys allowed there.
"""
from __future__ import annotations

import dataclasses
import os
from typing import Any, Literal, Union

from rsn_tf.config import ConfigError, apply_overrides, from_dict, load_yaml, to_dict
from rsn_tf.data.config import DataConfig
from rsn_tf.losses import LossConfig
from rsn_tf.model.config import ModelConfig, preset_config


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
      monitor: the logged value that picks ``best.keras`` (``val_loss``; falls back to ``loss``
        when there is no validation).
      backup_freq: ``epoch`` or every N batches: how often the resumable backup
        (``workdir/backup``, weights + optimizer state + epoch) is written.
    """

    monitor: str = "val_loss"
    backup_freq: Union[Literal["epoch"], int] = "epoch"


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

    def __post_init__(self):
        if self.batch_size < 1 or self.epochs < 0:
            raise ConfigError(f"train: batch_size must be >= 1 and epochs >= 0 (got {self.batch_size}, {self.epochs})")
        if self.steps_per_epoch is not None and self.steps_per_epoch < 1:
            raise ConfigError(f"train.steps_per_epoch must be >= 1 or null (got {self.steps_per_epoch})")


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
    name without extension.
    """
    path = find_config(path)
    data = load_yaml(path)
    apply_overrides(data, list(overrides or []))
    data.setdefault("name", os.path.splitext(os.path.basename(path))[0])
    return ExperimentConfig.from_dict(data, source=path)


def resolve_experiment(config: "ExperimentConfig | str | dict", overrides: list[str] | None = None) -> ExperimentConfig:
    """An :class:`ExperimentConfig` from a YAML path, a dict or an instance (overrides applied)."""
    if isinstance(config, (str, os.PathLike)):
        return load_experiment(os.fspath(config), overrides)
    data = config.to_dict() if isinstance(config, ExperimentConfig) else dict(config)
    if overrides:
        apply_overrides(data, list(overrides))
    return ExperimentConfig.from_dict(data)
