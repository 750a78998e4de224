"""An image's decision mode inside TensorFlow: the depth-1 node (the root's child) of its
predicted class's tree whose direction is closest to the image's rationale (cosine, the parse
rule's first step), and the part shares of that mode's estimate (SPEC §9). Built from
:class:`~keras_icnn.trees.tree.DecisionTree` objects as constants, so an exported SavedModel
answers it without keras_icnn (:mod:`keras_icnn.export`'s ``explain`` signature).

Example:
    >>> table = ModeTable.from_trees(trees)          # {class: DecisionTree}
    >>> modes, shares = table.assign(classes, contributions, responses)
"""
import json
import os

import numpy as np
import tensorflow as tf

from keras_icnn.trees.learning import unit_rows
from keras_icnn.trees.tree import DecisionTree


def save_trees(trees, path):
    """Write ``{class: DecisionTree}`` as ``path/class_<c>/`` each (no pickle)."""
    os.makedirs(path, exist_ok=True)
    for c, tree in trees.items():
        tree.save(os.path.join(path, f"class_{int(c)}"))
    with open(os.path.join(path, "trees.json"), "w") as f:
        json.dump({"classes": sorted(int(c) for c in trees)}, f)
    return path


def load_trees(path):
    """``{class: DecisionTree}`` written by :func:`save_trees`."""
    index = os.path.join(path, "trees.json")
    if not os.path.isfile(index):
        raise ValueError(f"not a folder of saved decision trees: {index} does not exist "
                         "(write one with keras_icnn.trees.save_trees)")
    with open(index) as f:
        classes = json.load(f)["classes"]
    return {c: DecisionTree.load(os.path.join(path, f"class_{c}")) for c in classes}


class ModeTable:
    """The depth-1 modes of one tree per class, padded into dense constants.

    Attributes: ``directions`` [C, M, D] unit mode directions (zero rows pad), ``omega``
    [C, M, D], ``bias`` [C, M], ``nodes`` int [C, M] (-1 pads), ``part_onehot`` [D, P + 1]
    (each filter's part; the last column: no part), ``part_names`` (P + 1 names).
    """

    def __init__(self, directions, omega, bias, nodes, part_onehot, part_names):
        self.directions, self.omega, self.bias = directions, omega, bias
        self.nodes, self.part_onehot, self.part_names = nodes, part_onehot, part_names

    @classmethod
    def from_trees(cls, trees, num_classes):
        """``trees``: ``{class: DecisionTree}`` (a class without a tree gets mode -1), all of
        the same layer and filter parts."""
        if not trees:
            raise ValueError("`trees` holds no tree")
        first = next(iter(trees.values()))
        if first.filter_parts is None:
            raise ValueError("the trees need filter parts (DecisionTree.fit(filter_parts=...)) "
                             "for the modes' part shares")
        for c, tree in trees.items():
            if not 0 <= int(c) < num_classes:
                raise ValueError(f"a tree's class must lie in [0, {num_classes}). Received: {c}")
            if tree.filter_parts is None or not np.array_equal(tree.filter_parts,
                                                               first.filter_parts):
                raise ValueError("every tree must have the same filter parts")
        d = first.omega.shape[1]
        m = max(len(t.modes(1)) for t in trees.values())
        directions = np.zeros((num_classes, m, d), np.float32)
        omega = np.zeros((num_classes, m, d), np.float32)
        bias = np.zeros((num_classes, m), np.float32)
        nodes = np.full((num_classes, m), -1, np.int32)
        for c, tree in trees.items():  # one tree per class
            ids = np.asarray(tree.modes(1), np.int64)
            directions[int(c), :len(ids)] = unit_rows(tree.omega[ids])
            omega[int(c), :len(ids)] = tree.omega[ids]
            bias[int(c), :len(ids)] = tree.bias[ids]
            nodes[int(c), :len(ids)] = ids
        p = len(first.part_names)
        parts = np.where(first.filter_parts >= 0, first.filter_parts, p)
        onehot = np.eye(p + 1, dtype=np.float32)[parts]
        return cls(directions, omega, bias, nodes, onehot, list(first.part_names) + ["no part"])

    def assign(self, classes, contributions, responses):
        """TF: ``(mode node id [B] int32, part shares [B, P + 1], mode estimate [B])`` of each
        image's mode in its class's tree, from the image's per-filter contributions ρ [B, D]
        and summed responses x̄ [B, D]."""
        rho = tf.cast(contributions, tf.float32)
        x = tf.cast(responses, tf.float32)
        g = tf.math.divide_no_nan(rho, x)  # ḡ: 0 where a filter did not respond
        g = tf.math.l2_normalize(g, axis=-1)
        classes = tf.cast(classes, tf.int32)
        directions = tf.gather(tf.constant(self.directions), classes)  # [B, M, D]
        nodes = tf.gather(tf.constant(self.nodes), classes)  # [B, M]
        cos = tf.einsum("bmd,bd->bm", directions, g)
        cos = tf.where(nodes >= 0, cos, tf.fill(tf.shape(cos), -np.inf))
        best = tf.argmax(cos, axis=-1, output_type=tf.int32)
        node = tf.gather(nodes, best, batch_dims=1)
        omega = tf.gather(tf.gather(tf.constant(self.omega), classes), best, batch_dims=1)
        bias = tf.gather(tf.gather(tf.constant(self.bias), classes), best, batch_dims=1)
        contrib = omega * x
        shares = tf.math.divide_no_nan(tf.matmul(contrib, tf.constant(self.part_onehot)),
                                       tf.reduce_sum(tf.abs(contrib), -1, keepdims=True))
        return node, shares, tf.reduce_sum(contrib, -1) + bias
