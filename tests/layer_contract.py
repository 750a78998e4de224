"""Shared layer contract (after keras' ``run_layer_test``).

Checks: config round trip, weight counts, symbolic and eager output shapes,
one ``fit`` step (plain and ``jit_compile=True``), mixed precision, and a
``.keras`` save/load round trip with identical outputs.
"""
import os
import tempfile

import keras
import numpy as np

from keras_icnn.models import InterpretableModel


def _model(layer_cls, init_kwargs, input_shape, num_classes):
    inputs = keras.Input(input_shape[1:])
    x = layer_cls(**init_kwargs)(inputs)
    x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = keras.layers.Dense(num_classes)(x)
    return InterpretableModel(inputs, outputs)


def run_layer_contract(layer_cls, init_kwargs, input_shape, expected_output_shape,
                       expected_trainable, expected_non_trainable, num_classes=3):
    rng = np.random.RandomState(0)
    x = rng.uniform(0, 1, input_shape).astype("float32")
    y = rng.randint(0, num_classes, input_shape[0])

    # Config round trip.
    layer = layer_cls(**init_kwargs)
    config = layer.get_config()
    clone = layer_cls.from_config(config)
    assert clone.get_config() == config

    # Symbolic and eager shapes, weight counts.
    symbolic = layer(keras.Input(input_shape[1:]))
    assert tuple(symbolic.shape[1:]) == tuple(expected_output_shape[1:])
    assert tuple(layer.compute_output_shape(input_shape)) == tuple(expected_output_shape)
    assert len(layer.trainable_weights) == expected_trainable
    assert len(layer.non_trainable_weights) == expected_non_trainable
    eager = layer(x)
    assert tuple(eager.shape) == tuple(expected_output_shape)

    # One fit step, plain and XLA.
    for jit in (False, True):
        model = _model(layer_cls, init_kwargs, input_shape, num_classes)
        model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                      jit_compile=jit)
        history = model.fit(x, y, batch_size=len(x), epochs=1, verbose=0)
        assert np.isfinite(history.history["loss"][0])

    # .keras round trip with identical predictions.
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "model.keras")
        model.save(path)
        loaded = keras.models.load_model(path)
    assert type(loaded) is type(model)
    np.testing.assert_allclose(loaded.predict(x, verbose=0), model.predict(x, verbose=0),
                               rtol=1e-6, atol=1e-6)
    for a, b in zip(loaded.weights, model.weights):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))

    # Mixed precision: float16 compute, float32 variables, finite training.
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        model = _model(layer_cls, init_kwargs, input_shape, num_classes)
        model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        history = model.fit(x, y, batch_size=len(x), epochs=1, verbose=0)
        assert np.isfinite(history.history["loss"][0])
        mp_layer = model.layers[1]
        assert mp_layer.compute_dtype == "float16"
        assert all(w.dtype == "float32" for w in mp_layer.weights)
    finally:
        keras.mixed_precision.set_global_policy("float32")
