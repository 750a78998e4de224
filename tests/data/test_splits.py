"""Stratified split counts (data/splits.py)."""
import numpy as np

from keras_icnn.data import splits


def test_stratified_counts_are_floor_or_ceil_of_the_share():
    rng = np.random.default_rng(0)
    sizes = np.array([30, 29, 31, 5, 30, 30])
    for n in (0, 7, 40, 100, 155, 1000):
        counts = splits.stratified_counts(sizes, n, rng)
        share = min(n, sizes.sum()) * sizes / sizes.sum()
        assert counts.sum() == min(n, sizes.sum())
        assert np.all(counts >= np.floor(share)) and np.all(counts <= np.ceil(share))
        assert np.all(counts <= sizes)
