"""Shared by the adversarial tests (package scope: trained once)."""
import keras
import numpy as np
import pytest


@pytest.fixture(scope="package")
def trained():
    """A tiny undefended CNN that separates three colour classes (accuracy > 0.95)."""
    keras.utils.set_random_seed(0)
    rng = np.random.RandomState(0)
    labels = rng.randint(0, 3, 300)
    images = rng.uniform(60, 120, (300, 8, 8, 3)).astype(np.float32)
    images[np.arange(300), :, :, labels] += 90.0
    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Rescaling(1.0 / 255.0)(inputs)
    x = keras.layers.Conv2D(8, 3, activation="relu", padding="same")(x)
    # Max pooling: a few pixels can move the prediction (a black-box attack has a chance).
    x = keras.layers.GlobalMaxPooling2D()(x)
    model = keras.Model(inputs, keras.layers.Dense(3)(x))
    model.compile(keras.optimizers.Adam(0.05),
                  keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(images, labels, epochs=30, batch_size=50, verbose=0)
    accuracy = float(np.mean(model.predict(images, verbose=0).argmax(-1) == labels))
    assert accuracy > 0.95, accuracy
    return model, images[:60], labels[:60]
