import numpy as np
import pytest

from keras_icnn.layers import NormLayer
from tests.layer_contract import run_layer_contract


def test_contract():
    run_layer_contract(NormLayer, {"momentum": 0.9}, (4, 5, 5, 3), (4, 5, 5, 3), 0, 2)


def test_running_alpha_vs_numpy_and_frozen_in_inference():
    rng = np.random.RandomState(0)
    layer = NormLayer(momentum=0.8)
    alpha = None
    for _ in range(4):
        x = rng.normal(size=(6, 4, 4, 3)).astype(np.float32) * [1.0, 5.0, 0.0]
        out = layer(x, training=True).numpy()
        batch = np.maximum(x, 0).sum(axis=(1, 2)).mean(0)
        alpha = batch if alpha is None else 0.8 * alpha + 0.2 * batch
        np.testing.assert_allclose(layer.alpha.numpy(), alpha, rtol=1e-5)
        safe = np.where(alpha > 1e-6, alpha, 1.0)
        np.testing.assert_allclose(out, x / safe, rtol=1e-5)
    frozen = layer.alpha.numpy().copy()
    y = rng.normal(size=(2, 4, 4, 3)).astype(np.float32) * 100
    out = layer(y, training=False).numpy()
    np.testing.assert_array_equal(layer.alpha.numpy(), frozen)
    np.testing.assert_allclose(out[..., :2], y[..., :2] / frozen[:2], rtol=1e-5)
    np.testing.assert_array_equal(out[..., 2], y[..., 2])  # all-zero channel: unscaled, no NaN


def test_bad_arguments():
    with pytest.raises(ValueError, match=r"`momentum` must lie in \[0, 1\)"):
        NormLayer(momentum=1.0)
    with pytest.raises(ValueError, match="expects a 4D input"):
        NormLayer()(np.zeros((2, 3), np.float32))


def test_alpha_is_a_statistic_without_gradient():
    import tensorflow as tf

    x = tf.constant(np.random.RandomState(1).uniform(0.1, 2.0, (4, 3, 3, 2)).astype(np.float32))
    layer = NormLayer(momentum=0.5)
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = layer(x, training=True)
        total = tf.reduce_sum(y)
    alpha = np.maximum(x.numpy(), 0).sum((1, 2)).mean(0)
    # d sum(x / alpha) / dx = 1 / alpha: alpha is held constant, as in inference.
    np.testing.assert_allclose(tape.gradient(total, x).numpy(),
                               np.broadcast_to(1.0 / alpha, x.shape), rtol=1e-5)


def test_alpha_on_selected_images_only():
    rng = np.random.RandomState(2)
    layer = NormLayer(momentum=0.5)
    x = rng.normal(size=(6, 2, 2, 3)).astype(np.float32)
    selected = np.array([True, False, True, False, False, True])
    layer(x, training=True, selected=selected)
    first = np.maximum(x[selected], 0).sum((1, 2)).mean(0)
    np.testing.assert_allclose(layer.alpha.numpy(), first, rtol=1e-5)
    # A batch with no selected image leaves alpha where it was.
    layer(x * 10, training=True, selected=np.zeros(6, bool))
    np.testing.assert_allclose(layer.alpha.numpy(), first, rtol=1e-5)
    y = rng.normal(size=(6, 2, 2, 3)).astype(np.float32)
    layer(y, training=True, selected=selected)
    np.testing.assert_allclose(layer.alpha.numpy(),
                               0.5 * first + 0.5 * np.maximum(y[selected], 0).sum((1, 2)).mean(0),
                               rtol=1e-5)


def test_alpha_floor_bounds_a_dying_channels_amplification():
    """Issue 26: a channel that almost never fires has alpha ~ 0, and x / alpha blows up
    on the one image where it does. alpha_floor divides by max(alpha, floor * mean alpha)."""
    x = np.zeros((4, 2, 2, 4), np.float32)
    x[:, 0, 0, :3] = [[2.0, 4.0, 6.0]]  # three live channels: alpha 2, 4, 6
    x[0, 1, 1, 3] = 0.004  # the fourth fires once: alpha 0.001
    floored, plain = NormLayer(momentum=0.5, alpha_floor=0.1), NormLayer(momentum=0.5)
    floored(x, training=True)
    plain(x, training=True)
    alpha = np.array([2.0, 4.0, 6.0, 0.001])
    np.testing.assert_allclose(floored.alpha.numpy(), alpha, rtol=1e-5)  # the statistic itself
    probe = np.ones((1, 1, 1, 4), np.float32)
    divisor = np.maximum(alpha, 0.1 * alpha.mean())  # 0.1 * 3.00025 for the dying channel
    np.testing.assert_allclose(floored(probe).numpy().ravel(), 1.0 / divisor, rtol=1e-5)
    np.testing.assert_allclose(plain(probe).numpy().ravel(), 1.0 / alpha, rtol=1e-5)  # 1000x
    assert NormLayer.from_config(floored.get_config()).alpha_floor == 0.1
    with pytest.raises(ValueError, match="alpha_floor"):
        NormLayer(alpha_floor=-0.1)


@pytest.mark.parametrize("jit", [False, True])
def test_a_nan_batch_never_reaches_the_running_alpha(jit):
    import tensorflow as tf

    rng = np.random.RandomState(3)
    layer = NormLayer(momentum=0.5)
    good = rng.uniform(0, 1, (4, 3, 3, 2)).astype(np.float32)
    layer(good, training=True)
    before = layer.alpha.numpy().copy()
    bad = good.copy()
    bad[1, 2, 0, 1] = np.nan
    step = tf.function(lambda x: layer(x, training=True), jit_compile=jit)
    step(tf.constant(bad))
    np.testing.assert_array_equal(layer.alpha.numpy(), before)  # untouched, not NaN
    step(tf.constant(good))  # and later good batches still update it, as by hand
    np.testing.assert_allclose(layer.alpha.numpy(),
                               0.5 * before + 0.5 * good.sum((1, 2)).mean(0), rtol=1e-5)
