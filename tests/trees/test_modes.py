"""An image's decision mode in TF (trees/modes.py) equals the tree's own parse at depth 1; the
exported `explain` signature answers it from a plain tf.saved_model.load."""
import numpy as np
import pytest
import tensorflow as tf

from keras_icnn.export import export_model
from keras_icnn.trees import DecisionTree, ModeTable, load_trees, rationales, save_trees
from tests.trees.conftest import D, N_GROUP


@pytest.fixture(scope="module")
def tree_and_parts(known_modes):
    model, _, x = known_modes
    parts = np.full(D, -1)
    parts[[0, 1]], parts[[2, 3]] = 0, 1
    tree = DecisionTree.fit(model, x, class_index=0, filter_parts=parts,
                            part_names=["head", "wing"])
    return tree, parts


def test_modes_in_tf_equal_the_parse_at_depth_one(known_modes, tree_and_parts):
    model, _, x = known_modes
    tree, _ = tree_and_parts
    parse = tree.parse(model, x)
    r = rationales(model, x, 0)
    table = ModeTable.from_trees({0: tree}, num_classes=2)
    node, shares, estimate = table.assign(np.zeros(len(x), int), r.contributions, r.responses)
    np.testing.assert_array_equal(node.numpy(), parse.paths[:, 1])
    np.testing.assert_allclose(shares.numpy(), parse.part_shares[:, 1], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(estimate.numpy(), parse.estimates[:, 1], rtol=1e-5)
    # A class without a tree gets mode -1.
    node1, _, _ = table.assign(np.ones(2, int), r.contributions[:2], r.responses[:2])
    np.testing.assert_array_equal(node1.numpy(), [-1, -1])
    with pytest.raises(ValueError, match="need filter parts"):
        ModeTable.from_trees({0: DecisionTree.fit(model, x, class_index=0)}, 2)


def test_exported_explain_answers_the_mode(known_modes, tree_and_parts, tmp_path):
    model, _, x = known_modes
    tree, _ = tree_and_parts
    save_trees({0: tree}, str(tmp_path / "trees"))
    trees = load_trees(str(tmp_path / "trees"))
    path = export_model(model, str(tmp_path / "models"), "m", trees=trees, serving_warmup=False)
    served = tf.saved_model.load(path).signatures["explain"]
    out = served(images=tf.constant(x))
    classes = out["class_ids"].numpy()
    want = tree.parse(model, x)
    zero = classes == 0  # images predicted as class 0 get class 0's modes
    assert zero.sum() >= N_GROUP
    np.testing.assert_array_equal(out["mode"].numpy()[zero], want.paths[zero, 1])
    np.testing.assert_array_equal(out["mode"].numpy()[~zero], -1)
    np.testing.assert_allclose(out["mode_part_shares"].numpy()[zero], want.part_shares[zero, 1],
                               rtol=1e-5, atol=1e-6)
    assert (tmp_path / "models" / "m" / "1" / "assets.extra" / "trees.json").is_file()
