"""Training: experiment configs, schedules, the optimizer, the ``fit`` trainer, the multi-worker loop.

Import submodules directly (``rsn_tf.training.trainer``); this package import stays light.
"""
