"""The score table as box sums (ops/pyramid.py) against numpy's pyramid matrix and the dense
matmul: forward, the table's gradient, the filter loss's exact and approximate gradients, XLA
on and off, float16 maps, and the rule that picks it."""
import numpy as np
import pytest
import tensorflow as tf

from keras_icnn import losses
from keras_icnn.layers import filter_pass
from keras_icnn.ops import filter_loss, pyramid, templates
from tests.ops.conftest import numpy_negative_mi

RNG = np.random.RandomState(11)


def _maps(b, h, w, k, dtype="float32"):
    return np.maximum(RNG.randn(b, h, w, k), 0).astype(dtype)


@pytest.mark.parametrize("h,w,d", [(5, 5, 1), (6, 6, 3), (4, 7, 4), (9, 3, 6), (3, 3, 0)])
def test_staircase_is_the_l1_pyramid_matrix(h, w, d):
    x = RNG.randn(3, h, w).astype("float32")
    dist = templates.l1_distance_matrix(h, w)
    want = (x.reshape(3, -1).astype(np.float64) @ np.maximum(d - dist, 0)).reshape(3, h, w)
    np.testing.assert_allclose(pyramid.staircase(tf.constant(x), d).numpy(), want,
                               rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("h,w,beta,tau", [(7, 7, 4.0, None), (5, 8, 4.0, 0.3),
                                          (9, 6, 2.5, None)])
@pytest.mark.parametrize("xla", [False, True])
def test_table_and_its_gradient_equal_the_dense_matmul(h, w, beta, tau, xla):
    """Odd n and beta 2.5 give a fractional radius (two staircases)."""
    x = tf.constant(_maps(3, h, w, 4))
    t = templates.template_matrix(h, w, beta, tau)
    up = tf.constant(RNG.randn(3, 4, h * w + 1).astype("float32"))

    def run(maps, method):
        with tf.GradientTape() as tape:
            tape.watch(maps)
            table = filter_loss.template_scores(maps, t, beta, tau, method=method)
            total = tf.reduce_sum(table * up)
        return table, tape.gradient(total, maps)

    stair = tf.function(lambda m: run(m, "staircase"), jit_compile=xla)(x)
    # numpy: s = x . T, d/dx sum(s * up) = T up
    x64, t64, up64 = x.numpy().astype(np.float64), t.astype(np.float64), up.numpy()
    want = np.einsum("bpk,pt->bkt", x64.reshape(3, h * w, 4), t64)
    want_grad = np.einsum("bkt,pt->bpk", up64, t64).reshape(3, h, w, 4)
    np.testing.assert_allclose(stair[0].numpy(), want, rtol=1e-5, atol=1e-6 * abs(want).max())
    np.testing.assert_allclose(stair[1].numpy(), want_grad, rtol=1e-5,
                               atol=1e-6 * abs(want_grad).max())


def test_the_rule_staircase_under_xla_on_large_maps_only(monkeypatch):
    assert not pyramid.use_staircase(64, 64, 4.0)  # eager
    seen = {}

    def probe(x, key):
        seen[key] = pyramid.use_staircase(x.shape[1], x.shape[2], 4.0)
        return x

    big = tf.zeros([1, 48, 48, 1])
    tf.function(lambda x: probe(x, "xla big"), jit_compile=True)(big)
    tf.function(lambda x: probe(x, "graph big"))(big)
    tf.function(lambda x: probe(x, "xla small"), jit_compile=True)(tf.zeros([1, 32, 32, 1]))
    assert seen == {"xla big": True, "graph big": False, "xla small": False}
    assert not pyramid.use_staircase(64, 64, None, "auto")  # custom templates: dense
    assert not pyramid.use_staircase(64, 64, 1.0, "auto")  # radius 2n > n: dense
    with pytest.raises(ValueError, match="beta >= 2"):
        pyramid.use_staircase(8, 8, 1.0, "staircase")
    with pytest.raises(ValueError, match="one of"):
        pyramid.use_staircase(8, 8, 4.0, "fft")


@pytest.mark.parametrize("gradient,dtype", [("approximate", "float32"), ("exact", "float16")])
def test_the_filter_loss_on_the_staircase_equals_the_dense_loss(monkeypatch, gradient, dtype):
    """The fused (XLA) loss with the switch forced on small maps vs the unfused dense loss:
    value (also against numpy) and gradient; float16 maps (mixed precision) included."""
    h, w = (9, 7) if dtype == "float32" else (7, 9)  # shapes no other test traces
    rng = np.random.RandomState(7)  # maps of a trained layer's scale, whatever ran before
    x = tf.constant((20 * np.maximum(rng.randn(6, h, w, 3), 0)).astype(dtype))
    labels, classes = tf.constant([0, 1, 0, 1, 1, 0]), tf.constant([0, 1, 1])

    def loss(maps, fused):
        if gradient == "exact":
            return losses.mutual_information_loss(maps, fused=fused)
        return losses.approximate_mutual_information_loss(maps, labels, classes, fused=fused)

    def value_and_grad(maps, fused):
        with tf.GradientTape() as tape:
            tape.watch(maps)
            value = loss(maps, fused)
            total = tf.reduce_sum(value * tf.constant([1.0, -2.0, 0.5], value.dtype))
        return value.numpy(), tape.gradient(total, maps).numpy().astype(np.float64)

    # The float64 dense loss is the reference; the exact gradient sums terms that cancel, so
    # float32 tables are held to the dense float32 table's own error, not to a fixed epsilon.
    ref_value, ref_grad = value_and_grad(tf.cast(x, tf.float64), False)
    dense_value, dense_grad = value_and_grad(x, False)
    monkeypatch.setattr(pyramid, "MIN_UNITS", 1)
    stair_value, stair_grad = value_and_grad(x, True)
    np.testing.assert_allclose(ref_value, numpy_negative_mi(x.numpy()), rtol=1e-6, atol=1e-9)
    for stair, dense, ref in ((stair_value, dense_value, ref_value),
                              (stair_grad, dense_grad, ref_grad)):
        scale = np.abs(ref).max()
        assert scale > 0
        assert np.abs(stair - ref).max() <= 2 * np.abs(dense - ref).max() + 1e-5 * scale


def test_the_layer_training_pass_on_the_staircase(monkeypatch):
    """The interpretable layer's compiled pass (value, eq. 5's coefficients and targets) with
    the staircase equals it with the dense table."""
    # Maps of a trained layer's scale (MI well above float32's cancellation error).
    x = tf.constant(20 * np.maximum(np.random.RandomState(5).randn(4, 8, 10, 2), 0), tf.float32)
    labels = tf.constant([0, 1, 1, 0])
    activation, seen = tf.zeros([2, 2]), tf.zeros([2])

    def run(gradient):
        fn = tf.function(filter_pass.training_pass, jit_compile=True, autograph=False)
        out = fn(x, labels, activation, seen, 2, 0.9, 0, gradient, "printed", 4.0, None)
        return out[0].numpy(), [t.numpy() for t in out[2]]

    # (The exact form's pass is mutual_information_loss inside XLA: the test above.)
    dense_value, dense_grads = run("approximate")
    monkeypatch.setattr(pyramid, "MIN_UNITS", 1)
    value, grads = run("approximate")
    np.testing.assert_allclose(value, dense_value, rtol=1e-4, atol=1e-8)
    for got, want in zip(grads, dense_grads):
        np.testing.assert_allclose(got, want, rtol=1e-3, atol=1e-4 * np.abs(want).max())
