import numpy as np
import pytest
import tensorflow as tf

from keras_icnn.layers import PartMask
from keras_icnn.ops.peaks import peak_units
from tests.layer_contract import run_layer_contract


def test_contract():
    run_layer_contract(PartMask, {}, (4, 5, 6, 3), (4, 5, 6, 3), 0, 0)
    run_layer_contract(PartMask, {"learnable_beta": True, "mu": "centroid"},
                       (4, 5, 5, 3), (4, 5, 5, 3), 1, 0)


def test_mask_hand_case_argmax():
    x = np.zeros((1, 3, 3, 1), np.float32)
    x[0, :, :, 0] = [[1, 2, 3], [4, 9, 6], [7, 8, 5]]  # peak at (1, 1)
    out = PartMask(beta=1.0)(x).numpy()[0, :, :, 0]
    mask = np.array([[1, 2, 1], [2, 3, 2], [1, 2, 1]]) / 3.0
    np.testing.assert_allclose(out, x[0, :, :, 0] * mask, rtol=1e-6)
    # beta = 4: only the peak survives on a 3x3 map.
    out4 = PartMask()(x).numpy()[0, :, :, 0]
    np.testing.assert_allclose(out4, np.diag([0, 9, 0]), rtol=1e-6)


def test_mask_centroid_rectangular():
    x = np.zeros((1, 2, 5, 1), np.float32)
    x[0, 0, 0, 0] = 1.0
    x[0, 0, 4, 0] = 1.0  # centroid (0, 2), argmax (0, 0)
    layer = PartMask(beta=2.0, mu="centroid")
    mask = layer.mask(tf.constant(x)).numpy()[0, :, :, 0]
    n = 5.0
    ii, jj = np.meshgrid(np.arange(2), np.arange(5), indexing="ij")
    expected = np.maximum(1 - 2.0 * (np.abs(ii - 0) + np.abs(jj - 2)) / n, 0)
    np.testing.assert_allclose(mask, expected, rtol=1e-6)


def test_mask_is_constant_for_backprop():
    x = tf.constant(np.random.RandomState(0).uniform(0, 1, (2, 4, 4, 3)), tf.float32)
    layer = PartMask()
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = tf.reduce_sum(layer(x))
    grad = tape.gradient(y, x).numpy()
    np.testing.assert_allclose(grad, layer.mask(x).numpy(), rtol=1e-6)


def test_bad_inputs():
    with pytest.raises(ValueError, match=r"expects a 4D input .* Received: input_shape=\(2, 3, 4\)"):
        PartMask()(np.zeros((2, 3, 4), np.float32))
    with pytest.raises(ValueError, match=r"at least 2x2.*1x4"):
        PartMask()(np.zeros((2, 1, 4, 3), np.float32))
    with pytest.raises(ValueError, match="`mu` must be one of"):
        PartMask(mu="mean")


def test_peak_units_first_maximum_both_ways():
    # Small integers: most maps have tied maxima. argmax and the two-reduction form
    # (via_max, used inside XLA) must both give numpy's first maximum, eager and under XLA.
    rng = np.random.RandomState(7)
    maps = rng.randint(0, 4, (6, 5, 3, 7)).astype("float32")
    maps[:, :, :, 0] = 0.0  # all tied
    flat = maps.reshape(6, 15, 7)
    want = flat.argmax(axis=1)
    for via_max in (False, True):
        for fn in (peak_units, tf.function(peak_units, jit_compile=True)):
            i, j, score = fn(tf.constant(maps), via_max)
            np.testing.assert_array_equal(i.numpy() * 3 + j.numpy(), want)
            np.testing.assert_array_equal(score.numpy(), flat.max(axis=1))
