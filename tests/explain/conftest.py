"""Shared by the explain tests: a linear model whose contributions are known by hand."""
import keras
import numpy as np


def linear_model(frozen=False):
    """images [4, 4, 1] -> 1x1 conv (2 filters, linear) -> GAP -> Dense(3): contributions by hand."""
    keras.utils.set_random_seed(0)
    inputs = keras.Input((4, 4, 1))
    maps = keras.layers.Conv2D(2, 1, name="conv")(inputs)
    x = keras.layers.GlobalAveragePooling2D()(maps)
    model = keras.Model(inputs, keras.layers.Dense(3, name="logits")(x))
    model.get_layer("conv").kernel.assign(np.array([[[[1.0, -2.0]]]], np.float32))
    model.get_layer("conv").bias.assign(np.array([0.5, 0.25], np.float32))
    model.get_layer("logits").kernel.assign(
        np.array([[1.0, -1.0, 0.5], [2.0, 0.5, -1.5]], np.float32))
    model.get_layer("logits").bias.assign(np.array([0.1, -0.2, 0.3], np.float32))
    model.trainable = not frozen
    return model
