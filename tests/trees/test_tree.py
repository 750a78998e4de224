"""DecisionTree (SPEC §9) on a case whose modes are known by construction."""
import numpy as np
import pytest
import tensorflow as tf

from keras_icnn.trees import DecisionTree, rationales
from keras_icnn.trees.learning import node_scores, unit_rows
from tests.trees.conftest import D, N_GROUP, SIDE, ancestor


def test_the_two_modes_and_their_filters_are_recovered(known_modes):
    model, w, x = known_modes
    labels = np.zeros(len(x), int)
    tree = DecisionTree.fit(model, x, class_index=0, labels=labels)
    modes = tree.modes(depth=1)
    assert len(modes) == 2
    got = {tuple(tree.node(v)["filters"]): tree.size[v] for v in modes}
    assert got == {(0, 1): N_GROUP, (2, 3): N_GROUP}
    for v in modes:  # the mode's weights are the known ones, ÷ SIDE²
        f = tree.node(v)["filters"]
        np.testing.assert_allclose(tree.omega[v, f] * SIDE * SIDE, w[f, 0], rtol=1e-6)
    # Each mode holds exactly its group's images.
    for v, group in zip(sorted(modes, key=lambda v: tree.node(v)["filters"][0]),
                        (range(N_GROUP), range(N_GROUP, 2 * N_GROUP))):
        leaves = [u for u in range(len(tree.parent)) if tree.leaf_image[u] >= 0
                  and ancestor(tree, u, v)]
        assert sorted(tree.leaf_image[leaves]) == list(group)


def test_training_images_parse_to_their_own_leaf_and_estimates_are_numpy(known_modes):
    model, _, x = known_modes
    tree = DecisionTree.fit(model, x, class_index=0, sparsity=0.0)
    parse = tree.parse(model, x)
    np.testing.assert_array_equal(tree.leaf_image[parse.leaves], np.arange(len(x)))
    xbar = x.sum(axis=(1, 2)).astype(np.float64)
    for depth in range(parse.paths.shape[1]):
        for i in range(len(x)):
            v = parse.paths[i, depth]
            if v >= 0:
                assert parse.estimates[i, depth] == pytest.approx(
                    tree.omega[v] @ xbar[i] + tree.bias[v], rel=1e-6, abs=1e-9)
    # At the leaf the estimate is the logit itself (ω = ḡ_I, b = b_I).
    np.testing.assert_allclose(parse.estimates[np.arange(len(x)), (parse.paths >= 0).sum(1) - 1],
                               model.predict(x, verbose=0)[:, 0], rtol=1e-5)


def test_part_shares_and_save_load_round_trip(known_modes, tmp_path):
    model, _, x = known_modes
    parts = np.full(D, -1)
    parts[[0, 1]] = 0
    parts[[2, 3]] = 1
    tree = DecisionTree.fit(model, x, class_index=0, filter_parts=parts,
                            part_names=["head", "wing"])
    parse = tree.parse(model, x)
    mode_a = parse.at_depth(1)[0]
    assert tree.node(mode_a)["filters"] == [0, 1]
    np.testing.assert_allclose(parse.part_shares[0, 1], [1.0, 0.0, 0.0], atol=1e-9)
    text = tree.describe(parse, 0)
    assert "100% head" in text
    tree.save(str(tmp_path / "t"))
    again = DecisionTree.load(str(tmp_path / "t"))
    for name in ("parent", "omega", "alpha", "bias", "size", "leaf_image", "objective",
                 "filter_parts", "depth"):
        np.testing.assert_array_equal(getattr(again, name), getattr(tree, name))
    assert again.part_names == ["head", "wing"] and again.layer == tree.layer == "conv"
    np.testing.assert_array_equal(again.parse(model, x).paths, parse.paths)
    assert not list(tmp_path.glob("t/*.pkl"))
