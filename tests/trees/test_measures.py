"""The tree's measures (trees/measures.py) by hand."""
import numpy as np
import pytest

from keras_icnn import trees


def test_measures_by_hand():
    assert trees.estimate_error([1.0, 3.0], [2.0, 2.0]) == pytest.approx(0.5)
    est = np.array([[1.0, 0.0, 1.0], [0.0, 0.0, 0.0], [1.0, 2.0, 3.0]])
    true = np.array([[1.0, 0.0, -1.0], [0.0, 0.0, 0.0], [2.0, 4.0, 6.0]])
    # 1 - |ρ̂-ρ|₁ / (|ρ̂|₁ + |ρ|₁): 1 - 2/4, two zero rows agree, 1 - 6/18.
    np.testing.assert_allclose(trees.contribution_fitness(est, true), [0.5, 1.0, 2 / 3])
    np.testing.assert_allclose(trees.contribution_pearson(est, true),
                               [0.0, 0.0, 1.0], atol=1e-12)
    a, b = np.array([[1.0, 2.0, 4.0]]), np.array([[2.0, 1.0, 3.0]])
    assert trees.contribution_pearson(a, b)[0] == pytest.approx(np.corrcoef(a[0], b[0])[0, 1])
