import numpy as np
import pytest
import tensorflow as tf

from keras_icnn.layers import ClassSpecificGate, label_scope
from keras_icnn.layers.class_specific_gate import fixed_gate_matrix, project_gate


def test_projection_invariants_after_random_updates():
    rng = np.random.RandomState(0)
    g = np.ones((5, 12), np.float32)
    for _ in range(20):
        g = project_gate(g + rng.normal(scale=0.5, size=g.shape).astype(np.float32)).numpy()
        assert g.min() >= 0.0 and g.max() <= 1.0
        np.testing.assert_allclose(g.max(axis=0), 1.0, rtol=1e-6)
    # Hand case: column divided by its max, negatives clipped, an all-negative column -> ones.
    got = project_gate(np.array([[2.0, -1.0], [1.0, -3.0], [-1.0, -2.0]], np.float32)).numpy()
    np.testing.assert_allclose(got, [[1.0, 1.0], [0.5, 1.0], [0.0, 1.0]])


def test_constraint_projects_after_optimizer_update():
    layer = ClassSpecificGate(3, density=0.5)
    layer.build((None, 2, 2, 4))
    import keras

    opt = keras.optimizers.SGD(1.0)
    opt.apply([tf.constant(np.full((3, 4), -0.5, np.float32) * [[1], [2], [3]])], [layer.gate])
    g = layer.gate.numpy()
    np.testing.assert_allclose(g.max(0), 1.0)
    assert g.min() >= 0


@pytest.mark.parametrize("norm", ["l1", "l2", "smooth_l1"])
def test_sparsity_penalty_vs_numpy(norm):
    layer = ClassSpecificGate(4, density=0.3, sparsity=norm)
    layer.build((None, 3, 3, 5))
    rng = np.random.RandomState(1)
    for scale in (1.0, 0.05):  # above and below g
        g = rng.uniform(0, 1, (4, 5)).astype(np.float32) * scale
        layer.gate.assign(g)
        excess = max(np.abs(g).sum() - 0.3 * 4 * 5, 0.0)
        want = {"l1": excess, "l2": excess ** 2,
                "smooth_l1": 0.5 * excess ** 2 if excess < 1 else excess - 0.5}[norm]
        assert float(layer.sparsity_loss()) == pytest.approx(want, rel=1e-5, abs=1e-6)
    assert float(layer.l1_density()) == pytest.approx(np.abs(g).mean(), rel=1e-6)


def test_gated_output_and_std_identity():
    rng = np.random.RandomState(2)
    x = rng.uniform(size=(4, 3, 3, 5)).astype(np.float32)
    y = np.array([0, 2, 1, 2])
    layer = ClassSpecificGate(3, density=0.5)
    layer.build(x.shape)
    g = rng.uniform(size=(3, 5)).astype(np.float32)
    layer.gate.assign(g)
    np.testing.assert_allclose(layer(x, labels=y).numpy(), x * g[y][:, None, None, :], rtol=1e-6)
    np.testing.assert_array_equal(layer(x).numpy(), x)  # STD path
    with label_scope(y):  # a scope without use_gate keeps the STD path
        np.testing.assert_array_equal(layer(x).numpy(), x)
    with label_scope(y, use_gate=True):
        np.testing.assert_allclose(layer(x).numpy(), x * g[y][:, None, None, :], rtol=1e-6)


def test_fixed_gate_mode():
    g = fixed_gate_matrix(3, 2, 1)
    np.testing.assert_array_equal(g, [[1, 1, 0, 0, 0, 0, 1], [0, 0, 1, 1, 0, 0, 1],
                                      [0, 0, 0, 0, 1, 1, 1]])
    layer = ClassSpecificGate(3, density=0.5, fixed=True, filters_per_class=2, shared_filters=1)
    layer.build((None, 2, 2, 7))
    assert not layer.gate.trainable
    np.testing.assert_array_equal(layer.gate.numpy(), g)
    with pytest.raises(ValueError, match=r"K = num_classes \* filters_per_class \+ shared_filters = 7"):
        ClassSpecificGate(3, density=0.5, fixed=True, filters_per_class=2, shared_filters=1).build(
            (None, 2, 2, 8))


def test_bad_arguments():
    with pytest.raises(ValueError, match=r"`density` must lie in \[1/num_classes, 1\]"):
        ClassSpecificGate(10, density=0.05)
    with pytest.raises(ValueError, match="`sparsity` must be one of"):
        ClassSpecificGate(3, density=0.5, sparsity="l0")
    with pytest.raises(ValueError, match="expects a 4D input"):
        ClassSpecificGate(3, density=0.5).build((None, 4))
