"""A model and images whose decision modes are known by construction (the tree tests)."""
import keras
import numpy as np
import pytest


N_GROUP, SIDE = 6, 8
D = 4 + 2 * N_GROUP  # shared filters 0,1 (mode A) and 2,3 (mode B), one private filter per image


def known_modes_model():
    """Identity 1x1 conv (ReLU) -> global average pooling -> Dense(2) with known weights: the
    rationale of class 0 is ḡ_d = W[d, 0] / (SIDE * SIDE) wherever filter d responds."""
    inputs = keras.Input((SIDE, SIDE, D))
    conv = keras.layers.Conv2D(D, 1, activation="relu", use_bias=False, name="conv")
    x = conv(inputs)
    x = keras.layers.GlobalAveragePooling2D()(x)
    head = keras.layers.Dense(2, name="head")
    model = keras.Model(inputs, head(x))
    w = np.zeros((D, 2), np.float32)
    w[:4, 0] = [2.0, 1.5, -1.0, 2.5]
    w[4:, 0] = 0.4
    w[:, 1] = 0.1
    head.set_weights([w, np.array([0.3, -0.2], np.float32)])
    conv.set_weights([np.eye(D, dtype=np.float32)[None, None]])
    return model, w


def known_modes_images(seed=0):
    """Group A (images 0..5) uses filters 0, 1 and its private filter 4+i; group B (6..11)
    filters 2, 3 and 4+N_GROUP+i; intensities vary per image."""
    rng = np.random.default_rng(seed)
    x = np.zeros((2 * N_GROUP, SIDE, SIDE, D), np.float32)
    for i in range(N_GROUP):  # building the test data, not library code
        x[i, ..., [0, 1]] = rng.uniform(0.5, 1.5, (2, 1, 1))
        x[i, ..., 4 + i] = 0.5
        x[N_GROUP + i, ..., [2, 3]] = rng.uniform(0.5, 1.5, (2, 1, 1))
        x[N_GROUP + i, ..., 4 + N_GROUP + i] = 0.5
    return x


@pytest.fixture(scope="module")
def known_modes():
    keras.utils.set_random_seed(0)
    model, w = known_modes_model()
    return model, w, known_modes_images()


def ancestor(tree, u, v):
    while u >= 0:
        if u == v:
            return True
        u = tree.parent[u]
    return False
