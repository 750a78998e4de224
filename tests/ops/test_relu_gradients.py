"""The ReLU gradient swap (ops/relu_gradients.py) reaches every ReLU on the path."""
import keras
import numpy as np
import tensorflow as tf

from keras_icnn import explain as ex_mod
from keras_icnn import layers as icnn_layers
from tests.ops.conftest import guided_relu


def test_guided_backprop_reaches_the_relus_inside_interpretable_conv(monkeypatch):
    """Every ReLU on the path, including the one inside InterpretableConv, is guided: the
    registry swap gives the same gradient as replacing ``tf.nn.relu`` itself by a
    custom-gradient guided ReLU (a different mechanism, written by hand)."""
    keras.utils.set_random_seed(1)
    inputs = keras.Input((12, 12, 3))
    h = keras.layers.Conv2D(6, 3, activation="relu")(inputs)
    h = icnn_layers.InterpretableConv(4, num_classes=2, name="icnn")(h)
    h = keras.layers.GlobalAveragePooling2D()(h)
    model = keras.Model(inputs, keras.layers.Dense(2)(h))
    x = np.random.default_rng(1).normal(size=(3, 12, 12, 3)).astype(np.float32)
    explainable = ex_mod.Explainable(model)
    t = tf.constant(model.predict(x, verbose=0).argmax(-1).astype(np.int32))
    _, swapped = explainable.input_gradients(tf.constant(x), t, ("guided_backprop",))
    guided = swapped["guided_backprop"]
    with monkeypatch.context() as m:
        m.setattr(tf.nn, "relu", guided_relu)
        xt = tf.constant(x)
        with tf.GradientTape() as tape:
            tape.watch(xt)
            chosen = tf.gather(model(xt, training=False), t, axis=1, batch_dims=1)
        reference = tape.gradient(chosen, xt).numpy()
    np.testing.assert_allclose(guided.numpy(), reference, rtol=1e-4, atol=1e-6)
    plain, _ = explainable.input_gradients(tf.constant(x), t)
    assert not np.allclose(plain.numpy(), reference, atol=1e-6)
    # After the block the registry holds the ordinary gradient again.
    with tf.GradientTape() as tape:
        xt = tf.constant(x)
        tape.watch(xt)
        y = tf.reduce_sum(tf.nn.relu(xt))
    np.testing.assert_array_equal(tape.gradient(y, xt).numpy(), (x > 0).astype(np.float32))
