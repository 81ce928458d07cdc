"""The RSN model family: configs and presets, blocks, the network, complexity counts."""
from rsn_tf.model.config import PRESETS, ModelConfig, Preprocessing, preset_config
from rsn_tf.model.rsn import RSNModel, build_rsn, copy_weights_by_name, head_name, inference_model

__all__ = ["PRESETS", "ModelConfig", "Preprocessing", "preset_config", "RSNModel", "build_rsn", "copy_weights_by_name",
           "head_name", "inference_model"]
