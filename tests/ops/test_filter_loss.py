"""The filter loss's maths (ops/filter_loss.py) against numpy."""
import numpy as np
import pytest
import tensorflow as tf

from keras_icnn import losses
from tests.ops.conftest import numpy_negative_mi, numpy_terms


def test_target_template_indices():
    x = np.zeros((2, 2, 3, 2), np.float32)
    x[0, 1, 2, 0] = 1.0  # flat index 5
    x[1, 0, 1, 1] = 1.0  # flat index 1
    idx = losses.target_template_indices(x, [0, 1], [0, 1]).numpy()
    np.testing.assert_array_equal(idx, [[5, 6], [6, 1]])


def test_unit_mean_maps_vs_numpy_and_scale_free():
    """x_f / mean_{b,ij} x_f (a silent filter stays 0); -MI of the result ignores each filter's
    scale, so its gradient with respect to x is orthogonal to x per filter (Euler)."""
    rng = np.random.RandomState(3)
    x = rng.uniform(0, 2, (4, 5, 5, 3)).astype("float32")
    x[..., 2] = 0.0
    want = x / np.where(x.mean((0, 1, 2)) > 0, x.mean((0, 1, 2)), 1.0)
    np.testing.assert_allclose(losses.unit_mean_maps(x).numpy(), want, rtol=1e-5)
    scaled = x * np.array([7.0, 0.01, 1.0], "float32")
    np.testing.assert_allclose(losses.unit_mean_maps(scaled).numpy(), want, rtol=1e-4)
    np.testing.assert_allclose(
        losses.mutual_information_loss(losses.unit_mean_maps(scaled)).numpy()[:2],
        numpy_negative_mi(want)[:2], rtol=1e-4, atol=1e-7)
    labels, classes = np.array([0, 1, 0, 1]), np.array([0, 1, 0])
    for loss in (lambda m: losses.mutual_information_loss(m),
                 lambda m: losses.approximate_mutual_information_loss(m, labels, classes)):
        xt = tf.constant(x)
        with tf.GradientTape() as tape:
            tape.watch(xt)
            total = tf.reduce_sum(loss(losses.unit_mean_maps(xt)))
        g = tape.gradient(total, xt).numpy()
        along = (g * x).sum((0, 1, 2))[:2]
        assert np.all(np.abs(along) <= 1e-5 * np.sqrt((g ** 2).sum((0, 1, 2))[:2]
                                                      * (x ** 2).sum((0, 1, 2))[:2]))
        assert np.all(np.abs(g[..., :2]).max((0, 1, 2)) > 0)


def test_filter_statistics_vs_numpy():
    rng = np.random.RandomState(4)
    x = rng.uniform(0, 30, (5, 4, 4, 3)).astype("float32")
    x[..., 1] = 0.0
    stats = losses.filter_statistics(x)
    t, _, _, _ = numpy_terms(x)
    scores = np.stack([x[..., k].reshape(5, -1).astype(np.float64) @ t for k in range(3)], 1)
    np.testing.assert_allclose(float(stats["score_spread"]), scores.std(0).mean(), rtol=1e-4)
    np.testing.assert_allclose(float(stats["mean_peak"]), x.max((1, 2)).mean(), rtol=1e-5)
    assert float(stats["dead"]) == pytest.approx(1 / 3)
    np.testing.assert_allclose(float(stats["neg_mi"]), numpy_negative_mi(x).sum(), rtol=1e-4)
