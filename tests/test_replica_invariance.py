"""The ICNN filter loss is a global-batch quantity: replicas do not change it (issue 13)."""
import numpy as np
import pytest
import tensorflow as tf

from keras_icnn import distribute
from keras_icnn.layers import InterpretableConv

B, H, W, C = 8, 6, 6, 3


def _layer(gradient):
    layer = InterpretableConv(5, num_classes=3, gradient=gradient, loss_weight=1.0)
    layer.build((None, H, W, C))
    rng = np.random.default_rng(3)
    layer.kernel.assign(rng.normal(0, 1.5, layer.kernel.shape).astype("float32"))
    # Fix the target classes (filters 0..4 -> classes 0,1,2,0,1) so both runs share them.
    act = np.zeros((3, 5), np.float32)
    act[[0, 1, 2, 0, 1], range(5)] = 1.0
    layer.class_activation.assign(act)
    layer.class_seen.assign(np.ones(3, np.float32))
    return layer


def _loss_and_grad(layer, x, y):
    """Per replica: the layer's filter loss and d(loss / R)/d(input), as Keras scales it."""
    replicas = tf.distribute.get_replica_context().num_replicas_in_sync
    with tf.GradientTape() as tape:
        tape.watch(x)
        maps = layer.conv_relu(x)
        loss = tf.reduce_sum(layer.filter_loss_per_filter(maps, y))
        scaled = loss / replicas
    return loss, tape.gradient(scaled, x)


@pytest.mark.parametrize("gradient", ["approximate", "exact"])
def test_filter_loss_and_its_gradient_do_not_depend_on_the_replica_count(gradient):
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 4, (B, H, W, C)).astype("float32")
    y = np.array([0, 1, 2, 0, 1, 2, 0, 1], np.int32)
    layer = _layer(gradient)

    single_loss, single_grad = tf.function(_loss_and_grad)(layer, tf.constant(x), tf.constant(y))

    strategy = distribute.get_strategy("mirrored", num_cpu_devices=2)
    assert strategy.num_replicas_in_sync == 2
    ds = strategy.experimental_distribute_dataset(
        tf.data.Dataset.from_tensor_slices((x, y)).batch(B))
    step = tf.function(lambda a, b: strategy.run(_loss_and_grad, args=(layer, a, b)))
    (xs, ys), = list(ds)
    losses, grads = step(xs, ys)
    per_replica_losses = [t.numpy() for t in strategy.experimental_local_results(losses)]
    grad = np.concatenate([g.numpy() for g in strategy.experimental_local_results(grads)])

    # Same global-batch value on every replica, equal to the one-replica value.
    for value in per_replica_losses:
        np.testing.assert_allclose(value, single_loss.numpy(), rtol=1e-5, atol=1e-5)
    # The gradient reaching each replica's inputs is that of the global loss.
    np.testing.assert_allclose(grad, single_grad.numpy(), rtol=1e-5, atol=1e-5)
    assert np.abs(single_grad.numpy()).max() > 1e-4  # not a vacuous comparison


def test_per_replica_loss_would_differ():
    """Guards the test above: the loss of half the batch is not the global one."""
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 4, (B, H, W, C)).astype("float32")
    y = np.array([0, 1, 2, 0, 1, 2, 0, 1], np.int32)
    layer = _layer("approximate")
    whole = tf.reduce_sum(layer.filter_loss_per_filter(layer.conv_relu(x), y)).numpy()
    half = tf.reduce_sum(layer.filter_loss_per_filter(layer.conv_relu(x[:4]), y[:4])).numpy()
    assert abs(whole - half) > 1e-3
