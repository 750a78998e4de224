"""Decision trees over a CNN's filters (survey §4.2, SPEC §9): the decision modes a model uses
for a class, coarse to fine, and each image's explanation as its parse path.

Example:
    >>> from keras_icnn.trees import DecisionTree
    >>> tree = DecisionTree.fit(model, images, class_index=0, labels=labels)
    >>> print(tree.describe(tree.parse(model, images[:1]), 0))
"""
from keras_icnn.trees.measures import (  # noqa: F401
    contribution_fitness, contribution_pearson, depth_measures, estimate_error, tree_accuracy)
from keras_icnn.trees.modes import ModeTable, load_trees, save_trees  # noqa: F401
from keras_icnn.trees.rationale import Rationales, rationales  # noqa: F401
from keras_icnn.trees.tree import DecisionTree, TreeParse  # noqa: F401

__all__ = ["DecisionTree", "TreeParse", "Rationales", "rationales", "depth_measures",
           "ModeTable", "save_trees", "load_trees",
           "estimate_error", "contribution_fitness", "contribution_pearson", "tree_accuracy"]
