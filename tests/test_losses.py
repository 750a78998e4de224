import numpy as np
import pytest
import tensorflow as tf

from keras_icnn import losses, templates
from tests.ops.conftest import numpy_negative_mi, numpy_terms


@pytest.mark.parametrize("shape,scale", [((6, 3, 3, 4), 50.0), ((5, 4, 3, 2), 200.0), ((3, 2, 2, 3), 1.0)])
def test_mutual_information_loss_matches_numpy(shape, scale):
    x = np.random.RandomState(0).uniform(0, scale, shape).astype(np.float32)
    got = losses.mutual_information_loss(x).numpy()
    assert got.shape == (shape[-1],) and got.dtype == np.float32
    np.testing.assert_allclose(got, numpy_negative_mi(x), rtol=1e-4, atol=1e-6)
    # -MI is never positive.
    assert np.all(got <= 1e-6)


def test_loss_is_finite_for_huge_activations_and_single_image():
    x = np.random.RandomState(1).uniform(0, 1e4, (4, 5, 5, 3)).astype(np.float32)
    for batch in (x, x[:1], np.zeros_like(x)):
        v = losses.mutual_information_loss(batch)
        a = losses.approximate_mutual_information_loss(
            batch, np.arange(len(batch)) % 2, np.array([0, 1, 0]))
        assert np.all(np.isfinite(v.numpy())) and np.all(np.isfinite(a.numpy()))
    np.testing.assert_allclose(losses.mutual_information_loss(x[:1]).numpy(), 0.0, atol=1e-6)
    with tf.GradientTape() as tape:
        xt = tf.constant(x)
        tape.watch(xt)
        total = tf.reduce_sum(losses.approximate_mutual_information_loss(
            xt, [0, 1, 0, 1], [0, 1, 1]))
    assert np.all(np.isfinite(tape.gradient(total, xt).numpy()))


def test_well_localised_filter_has_higher_mi_than_noise():
    rng = np.random.RandomState(2)
    peaked = np.zeros((8, 6, 6, 1), np.float32)
    for i in range(8):
        peaked[i, rng.randint(6), rng.randint(6), 0] = 300.0
    noise = rng.uniform(0, 300.0 / 36, (8, 6, 6, 1)).astype(np.float32)
    assert losses.mutual_information_loss(peaked)[0] < losses.mutual_information_loss(noise)[0]


@pytest.mark.parametrize("form,fused,given", [
    ("printed", None, False), ("appendix", None, False),
    # unfused ops; T^ gathered from a template matrix passed in
    ("printed", False, False), ("printed", None, True), ("appendix", False, True)])
def test_approximate_gradient_matches_formula(form, fused, given):
    rng = np.random.RandomState(3)
    x = rng.uniform(0, 40, (6, 3, 4, 3)).astype(np.float32)
    labels = np.array([0, 1, 2, 0, 1, 2])
    target = np.array([0, 2, 1])
    upstream = np.array([1.0, -0.5, 2.0], np.float32)
    xt = tf.constant(x)
    given = templates.template_matrix(3, 4) if given else None
    with tf.GradientTape() as tape:
        tape.watch(xt)
        value = losses.approximate_mutual_information_loss(
            xt, labels, target, templates=given, form=form, fused=fused)
        total = tf.reduce_sum(value * upstream)
    grad = tape.gradient(total, xt).numpy()
    # The value is the exact -MI.
    np.testing.assert_allclose(value.numpy(), numpy_negative_mi(x), rtol=1e-4, atol=1e-6)
    t, log_prior, log_pxt, log_px = numpy_terms(x)
    expected = np.zeros_like(x, dtype=np.float64)
    b, h, w, k = x.shape
    for bi in range(b):
        for ki in range(k):
            if labels[bi] == target[ki]:
                col = int(np.argmax(x[bi, :, :, ki].reshape(-1)))
            else:
                col = h * w
            lp = log_pxt[bi, ki, col]
            bracket = lp - log_px[bi, ki] + (1.0 if form == "printed" else 0.0)
            coeff = -np.exp(log_prior[col]) * np.exp(lp) * bracket
            expected[bi, :, :, ki] = upstream[ki] * coeff * t[:, col].reshape(h, w)
    np.testing.assert_allclose(grad, expected, rtol=2e-4, atol=1e-9)


@pytest.mark.parametrize("fused", [None, False])
def test_exact_gradient_matches_finite_differences(fused):
    rng = np.random.RandomState(4)
    x = rng.uniform(0, 30, (4, 3, 3, 2))
    xt = tf.constant(x, tf.float64)
    with tf.GradientTape() as tape:
        tape.watch(xt)
        total = tf.reduce_sum(losses.mutual_information_loss(xt, fused=fused) * [1.0, 0.3])
    grad = tape.gradient(total, xt).numpy()
    eps = 1e-5
    fd = np.zeros_like(x)
    for idx in np.ndindex(*x.shape):
        xp, xm = x.copy(), x.copy()
        xp[idx] += eps
        xm[idx] -= eps
        fp = np.sum(losses.mutual_information_loss(tf.constant(xp)).numpy() * [1.0, 0.3])
        fm = np.sum(losses.mutual_information_loss(tf.constant(xm)).numpy() * [1.0, 0.3])
        fd[idx] = (fp - fm) / (2 * eps)
    np.testing.assert_allclose(grad, fd, rtol=1e-5, atol=1e-9)


@pytest.mark.parametrize("h,w,beta,tau", [(5, 7, 4.0, None), (6, 6, 2.5, 0.3), (2, 9, 7.0, None)])
def test_target_templates_are_template_columns(h, w, beta, tau):
    # T^ computed from the peak's coordinates equals the gathered column of the matrix.
    rng = np.random.RandomState(5)
    mu_i, mu_j = rng.randint(0, h, (4, 3)), rng.randint(0, w, (4, 3))
    positive = rng.rand(4, 3) < 0.6
    got = losses.target_templates(tf.constant(positive), tf.constant(mu_i, tf.int32),
                                  tf.constant(mu_j, tf.int32), h, w, beta, tau).numpy()
    matrix = templates.template_matrix(h, w, beta=beta, tau=tau)
    for b in range(4):
        for k in range(3):
            col = mu_i[b, k] * w + mu_j[b, k] if positive[b, k] else h * w
            np.testing.assert_allclose(got[b, :, :, k], matrix[:, col].reshape(h, w),
                                       rtol=1e-6, atol=1e-9)


def test_fused_and_unfused_agree_at_a_training_size():
    # A 14x14 map with 16 filters, batch 32: value and gradient of both forms, fused (one
    # XLA function) vs ordinary ops, vs a float64 evaluation of the same function.
    rng = np.random.RandomState(6)
    x = np.maximum(rng.randn(32, 14, 14, 16), 0).astype(np.float32) * 3
    labels, target = rng.randint(0, 4, 32), rng.randint(0, 4, 16)
    upstream = tf.constant(rng.uniform(0.5, 2, 16), tf.float32)

    def run(fn, dtype, fused):
        xt = tf.constant(x, dtype)
        with tf.GradientTape() as tape:
            tape.watch(xt)
            value = fn(xt, fused)
            total = tf.reduce_sum(value * tf.cast(upstream, value.dtype))
        return value.numpy(), tape.gradient(total, xt).numpy()

    for fn in (lambda xt, f: losses.mutual_information_loss(xt, fused=f),
               lambda xt, f: losses.approximate_mutual_information_loss(
                   xt, labels, target, fused=f)):
        ref_v, ref_g = run(fn, tf.float64, False)
        for fused in (None, False):
            v, g = run(fn, tf.float32, fused)
            np.testing.assert_allclose(v, ref_v, rtol=1e-4, atol=1e-6)
            scale = np.abs(ref_g).max()
            np.testing.assert_allclose(g, ref_g, rtol=1e-3, atol=1e-4 * scale)


def _xla_calls(fn):
    graph = tf.function(fn).get_concrete_function(tf.TensorSpec([4, 5, 5, 3])).graph
    return [op.type for op in graph.get_operations()
            if "_XlaMustCompile" in op.node_def.attr and op.get_attr("_XlaMustCompile")]


def test_fused_default_and_its_switch():
    # One XLA-compiled call by default; none with fused=False.
    labels, target = tf.constant([0, 1, 0, 1]), tf.constant([0, 1, 1])

    def approx(x):
        return losses.approximate_mutual_information_loss(x, labels, target)

    assert len(_xla_calls(approx)) == 1
    assert _xla_calls(lambda x: losses.mutual_information_loss(x, fused=False)) == []
    assert _xla_calls(lambda x: losses.approximate_mutual_information_loss(
        x, labels, target, fused=False)) == []
    assert len(_xla_calls(lambda x: losses.mutual_information_loss(x))) == 1


def test_fused_needs_a_single_replica():
    strategy = tf.distribute.MirroredStrategy(["CPU:0", "CPU:1"])
    x = tf.ones([2, 3, 3, 1])
    with pytest.raises(ValueError, match="fused=True needs a single replica"):
        strategy.run(lambda: losses.mutual_information_loss(x, fused=True))


def test_bad_inputs():
    with pytest.raises(ValueError, match=r"rank 4 \[batch, height, width, filters\]"):
        losses.mutual_information_loss(np.zeros((3, 3, 3)))
    with pytest.raises(ValueError, match="at least 2x2"):
        losses.mutual_information_loss(np.zeros((2, 1, 4, 3)))
    with pytest.raises(ValueError, match="`form` must be one of"):
        losses.approximate_mutual_information_loss(np.zeros((2, 2, 2, 1)), [0, 0], [0], form="x")


def test_retired_module_switches_say_what_replaced_them():
    """Issue 45: losses.FUSE and guard.FUSED_CHECKS became arguments; setting the old switch
    must not silently do nothing."""
    from keras_icnn.models import guard

    with pytest.raises(AttributeError, match=r"losses.FUSE was removed.*fused=False"):
        losses.FUSE = False
    with pytest.raises(AttributeError, match=r"FUSED_CHECKS was removed.*fused_checks=False"):
        guard.FUSED_CHECKS = False
    with pytest.raises(AttributeError, match="FUSE was removed"):
        losses.FUSE  # noqa: B018
