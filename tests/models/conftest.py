"""Helpers the model tests share (import them from here, not from another test module)."""
import keras
import numpy as np


def tiny_backbone(num_classes=3, seed=0):
    """A 16x16 two-conv classifier (top conv 'top_conv', 12 filters) for the model tests."""
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((16, 16, 3))
    x = keras.layers.Conv2D(8, 3, strides=2, padding="same", activation="relu", name="c1")(inputs)
    x = keras.layers.Conv2D(12, 3, padding="same", activation="relu", name="top_conv")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, keras.layers.Dense(num_classes, name="logits")(x))


def tiny_data(n=64, seed=0):
    """``n`` 16x16 images of 3 classes with a learnable signal in the red channel."""
    rng = np.random.RandomState(seed)
    y = np.arange(n) % 3
    x = rng.uniform(0, 1, (n, 16, 16, 3)).astype("float32")
    x[..., 0] += y[:, None, None] * 0.5  # a learnable signal
    return x, y
