import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_icnn import losses, templates
from keras_icnn.layers import InterpretableConv, InterpretableMask, label_scope
from keras_icnn.layers.filter_pass import mix_filter_gradient
from keras_icnn.models import InterpretableModel
from tests.layer_contract import run_layer_contract


@pytest.mark.parametrize("kwargs", [
    {"filters": 4, "num_classes": 3},
    {"filters": 4, "num_classes": 3, "gradient": "exact", "mu": "centroid", "loss_schedule": "paper"},
    {"filters": 4, "num_classes": 3, "loss_schedule": "grad_ratio", "gradient_form": "appendix"},
])
def test_contract(kwargs):
    run_layer_contract(InterpretableConv, kwargs, (6, 6, 6, 3), (6, 6, 6, 4), 2, 3)


def test_contract_rectangular_strided_valid_learnable_beta():
    kwargs = {"filters": 5, "kernel_size": (3, 2), "strides": 2, "padding": "valid",
              "num_classes": 3, "learnable_beta": True, "loss_schedule": "inverse_epoch"}
    run_layer_contract(InterpretableConv, kwargs, (6, 9, 7, 2), (6, 4, 3, 5), 3, 3)


def test_contract_single_category():
    run_layer_contract(InterpretableConv, {"filters": 3, "single_category": True},
                       (4, 4, 5, 2), (4, 4, 5, 3), 2, 3, num_classes=2)


def _maps(layer, x):
    """Post-ReLU, pre-mask maps of the layer (numpy)."""
    conv = tf.nn.convolution(x, layer.kernel, padding="SAME") + layer.bias
    return np.maximum(conv.numpy(), 0)


def test_filter_loss_value_and_target_ema_vs_numpy():
    rng = np.random.RandomState(0)
    layer = InterpretableConv(4, num_classes=3, loss_weight=0.5, target_decay=0.9,
                              bias_initializer=keras.initializers.Constant(0.1))
    batches = [(rng.uniform(0, 1, (6, 5, 5, 2)).astype("float32"),
                np.array(lab)) for lab in ([0, 0, 1, 1, 0, 1], [2, 2, 0, 0, 2, 0], [1, 1, 1, 2, 2, 2])]
    ema = np.zeros((3, 4))
    seen = np.zeros(3, bool)
    for x, y in batches:
        layer(x, labels=y, training=True)
        peak = _maps(layer, x).max(axis=(1, 2))
        for c in range(3):
            if np.any(y == c):
                mean = peak[y == c].mean(0)
                ema[c] = 0.9 * ema[c] + 0.1 * mean if seen[c] else mean
                seen[c] = True
        np.testing.assert_allclose(layer.class_activation.numpy(), ema, rtol=1e-5)
        np.testing.assert_array_equal(layer.target_classes.numpy(), ema.argmax(0))
        # add_loss: lambda * sum_f -MI_f on the pre-mask maps.
        expected = 0.5 * losses.mutual_information_loss(_maps(layer, x)).numpy().sum()
        assert len(layer.losses) == 1
        np.testing.assert_allclose(layer.losses[0].numpy(), expected, rtol=1e-4, atol=1e-7)


def test_target_state_changes_only_in_training():
    x = np.random.RandomState(1).uniform(0, 1, (4, 5, 5, 2)).astype("float32")
    layer = InterpretableConv(3, num_classes=2)
    layer(x, labels=[0, 1, 0, 1], training=False)
    np.testing.assert_array_equal(layer.class_activation.numpy(), 0)
    layer(x, training=True)  # no labels: nothing to learn from
    np.testing.assert_array_equal(layer.class_activation.numpy(), 0)
    assert not layer.losses
    layer(x, labels=[0, 1, 0, 1], training=True)
    before = layer.class_activation.numpy().copy()
    assert np.any(before != 0)
    layer(x * 3, labels=[1, 1, 1, 1], training=False)
    np.testing.assert_array_equal(layer.class_activation.numpy(), before)


def test_labels_reach_layer_through_scope_and_fit():
    rng = np.random.RandomState(2)
    x = rng.uniform(0, 1, (8, 6, 6, 3)).astype("float32")
    y = np.array([0, 1, 2, 0, 1, 2, 0, 1])
    layer = InterpretableConv(4, num_classes=3)
    with label_scope(y) as scope:
        layer(x, training=True)
    assert len(scope.filter_losses) == 1 and layer.class_seen.numpy().sum() == 3

    inputs = keras.Input((6, 6, 3))
    h = InterpretableConv(4, num_classes=3, name="ic")(inputs)
    outputs = keras.layers.Dense(3)(keras.layers.GlobalAveragePooling2D()(h))
    model = InterpretableModel(inputs, outputs)
    model.compile("sgd", keras.losses.SparseCategoricalCrossentropy(True))
    ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(4)
    history = model.fit(ds, epochs=2, verbose=0)
    assert "filter_loss" in history.history
    assert model.get_layer("ic").class_seen.numpy().sum() == 3
    assert model.get_layer("ic").epoch.numpy() == 2.0  # inverse_epoch schedule state


def test_grad_ratio_mixing_formula():
    rng = np.random.RandomState(3)
    maps = tf.constant(rng.uniform(0, 1, (3, 4, 4, 2)), tf.float32)
    g = tf.constant(rng.normal(size=(3, 4, 4, 2)), tf.float32)
    up = rng.normal(size=(3, 4, 4, 2)).astype("float32")
    with tf.GradientTape() as tape:
        tape.watch(maps)
        out = mix_filter_gradient(maps, g, 0.25)
    grad = tape.gradient(out, maps, output_gradients=tf.constant(up)).numpy()
    un = np.sqrt((up ** 2).sum(axis=(0, 1, 2)))
    gn = np.sqrt((g.numpy() ** 2).sum(axis=(0, 1, 2)))
    np.testing.assert_allclose(grad, up + 0.25 * un / gn * g.numpy(), rtol=1e-5)
    np.testing.assert_array_equal(out.numpy(), maps.numpy())


def _filter_loss_only_update(policy):
    keras.mixed_precision.set_global_policy(policy)
    keras.utils.set_random_seed(0)
    rng = np.random.RandomState(4)
    x = rng.uniform(0, 1, (8, 6, 6, 3)).astype("float32")
    y = rng.randint(0, 2, 8)
    inputs = keras.Input((6, 6, 3))
    h = InterpretableConv(4, num_classes=2, loss_weight=10.0, name="ic",
                          bias_initializer=keras.initializers.Constant(1.0))(inputs)
    outputs = keras.layers.Dense(2, dtype="float32")(keras.layers.GlobalAveragePooling2D()(h))
    model = InterpretableModel(inputs, outputs)
    before = model.get_layer("ic").kernel.numpy().copy()
    # The task loss is zero: only the filter loss moves the kernel.
    model.compile(keras.optimizers.SGD(100.0), loss=lambda t, p: 0.0 * tf.reduce_sum(p))
    model.fit(x, y, batch_size=8, epochs=1, verbose=0, shuffle=False)
    keras.mixed_precision.set_global_policy("float32")
    return model.get_layer("ic").kernel.numpy() - before


def test_filter_loss_gradient_survives_mixed_precision_loss_scaling():
    ref = _filter_loss_only_update("float32")
    mixed = _filter_loss_only_update("mixed_float16")
    assert np.abs(ref).max() > 1e-6
    np.testing.assert_allclose(mixed, ref, rtol=0.05, atol=0.05 * np.abs(ref).max())


def test_bad_inputs_and_arguments():
    with pytest.raises(ValueError, match=r"expects a 4D input .*Received: input_shape=\(None, 8, 3\)"):
        InterpretableConv(4, num_classes=2)(keras.Input((8, 3)))
    with pytest.raises(ValueError, match=r"at least 2x2.*Received: feature map 1x1"):
        InterpretableConv(4, num_classes=2, padding="valid")(keras.Input((3, 3, 2)))
    with pytest.raises(ValueError, match="`num_classes` must be an integer >= 2"):
        InterpretableConv(4)
    with pytest.raises(ValueError, match="`gradient` must be one of"):
        InterpretableConv(4, num_classes=2, gradient="fast")
    with pytest.raises(ValueError, match="`loss_schedule` must be one of"):
        InterpretableConv(4, num_classes=2, loss_schedule="cosine")
    layer = InterpretableConv(2, num_classes=3)
    x = np.ones((2, 4, 4, 1), np.float32)
    with pytest.raises(ValueError, match=r"labels` must lie in \[0, 3\)\. Received: min=0, max=3"):
        layer(x, labels=[0, 3], training=True)


@pytest.mark.parametrize("gradient", ["approximate", "exact"])
def test_templates_used_by_layer_are_the_paper_templates(gradient):
    # A rectangular map and a non-default beta: the layer's filter loss is the loss of
    # template_matrix(5, 7, beta=3), given explicitly.
    layer = InterpretableConv(2, num_classes=2, beta=3.0, gradient=gradient)
    layer.build((None, 5, 7, 1))
    maps = np.random.RandomState(0).uniform(0, 30, (4, 5, 7, 2)).astype(np.float32)
    got = layer.filter_loss_per_filter(tf.constant(maps), tf.constant([0, 1, 0, 1])).numpy()
    want = losses.mutual_information_loss(
        maps, templates.template_matrix(5, 7, beta=3.0), templates.uniform_log_priors(5, 7),
        fused=False).numpy()
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("fuse", [True, False])
def test_non_finite_maps_never_reach_the_class_statistics(fuse):
    rng = np.random.RandomState(13)
    layer = InterpretableMask(num_classes=3, fused=fuse)
    maps = np.maximum(rng.normal(size=(4, 5, 4, 3)), 0).astype("float32")
    y = np.array([0, 1, 2, 0])
    layer.build(maps.shape)
    with label_scope(y):
        layer(tf.constant(maps), training=True)
    before = (layer.class_activation.numpy().copy(), layer.class_seen.numpy().copy())
    bad = maps.copy()
    bad[2, 1, 1, 0] = np.nan
    with label_scope(y):
        layer(tf.constant(bad), training=True)
    np.testing.assert_array_equal(layer.class_activation.numpy(), before[0])
    np.testing.assert_array_equal(layer.class_seen.numpy(), before[1])
