"""The report's decision trees (evaluation/trees.py): the training images each tree sees, and
each leaf's mode, by hand."""
import numpy as np
import tensorflow as tf

from keras_icnn.evaluation.trees import mode_of_leaves, training_images
from keras_icnn.trees import DecisionTree, Rationales


class _Source:
    num_classes = 3

    def __init__(self, labels):
        self.labels = np.asarray(labels)

    def dataset(self, split, batch_size, as_supervised=True):
        assert split == "train"
        images = np.arange(len(self.labels), dtype=np.float32)[:, None, None, None]
        return tf.data.Dataset.from_tensor_slices((images, self.labels)).batch(batch_size)


def test_training_images_are_the_first_per_class_in_split_order():
    labels = [0, 1, 0, 0, 2, 1, 0, 1, 2, 2, 1]
    x, y = training_images(_Source(labels), per_class=2, batch_size=3)
    # The first two of each class, in order: images 0, 2 (class 0), 1, 5 (1), 4, 8 (2).
    np.testing.assert_array_equal(x[:, 0, 0, 0], [0, 1, 2, 4, 5, 8])
    np.testing.assert_array_equal(y, [0, 1, 0, 2, 1, 2])


def test_each_leaf_climbs_to_its_mode():
    # Two groups of rationales in disjoint filters: two modes under the root.
    g = np.array([[1, 0, 0, 0], [1, 0.1, 0, 0], [0, 0, 1, 0], [0, 0, 1, 0.1]], float)
    r = Rationales(np.ones_like(g), g, g.sum(1), np.zeros(4, int))
    tree = DecisionTree.from_rationales(r, 0, prior=0.3, sparsity=0.0)
    leaves, modes = mode_of_leaves(tree)
    assert len(set(modes)) == 2 and set(modes) == set(tree.modes(1))
    want = {}
    for leaf in leaves:  # climb by hand
        v = leaf
        while tree.parent[v] != tree.root:
            v = tree.parent[v]
        want[leaf] = v
    assert dict(zip(leaves, modes)) == want
    assert modes[0] == modes[1] and modes[2] == modes[3] and modes[0] != modes[2]
