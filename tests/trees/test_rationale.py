"""Per-image rationales (trees/rationale.py): the known model's weights; datasets with labels."""
import numpy as np
import pytest
import tensorflow as tf

from keras_icnn.trees import DecisionTree, rationales
from tests.trees.conftest import N_GROUP, SIDE


def test_rationales_are_the_known_weights(known_modes):
    model, w, x = known_modes
    r = rationales(model, x, class_index=0)
    responses = x.sum(axis=(1, 2))
    np.testing.assert_allclose(r.responses, responses, rtol=1e-5)
    want = np.where(responses > 0, w[:, 0] / (SIDE * SIDE), 0.0)
    np.testing.assert_allclose(r.weights, want, rtol=1e-4, atol=1e-9)
    np.testing.assert_allclose(r.logits, model.predict(x, verbose=0)[:, 0], rtol=1e-5)
    np.testing.assert_allclose(r.biases, 0.3, atol=1e-5)  # y = ḡ·x̄ + the head's bias


def test_a_dataset_with_labels_keeps_the_class_images(known_modes):
    model, _, x = known_modes
    labels = np.array([0] * N_GROUP + [1] * N_GROUP)
    ds = tf.data.Dataset.from_tensor_slices((x, labels)).batch(5)
    tree = DecisionTree.fit(model, ds, class_index=0)
    assert tree.size[tree.root] == N_GROUP
    with pytest.raises(ValueError, match="class_index"):
        DecisionTree.fit(model, x, class_index=2)
    with pytest.raises(ValueError, match="no image is labelled"):
        DecisionTree.fit(model, x, class_index=1, labels=np.zeros(len(x), int))
    with pytest.raises(ValueError, match="not a saved DecisionTree"):
        DecisionTree.load("/nonexistent/tree")
