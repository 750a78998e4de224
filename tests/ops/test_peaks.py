"""A map's peak, found once (ops/peaks.py): numpy's argmax, ties to the first unit, both ways."""
import numpy as np
import pytest
import tensorflow as tf

from keras_icnn.ops.peaks import peak_units


@pytest.mark.parametrize("via_max", [False, True])
def test_peak_units_equal_numpy_with_ties_to_the_first_unit(via_max):
    rng = np.random.RandomState(0)
    maps = rng.uniform(size=(3, 4, 5, 2)).astype("float32")
    maps[1, :, :, 0] = 0.0  # all tied: the first unit
    maps[2, 1, 3, 1] = maps[2, 3, 0, 1] = 9.0  # two tied peaks: row-major first
    i, j, score = peak_units(tf.constant(maps), via_max=via_max)
    flat = maps.reshape(3, 20, 2)
    idx = flat.argmax(axis=1)
    np.testing.assert_array_equal(i.numpy(), idx // 5)
    np.testing.assert_array_equal(j.numpy(), idx % 5)
    np.testing.assert_array_equal(score.numpy(), flat.max(axis=1))
    assert (i.numpy()[1, 0], j.numpy()[1, 0]) == (0, 0)
    assert (i.numpy()[2, 1], j.numpy()[2, 1]) == (1, 3)


def test_peak_units_under_xla_matches_eager():
    maps = tf.constant(np.random.RandomState(1).normal(size=(2, 6, 6, 3)).astype("float32"))
    eager = peak_units(maps, via_max=True)
    compiled = tf.function(lambda m: peak_units(m, via_max=True), jit_compile=True)(maps)
    for a, b in zip(eager, compiled):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
