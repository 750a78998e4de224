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
    python_requires=">=3.9",
    install_requires=[
        "tensorflow>=2.16",
        "keras>=3",
        "tensorflow-datasets",
        # tensorflow-datasets 4.9.10 imports importlib_resources without
        # declaring it.
        "importlib_resources",
        "numpy",
        "absl-py",
    ],
    extras_require={
        "test": ["pytest", "scikit-learn", "tensorflow-serving-api"],
        "serving": ["tensorflow-serving-api"],
        "viz": ["matplotlib"],
    },
)
