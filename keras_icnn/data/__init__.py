"""Datasets: the synthetic part data, readers of CUB-200-2011 / Pascal-Part / an image folder,
and the ``tf.data`` pipeline. Each submodule is imported on first use, so
``keras_icnn.data.synthetic_parts`` works after a bare ``import keras_icnn``.

Example:

    import keras_icnn
    examples = keras_icnn.data.synthetic_parts.make_examples(8, num_classes=2)
    examples["image"].shape  # (8, 64, 64, 3)
"""

from keras_icnn import _lazy

__getattr__, __dir__ = _lazy.submodules(__name__, (
    "layouts", "pipeline", "readers", "sources", "splits", "synthetic_birds", "synthetic_parts",
    "tfds_builder"))
