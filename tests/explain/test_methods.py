"""Saliency, gradient x input, guided backprop and the deconvnet of ``explain(methods=...)``
against hand-written tapes (the survey's eqs. 6-7 and §3.1, SPEC §11)."""
import numpy as np
import pytest
import keras
import tensorflow as tf

from keras_icnn import explain as ex_mod
from keras_icnn import layers as icnn_layers
from tests.ops.conftest import guided_relu


def _tiny(seed=0):
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((10, 10, 3))
    h = keras.layers.Conv2D(4, 3, activation="relu", name="c1")(inputs)
    h = keras.layers.Conv2D(5, 3, name="c2")(h)
    h = keras.layers.ReLU(name="r2")(h)
    h = keras.layers.GlobalAveragePooling2D()(h)
    return keras.Model(inputs, keras.layers.Dense(3, name="head")(h))


def _hand_forward(model, x, relu):
    """The tiny model written out with tf ops and the given ReLU."""
    (k1, b1), (k2, b2), (kd, bd) = (model.get_layer(n).get_weights() for n in ("c1", "c2", "head"))
    h = relu(tf.nn.conv2d(x, k1, 1, "VALID") + b1)
    h = relu(tf.nn.conv2d(h, k2, 1, "VALID") + b2)
    return tf.reduce_mean(h, axis=[1, 2]) @ kd + bd


def _hand_gradients(model, x, target, relu):
    x = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(x)
        chosen = tf.gather(_hand_forward(model, x, relu), target, axis=1, batch_dims=1)
    return tape.gradient(chosen, x).numpy()


def test_pixel_methods_match_hand_written_tapes():
    model = _tiny()
    rng = np.random.default_rng(0)
    x = rng.normal(size=(4, 10, 10, 3)).astype(np.float32)
    e = ex_mod.explain(model, x, methods=("saliency", "gradient_x_input", "guided_backprop"))
    target = e.target
    np.testing.assert_array_equal(target, model.predict(x, verbose=0).argmax(-1))
    plain = _hand_gradients(model, x, target, tf.nn.relu)
    guided = _hand_gradients(model, x, target, guided_relu)
    np.testing.assert_allclose(e.saliency, np.abs(plain).max(-1), rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(e.gradient_x_input, (x * plain).sum(-1), rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(e.guided_backprop, np.abs(guided).max(-1), rtol=1e-4, atol=1e-6)
    assert not np.allclose(np.abs(plain).max(-1), np.abs(guided).max(-1))  # not vacuous
    # The model is untouched: its plain gradient is the same after the guided pass, and a
    # call without methods returns none of the maps.
    again = ex_mod.explain(model, x, target=target, methods="saliency")
    np.testing.assert_allclose(again.saliency, e.saliency, rtol=1e-5)
    plain_tf = ex_mod.explain(model, x, target=target)
    assert plain_tf.saliency is None and plain_tf.guided_backprop is None
    # Explicit targets go through.
    other = (target + 1) % 3
    e2 = ex_mod.explain(model, x, target=other, methods=("saliency",))
    np.testing.assert_allclose(e2.saliency,
                               np.abs(_hand_gradients(model, x, other, tf.nn.relu)).max(-1),
                               rtol=1e-4, atol=1e-6)
    with pytest.raises(ValueError, match="methods"):
        ex_mod.explain(model, x, methods=("deconv",))


@tf.custom_gradient
def _deconvnet_relu(x):
    y = tf.maximum(x, tf.zeros_like(x))

    def grad(dy):
        return tf.maximum(dy, tf.zeros_like(dy))  # the forward mask ignored

    return y, grad


def _tiny_pooled(seed=0):
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((12, 12, 3))
    h = keras.layers.Conv2D(4, 3, activation="relu", name="c1")(inputs)
    h = keras.layers.MaxPooling2D(2, name="pool")(h)
    h = keras.layers.Conv2D(5, 3, name="c2")(h)
    h = keras.layers.ReLU(name="r2")(h)
    h = keras.layers.GlobalAveragePooling2D()(h)
    return keras.Model(inputs, keras.layers.Dense(3, name="head")(h))


def test_deconvnet_matches_a_hand_written_tape_through_relus_and_max_pooling():
    """SPEC §11: relu(upstream) at every ReLU, max-pooling through its switches, max |.| over
    channels; written by hand with tf ops and a custom-gradient ReLU."""
    model = _tiny_pooled()
    rng = np.random.default_rng(2)
    x = rng.normal(size=(4, 12, 12, 3)).astype(np.float32)
    e = ex_mod.explain(model, x, methods=("deconvnet", "guided_backprop", "saliency"))
    (k1, b1), (k2, b2), (kd, bd) = (model.get_layer(n).get_weights() for n in ("c1", "c2", "head"))

    def forward(xt, relu):
        h = relu(tf.nn.conv2d(xt, k1, 1, "VALID") + b1)
        h = tf.nn.max_pool2d(h, 2, 2, "VALID")
        h = relu(tf.nn.conv2d(h, k2, 1, "VALID") + b2)
        return tf.reduce_mean(h, axis=[1, 2]) @ kd + bd

    def grads(relu):
        xt = tf.constant(x)
        with tf.GradientTape() as tape:
            tape.watch(xt)
            chosen = tf.gather(forward(xt, relu), e.target, axis=1, batch_dims=1)
        return tape.gradient(chosen, xt).numpy()

    deconv = grads(_deconvnet_relu)
    np.testing.assert_allclose(e.deconvnet, np.abs(deconv).max(-1), rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(e.guided_backprop, np.abs(grads(guided_relu)).max(-1),
                               rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(e.saliency, np.abs(grads(tf.nn.relu)).max(-1), rtol=1e-4,
                               atol=1e-6)
    assert not np.allclose(e.deconvnet, e.guided_backprop, atol=1e-6)  # not vacuous
    assert not np.allclose(e.deconvnet, e.saliency, atol=1e-6)
