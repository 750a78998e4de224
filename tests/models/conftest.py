"""Helpers the model tests share (import them from here, not from another test module)."""
import keras
import numpy as np
import pytest

from keras_icnn.models import vgg_backbone


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


@pytest.fixture(scope="package")
def performer():
    keras.utils.set_random_seed(0)
    model = vgg_backbone((32, 32, 3), 3, width=4, dense_units=16)
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(True))
    rng = np.random.RandomState(0)
    model.fit(rng.uniform(0, 255, (32, 32, 32, 3)).astype("float32"), rng.randint(0, 3, 32),
              epochs=1, verbose=0)
    return model


def random_images(n=32, seed=1, size=32, high=255.0):
    return np.random.RandomState(seed).uniform(0, high, (n, size, size, 3)).astype("float32")


def variable_ids(variables):
    return {id(v) for v in variables}
