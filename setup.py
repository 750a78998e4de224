"""keras_icnn: interpretable CNNs for TensorFlow / Keras 3."""
from setuptools import find_packages, setup

setup(
    name="keras_icnn",
    version="0.1.0",
    description=(
        "Interpretable CNNs, explainer networks and class-specific gates as "
        "Keras 3 layers and trainers."
    ),
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    packages=find_packages(include=["keras_icnn", "keras_icnn.*"]),
    # The commands' launcher: sets TensorFlow's log level before keras_icnn imports it.
    py_modules=["keras_icnn_cli"],
    entry_points={"console_scripts": [
        f"keras-icnn-{name.replace('_', '-')}=keras_icnn_cli:{name}"
        for name in ("train_icnn", "train_csg", "train_explainer", "evaluate",
                     "detect_adversarial", "export", "preview", "pretrain")]},
    # Keras 3.15, the version the code runs and is tested with, needs Python 3.11.
    python_requires=">=3.11",
    # Everything a default command path imports. Optional: matplotlib (pictures; evaluate.py
    # and train_csg.py skip them with a notice) and tensorflow-serving-api (the exporter's
    # warm-up requests; skipped with a notice).
    install_requires=[
        "tensorflow>=2.16",
        "keras>=3",
        "tensorflow-datasets",
        # tensorflow-datasets 4.9.10 imports importlib_resources without
        # declaring it.
        "importlib_resources",
        "numpy",
        "absl-py",
        "scikit-learn",  # MIS (mutual_info_classif): train_csg.py, evaluate.py
        "scipy",  # Pascal-Part annotations (.mat)
    ],
    extras_require={
        "test": ["pytest", "tensorflow-serving-api", "tensorboard"],
        "serving": ["tensorflow-serving-api"],
        "viz": ["matplotlib"],
        # Viewing --tensorboard_dir (and its HParams tab); the event files need only TF.
        "tensorboard": ["tensorboard"],
    },
)
