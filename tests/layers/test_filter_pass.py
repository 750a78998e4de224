"""The fused training pass (layers/filter_pass.py) equals the unfused call; non-finite maps are reported."""
import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_icnn import losses
from keras_icnn.layers import InterpretableConv, InterpretableMask, label_scope


def _training_call(layer, x, y, upstream):
    """Masked output, weighted filter loss, d/d(x, kernel, bias) of
    ``sum(out * upstream) + loss``, the target statistics and the scope's finite flag."""
    x = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(x)
        with label_scope(y) as scope:
            out = layer(x, training=True)
        loss = tf.add_n(layer.losses)
        total = tf.reduce_sum(out * upstream) + loss
    grads = tape.gradient(total, [x, layer.kernel, layer.bias])
    return ([out.numpy(), loss.numpy()] + [g.numpy() for g in grads]
            + [layer.class_activation.numpy(), layer.class_seen.numpy(),
               bool(scope.finite_maps[0][1].numpy())])


@pytest.mark.parametrize("kwargs", [
    {},
    {"gradient": "exact"},
    {"mu": "centroid", "loss_schedule": "paper", "gradient_form": "appendix"},
    {"single_category": True, "positive_class": 2, "beta": 3.0},
])
def test_fused_training_call_equals_the_unfused_one(kwargs):
    # One replica: the training call runs as one XLA function (loss, eq. 5 in factored form,
    # statistics, mask) plus one for its gradient. It must give what the ordinary ops give:
    # output, loss, gradients w.r.t. input and weights, statistics. Maps with ties (a dead
    # filter: all zeros; duplicated maxima) exercise the first-maximum rule of both paths.
    rng = np.random.RandomState(11)
    x = rng.uniform(0, 1, (12, 7, 6, 3)).astype("float32")
    x[:, 2:4, 1:3, :] = x[:, 2:3, 1:2, :]  # a 2x2 block of equal values
    y = rng.randint(0, 4, 12)
    upstream = tf.constant(rng.normal(size=(12, 7, 6, 5)), tf.float32)
    results = []
    for fuse in (True, False):
        keras.utils.set_random_seed(5)
        layer = InterpretableConv(5, num_classes=4, loss_weight=2.0, fused=fuse, **kwargs)
        layer.build(x.shape)
        kernel = layer.kernel.numpy()
        kernel[..., 4] = -np.abs(kernel[..., 4])  # filter 4 dead: its map is all zero
        layer.kernel.assign(kernel)
        results.append(_training_call(layer, x, y, upstream))
        assert layer._fuses_training() == fuse
    fused, plain = results
    for name, a, b in zip(("out", "loss", "d_x", "d_kernel", "d_bias", "activation", "seen"),
                          fused, plain):
        scale = max(np.abs(b).max(), 1e-12)
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6 + 1e-5 * scale, err_msg=name)
    assert fused[-1] and plain[-1]


@pytest.mark.parametrize("gradient", ["approximate", "exact"])
@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_fused_training_call_reports_non_finite_maps(bad, gradient):
    # The fused call reads finiteness from the K loss values: one NaN or +Inf anywhere in a
    # map must make its filter's loss non-finite (checked at every position of one map).
    rng = np.random.RandomState(12)
    layer = InterpretableMask(num_classes=3, gradient=gradient)
    maps = np.maximum(rng.normal(size=(4, 5, 4, 3)), 0).astype("float32")
    y = np.array([0, 1, 2, 0])
    layer.build(maps.shape)
    for flat in range(5 * 4):
        m = maps.copy()
        m[1, flat // 4, flat % 4, 2] = bad
        with label_scope(y) as scope:
            layer(tf.constant(m), training=True)
        assert not bool(scope.finite_maps[0][1].numpy()), (bad, flat)
    with label_scope(y) as scope:
        layer(tf.constant(maps), training=True)
    assert bool(scope.finite_maps[0][1].numpy())
