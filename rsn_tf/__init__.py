"""rsn_tf: Residual Steps Network (RSN, ECCV 2020) for top-down human pose estimation in TensorFlow/Keras 3."""
import os as _os

# TensorFlow's oneDNN kernels (convolutions and their gradients) are off by default on x86 CPUs without
# AVX-512; on this project's AMD EPYC they make RSN-18's training step ~1.5x faster (the 3x3 convolutions
# with few channels 2-3x). Set before TensorFlow is imported; TF_ENABLE_ONEDNN_OPTS=0 in the environment
# turns them off again.
_os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")

__version__ = "0.1.0"
