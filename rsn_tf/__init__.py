"""rsn_tf: Residual Steps Network (RSN, ECCV 2020) for top-down human pose estimation in TensorFlow/Keras 3."""
__version__ = "0.1.0"
