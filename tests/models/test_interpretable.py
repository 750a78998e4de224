import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_icnn.layers import InterpretableConv
from keras_icnn.models import (InterpretableModel, alexnet_backbone, make_interpretable,
                               resnet20_backbone, vgg_backbone)


def _data(n=8, size=32, classes=3):
    rng = np.random.RandomState(0)
    return (rng.randint(0, 256, (n, size, size, 3)).astype("float32"),
            rng.randint(0, classes, n))


def test_vgg_conversion_copies_weights_and_adds_layer():
    base = vgg_backbone((32, 32, 3), num_classes=3, width=8)
    model = make_interpretable(base, "top_conv", loss_weight=0.05, mu="centroid")
    assert isinstance(model, InterpretableModel)
    layers = model.interpretable_layers
    assert [layer.name for layer in layers] == ["top_conv", "top_conv_interp"]
    assert layers[0].loss_weight == 0.05 and layers[1].mu == "centroid"
    assert layers[1].kernel.shape == (3, 3, 64, 64) and layers[1].num_classes == 3
    np.testing.assert_array_equal(layers[0].kernel.numpy(), base.get_layer("top_conv").kernel.numpy())
    np.testing.assert_array_equal(model.get_layer("block1_conv1").kernel.numpy(),
                                  base.get_layer("block1_conv1").kernel.numpy())
    # The original model is untouched and does not share variables.
    assert base.get_layer("block1_conv1").kernel is not model.get_layer("block1_conv1").kernel
    # Below the interpretable layers both networks compute the same thing.
    x, y = _data()
    a = keras.Model(base.inputs, base.get_layer("block3_pool").output)(x)
    b = keras.Model(model.inputs, model.get_layer("block3_pool").output)(x)
    np.testing.assert_allclose(a, b, rtol=1e-6)


# Every backbone under XLA; arrays on one of them, a tf.data pipeline on the others (each
# input kind traces and compiles the train step again: ~10 s a fit; VGG with both took 96 s
# late in the suite on an AVX2 AMD EPYC). AlexNet without XLA took 9 s
# alone but 49-118 s late in the suite, see docs/internals.md.
@pytest.mark.parametrize("builder,inputs", [(vgg_backbone, ("dataset",)),
                                            (alexnet_backbone, ("arrays",)),
                                            (resnet20_backbone, ("dataset",))])
def test_fit_with_arrays_and_dataset_jit(builder, inputs):
    kwargs = {"blocks_per_stage": 1} if builder is resnet20_backbone else {}
    base = builder((32, 32, 3), num_classes=3, width=8, **kwargs)
    model = make_interpretable(base, "top_conv")
    x, y = _data()
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(True),
                  metrics=["accuracy"], jit_compile=True)
    histories = []
    if "arrays" in inputs:
        histories.append(model.fit(x, y, batch_size=4, epochs=1, verbose=0))
    if "dataset" in inputs:
        ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(4)
        histories.append(model.fit(ds, epochs=1, verbose=0))
    for h in histories:
        assert np.isfinite(h.history["loss"][0]) and h.history["filter_loss"][0] <= 1e-4
    for layer in model.interpretable_layers:
        assert layer.class_seen.numpy().sum() > 0


def test_resnet_layers_go_after_last_stage():
    base = resnet20_backbone((32, 32, 3), num_classes=3, width=8, blocks_per_stage=1)
    model = make_interpretable(base, "top_conv")
    names = [layer.name for layer in model.layers]
    i = names.index("top_conv")
    assert names[i + 1:i + 3] == ["top_conv_interp1", "top_conv_interp2"]
    assert all(isinstance(model.layers[j], InterpretableConv) for j in (i + 1, i + 2))


def test_single_category_and_errors():
    base = vgg_backbone((32, 32, 3), num_classes=2, width=8)
    model = make_interpretable(base, "top_conv", single_category=True)
    assert all(layer.single_category for layer in model.interpretable_layers)
    with pytest.raises(ValueError, match="no layer named 'nope'"):
        make_interpretable(base, "nope")
    with pytest.raises(ValueError, match="4D output"):
        make_interpretable(base, "fc1")


def _count_traces(model):
    """Make ``model`` record each Python run of its train_step (one per trace)."""
    traces, step = [], model.train_step

    def counting_step(data):
        traces.append(1)
        return step(data)

    model.train_step = counting_step
    return traces


@pytest.mark.parametrize("jit", [False, True])
def test_training_traces_the_step_once(jit):
    """No per-step or per-epoch retracing (epoch counters, schedules and target classes are
    variables, not Python values baked into the trace)."""
    base = vgg_backbone((32, 32, 3), num_classes=3, width=4, dense_units=16)
    model = make_interpretable(base, "top_conv", loss_schedule="inverse_epoch")
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(True), jit_compile=jit)
    traces = _count_traces(model)
    x, y = _data(n=8)
    ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(4)
    per_epoch = []
    record = keras.callbacks.LambdaCallback(on_epoch_end=lambda e, logs: per_epoch.append(len(traces)))
    model.fit(ds, epochs=3, verbose=0, callbacks=[record])
    # Keras traces the first step twice when that trace creates the optimizer's slot
    # variables (a plain keras.Model does the same); after that, never again.
    assert per_epoch[0] <= 2 and per_epoch == [per_epoch[0]] * 3, per_epoch
    assert float(model.interpretable_layers[0].epoch.numpy()) == 3.0  # the schedule moved
