"""The tree's bottom-up learning (trees/learning.py): the objective, recounted by numpy."""
import numpy as np
import pytest

from keras_icnn.trees import DecisionTree, rationales
from keras_icnn.trees.learning import node_scores, unit_rows
from tests.trees.conftest import D, ancestor


def test_objective_never_decreases_and_equals_a_numpy_recount(known_modes):
    model, _, x = known_modes
    r = rationales(model, x, class_index=0)
    tree = DecisionTree.from_rationales(r, 0, prior=1.0, sparsity=0.01)
    assert np.all(np.diff(tree.objective) > 0)
    # Recount the final objective from the second-level partition, by numpy.
    tops = [v for v in range(len(tree.parent)) if tree.parent[v] == tree.root]
    units = unit_rows(r.weights)
    total = 0.0
    for v in tops:
        members = [i for i in range(len(x)) if ancestor(tree, i, v)]
        s = units[members].sum(0)  # a leaf is scored like any node
        sq = np.sort(s ** 2)[::-1]
        total += max(np.sqrt(sq[:k].sum()) - 0.01 * len(members) * k for k in range(1, D + 1))
    assert tree.objective[-1] == pytest.approx(total - 1.0 * len(tops), rel=1e-5)
    f, k = node_scores(np.ones((1, 4)), np.array([4.0]), 0.5)  # by hand: max_k √k − 2k = -1
    assert (f[0], k[0]) == (pytest.approx(-1.0), 1)
