"""Deletion, insertion and MuFidelity (SPEC §8) against hand computations on linear models,
whose exact attribution is known."""
import numpy as np
import pytest
import keras
import tensorflow as tf
from scipy import ndimage

from keras_icnn import imaging, metrics
from keras_icnn.evaluation import faithfulness as fa


def _sigmoid(z):
    return 1.0 / (1.0 + np.exp(-np.asarray(z, np.float64)))


def linear(w, bias=0.0):
    """logits [0, sum(w * x) + bias]: class 1's probability is sigmoid(w . x + bias)."""
    w = tf.constant(w, tf.float32)

    def fn(x):
        z = tf.reduce_sum(x * w, axis=[1, 2, 3]) + bias
        return tf.stack([tf.zeros_like(z), z], axis=1)

    return fn


def test_deletion_and_insertion_match_a_hand_computation_with_ties_in_index_order():
    w = np.array([[1.0, 2.0], [3.0, 4.0]]).reshape(2, 2, 1)
    x = np.ones((1, 2, 2, 1), np.float32)
    model = linear(w, bias=-5.0)
    # By w: pixels 3, 2, 1, 0 go first: logit 5, 1, -2, -4, -5.
    scores, curves, target = metrics.deletion(model, x, w[None, ..., 0], steps=4,
                                              return_curves=True)
    expected = _sigmoid([5, 1, -2, -4, -5])
    np.testing.assert_allclose(curves[0], expected, rtol=1e-5)
    np.testing.assert_allclose(scores[0], (expected[1:] + expected[:-1]).sum() / 8, rtol=1e-5)
    assert target.tolist() == [1]
    # A constant map ranks pixels by index: 0, 1, 2, 3 go first.
    flat = np.zeros((1, 2, 2))
    _, curves, _ = metrics.deletion(model, x, flat, steps=4, return_curves=True)
    np.testing.assert_allclose(curves[0], _sigmoid([5, 4, 2, -1, -5]), rtol=1e-5)
    # Insertion from black, two steps: nothing (-5), pixels 3 and 2 (2), all (5).
    _, curves, _ = metrics.insertion(model, x, w[None, ..., 0], steps=2, baseline="black",
                                     return_curves=True)
    np.testing.assert_allclose(curves[0], _sigmoid([-5, 2, 5]), rtol=1e-5)
    # An explicit target: class 0's probability is 1 - sigmoid.
    _, curves, _ = metrics.deletion(model, x, w[None, ..., 0], targets=0, steps=4,
                                    return_curves=True)
    np.testing.assert_allclose(curves[0], 1 - expected, rtol=1e-5)


def test_the_exact_attribution_gets_the_best_deletion_and_insertion_scores():
    rng = np.random.default_rng(0)
    w = rng.normal(size=(8, 8, 3)).astype(np.float32) * 0.3
    x = rng.uniform(0, 1, size=(6, 8, 8, 3)).astype(np.float32)
    model = linear(w)
    exact = (x * w).sum(-1)  # gradient x input of a linear model: each pixel's contribution
    targets = np.ones(6, np.int32)
    best = metrics.deletion(model, x, exact, targets, steps=16)
    for attr in [rng.normal(size=exact.shape) for _ in range(10)] + [-exact]:
        assert (best <= metrics.deletion(model, x, attr, targets, steps=16) + 1e-9).all()
    best = metrics.insertion(model, x, exact, targets, steps=16, baseline="black")
    for attr in [rng.normal(size=exact.shape) for _ in range(10)] + [-exact]:
        other = metrics.insertion(model, x, attr, targets, steps=16, baseline="black")
        assert (best >= other - 1e-9).all()
    # From the blurred copy the exact attribution is w . (x - blur(x)).
    blurred = imaging.gaussian_blur(x, 5.0).numpy()
    exact_blur = ((x - blurred) * w).sum(-1)
    best = metrics.insertion(model, x, exact_blur, targets, steps=16)
    for attr in [rng.normal(size=exact.shape) for _ in range(10)]:
        assert (best >= metrics.insertion(model, x, attr, targets, steps=16) - 1e-9).all()


def test_mu_fidelity_is_one_for_the_exact_attribution_and_matches_numpy():
    rng = np.random.default_rng(1)
    w = rng.normal(size=(16, 16, 3)).astype(np.float32)
    x = rng.uniform(0, 1, size=(4, 16, 16, 3)).astype(np.float32)
    model = linear(w)
    exact = (x * w).sum(-1)
    np.testing.assert_allclose(metrics.mu_fidelity(model, x, exact, targets=1), 1.0, atol=1e-5)
    # A random map against a numpy reference of the same subsets.
    attr = rng.normal(size=exact.shape)
    scores, mass, drop, _ = metrics.mu_fidelity(model, x, attr, targets=1, grid=4,
                                                fraction=0.25, subsets=20, seed=3,
                                                return_parts=True)
    cells = fa.cell_index(16, 16, 4)
    subsets = fa.subset_masks(4, 0.25, 20, 3)
    assert (subsets.sum(1) == 4).all()
    for i in range(4):
        inside = subsets[:, cells]  # [M, H, W]
        ref_mass = (attr[i][None] * inside).sum((1, 2))
        ref_drop = (exact[i][None] * inside).sum((1, 2))  # linear, black baseline
        np.testing.assert_allclose(mass[i], ref_mass, rtol=1e-4, atol=1e-4)
        np.testing.assert_allclose(drop[i], ref_drop, rtol=1e-4, atol=1e-4)
        np.testing.assert_allclose(scores[i], np.corrcoef(ref_mass, ref_drop)[0, 1], atol=1e-4)
    # Same seed, same subsets; a constant map correlates with nothing.
    np.testing.assert_array_equal(subsets, fa.subset_masks(4, 0.25, 20, 3))
    assert metrics.mu_fidelity(model, x, np.ones_like(exact), targets=1).tolist() == [0.0] * 4


def test_gaussian_blur_matches_scipy_inside_and_keeps_a_constant_image():
    rng = np.random.default_rng(2)
    x = rng.uniform(0, 1, size=(2, 20, 24, 3)).astype(np.float32)
    ours = imaging.gaussian_blur(x, 1.5).numpy()
    ref = np.stack([ndimage.gaussian_filter(x[i], (1.5, 1.5, 0), truncate=3.0)
                    for i in range(2)])
    r = 5  # ceil(3 * 1.5)
    np.testing.assert_allclose(ours[:, r:-r, r:-r], ref[:, r:-r, r:-r], atol=1e-5)
    np.testing.assert_allclose(imaging.gaussian_blur(np.full((1, 9, 9, 1), 7.0), 5.0), 7.0,
                               rtol=1e-5)


def test_a_softmax_head_is_read_as_its_logits_and_bad_input_is_refused():
    rng = np.random.default_rng(3)
    inputs = keras.Input((8, 8, 3))
    h = keras.layers.Flatten()(inputs)
    logits = keras.layers.Dense(3, name="logits")(h)
    soft = keras.Model(inputs, keras.layers.Softmax()(logits))
    plain = keras.Model(inputs, logits)
    x = rng.uniform(0, 1, size=(3, 8, 8, 3)).astype(np.float32)
    a = rng.normal(size=(3, 8, 8))
    np.testing.assert_allclose(metrics.mu_fidelity(soft, x, a, subsets=16),
                               metrics.mu_fidelity(plain, x, a, subsets=16), atol=1e-6)
    np.testing.assert_allclose(metrics.deletion(soft, x, a, steps=8),
                               metrics.deletion(plain, x, a, steps=8), atol=1e-6)
    with pytest.raises(ValueError, match=r"attributions.*\[N, H, W\]"):
        metrics.deletion(plain, x, a[:, :4])
    with pytest.raises(ValueError, match="finite"):
        metrics.insertion(plain, x, np.where(a > 0, np.nan, a))
    with pytest.raises(ValueError, match=r"targets.*\[0, 3\)"):
        metrics.deletion(plain, x, a, targets=3)
    with pytest.raises(ValueError, match="steps"):
        metrics.deletion(plain, x, a, steps=65)
    with pytest.raises(ValueError, match="baseline"):
        metrics.deletion(plain, x, a, baseline="grey")


def test_mu_fidelity_numerics_constant_huge_and_too_few_subsets():
    # Issue 44: a constant map scored [0.079, 0.321, ...] (float32 ulps between subset masses),
    # a map scaled to 1e37 gave NaN (float32 overflow), subsets=1 / 2 gave 0 / ±1 silently.
    rng = np.random.default_rng(4)
    w = rng.normal(size=(15, 15, 3)).astype(np.float32)  # 15 px: cells of unequal size
    x = rng.uniform(0, 1, size=(4, 15, 15, 3)).astype(np.float32)
    model = linear(w)
    for value in (0.1, 3.3e-7, -12.7):
        got = metrics.mu_fidelity(model, x, np.full(x.shape[:3], value, np.float32), targets=1,
                                  grid=4, subsets=32)
        assert got.tolist() == [0.0] * 4, (value, got)
    attr = rng.normal(size=x.shape[:3]).astype(np.float32)
    plain = metrics.mu_fidelity(model, x, attr, targets=1, grid=4, subsets=32)
    huge = metrics.mu_fidelity(model, x, attr * np.float32(1e37), targets=1, grid=4, subsets=32)
    assert np.isfinite(huge).all()
    np.testing.assert_allclose(huge, plain, atol=1e-6)  # Pearson is scale-free
    for subsets in (1, 2):
        with pytest.raises(ValueError, match=rf"`subsets` must be >= 3.*subsets={subsets}"):
            metrics.mu_fidelity(model, x, attr, targets=1, subsets=subsets)
