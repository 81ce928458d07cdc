"""Weight conversion from public checkpoints (mmpose RSN) into :class:`~rsn_tf.model.RSNModel`.

``from_mmpose(path)`` is the entry point; ``rsn convert-mmpose`` is its command line.
"""
from rsn_tf.convert.checkpoint_io import CheckpointError, load_state_dict
from rsn_tf.convert.mmpose import (ConversionError, from_mmpose, from_mmpose_state_dict, infer_config,
                                   load_mmpose_weights, mmpose_shapes, mmpose_variables, module_path,
                                   normalize_state_dict, to_mmpose_state_dict)

__all__ = ["CheckpointError", "ConversionError", "from_mmpose", "from_mmpose_state_dict", "infer_config",
           "load_mmpose_weights", "load_state_dict", "mmpose_shapes", "mmpose_variables", "module_path",
           "normalize_state_dict", "to_mmpose_state_dict"]
