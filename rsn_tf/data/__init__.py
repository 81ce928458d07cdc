"""Data: dataset readers (COCO, MPII), the synthetic dataset, augmentation, preprocessing and the tf.data pipeline.

Entry points: :class:`DataConfig`/:class:`AugmentConfig` (``rsn_tf.data.config``),
:func:`build_dataset`/:func:`num_instances`/:func:`load_instances` (``rsn_tf.data.pipeline``, imports
TensorFlow lazily), :func:`preprocess` (``rsn_tf.data.preprocess``), :func:`make_synthetic_dataset`
(``rsn_tf.data.synth``).
"""
from rsn_tf.data.config import AugmentConfig, DataConfig, coco_data_config, mpii_data_config, synthetic_data_config

__all__ = ["AugmentConfig", "DataConfig", "coco_data_config", "mpii_data_config", "synthetic_data_config"]
