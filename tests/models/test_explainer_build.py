"""Building an explainer (models/explainer_build.py) from a performer's head."""
import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_icnn.models import build_explainer, plan_head, resnet20_backbone, vgg_backbone
from tests.models.conftest import variable_ids, random_images


@pytest.fixture(scope="module")
def gap_performer():
    """A head with no hidden FC: top conv -> BatchNorm -> ReLU -> GAP -> dropout -> classifier."""
    keras.utils.set_random_seed(1)
    inputs = keras.Input((16, 16, 3))
    x = keras.layers.Conv2D(6, 3, padding="same", activation="relu", name="conv1")(inputs)
    x = keras.layers.Conv2D(8, 3, padding="same", name="top")(x)
    x = keras.layers.BatchNormalization(name="top_bn")(x)
    x = keras.layers.ReLU(name="top_relu")(x)
    x = keras.layers.GlobalAveragePooling2D(name="gap")(x)
    x = keras.layers.Dropout(0.2, name="drop")(x)
    model = keras.Model(inputs, keras.layers.Dense(3, name="logits")(x), name="gapnet")
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(True))
    rng = np.random.RandomState(1)
    model.fit(rng.uniform(0, 1, (16, 16, 16, 3)).astype("float32"), rng.randint(0, 3, 16),
              epochs=1, verbose=0)
    return model


def test_head_without_hidden_fc(gap_performer):
    plan = plan_head(gap_performer, "conv1")
    assert plan.pooled and [plan.head[i].name for i in plan.targets] == ["gap"]
    assert [layer.name for layer in plan.classifier_layers] == ["drop", "logits"]
    explainer, distiller = build_explainer(gap_performer, "conv1")
    # BatchNorm becomes a trainable decoder layer initialised from the performer's; ReLU and
    # pooling are applied as the performer's; a per-channel scale restores its magnitude.
    names = [type(layer).__name__ for layer in explainer.decoder]
    assert names == ["BatchNormalization", "ReLU", "GlobalAveragePooling2D", "ChannelScale"]
    bn, theirs = explainer.decoder[0], gap_performer.get_layer("top_bn")
    for a, b in zip(bn.weights, theirs.weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    trainable = variable_ids(distiller.trainable_variables)
    assert {id(bn.gamma), id(bn.beta), id(explainer.decoder[3].gamma)} <= trainable
    assert not variable_ids(gap_performer.weights) & trainable
    images = random_images(12, seed=4, size=16, high=1.0)
    feats, targets, logits = distiller.performer_outputs(images)
    assert targets[0].shape == (12, 8)
    np.testing.assert_allclose(distiller.classify(targets[0]), logits, rtol=1e-6, atol=1e-6)
    before = [w.numpy().copy() for w in gap_performer.weights]
    distiller.compile(keras.optimizers.Adam(1e-3))
    history = distiller.fit(images, batch_size=6, epochs=1, verbose=0).history
    assert np.isfinite(history["rec_0"][0])
    for a, b in zip(before, gap_performer.weights):
        np.testing.assert_array_equal(a, b.numpy())


def test_a_residual_performer_is_explained_at_its_last_block():
    """The explainer stands in for the last residual block, skip included: it reads the
    block's input, reconstructs the pooled block output (no hidden FC), conv-interp-1 starts
    from the block's last conv, and the frozen performer's own classifier classifies."""
    keras.utils.set_random_seed(2)
    model = resnet20_backbone((32, 32, 3), 3, width=4, blocks_per_stage=2)
    explainer, distiller = build_explainer(model, "stage3_block0_out")
    plan = distiller.plan
    assert plan.top.name == "top_conv" and plan.pooled
    assert [layer.name for layer in plan.head] == ["gap", "logits"]
    assert explainer.filters == 16
    np.testing.assert_array_equal(explainer.conv_interp_1.kernel.numpy(),
                                  model.get_layer("stage3_block1_conv2").kernel.numpy())
    images = random_images(6)
    top, feats, targets, logits = distiller.performer_outputs(images, with_top=True)
    block_out = keras.Model(model.inputs, model.get_layer("top_conv").output)(images)
    np.testing.assert_allclose(top, block_out, rtol=1e-6)
    np.testing.assert_allclose(targets[0], np.asarray(block_out).mean(axis=(1, 2)), rtol=1e-5,
                               atol=1e-6)
    np.testing.assert_allclose(logits, model(images), rtol=1e-5, atol=1e-5)
    before = [w.numpy().copy() for w in model.weights]
    distiller.compile(keras.optimizers.Adam(1e-3))
    history = distiller.fit(images, batch_size=3, epochs=1, verbose=0).history
    assert np.isfinite(history["loss"][0])
    for a, b in zip(before, model.weights):
        np.testing.assert_array_equal(a, b.numpy())
    # Inside the block is not its input: the skip reads stage3_block0_out too.
    with pytest.raises(ValueError, match="reads other layers too"):
        build_explainer(model, "stage3_block1_relu1")


@pytest.mark.parametrize("head", ["activation", "layer"])
def test_a_softmax_head_performer_is_read_through_to_its_logits(head):
    """Dense(activation="softmax") or a final Softmax layer: the explainer's logits (and the
    classifier it applies to reconstructions) are the pre-softmax ones."""
    from keras_icnn.explain import explain

    keras.utils.set_random_seed(0)
    plain = vgg_backbone((32, 32, 3), 3, width=4, dense_units=16)
    images = np.random.RandomState(5).uniform(0, 255, (4, 32, 32, 3)).astype("float32")
    logits = plain.predict(images, verbose=0)
    if head == "layer":
        performer = keras.Model(plain.inputs, keras.layers.Softmax()(plain.outputs[0]))
    else:
        performer = keras.models.clone_model(plain)
        performer.set_weights(plain.get_weights())
        performer.get_layer("logits").activation = keras.activations.softmax
    np.testing.assert_allclose(performer.predict(images, verbose=0),
                               tf.nn.softmax(logits).numpy(), rtol=1e-5, atol=1e-6)
    _, distiller = build_explainer(performer, "block3_pool", initial_p=0.7)
    assert [l.name for l in distiller.plan.decoder_layers][-1] == "fc1"
    _, _, got = distiller.performer_outputs(images)
    np.testing.assert_allclose(got, logits, rtol=1e-5, atol=1e-5)
    e = explain(distiller, images)
    np.testing.assert_allclose(e.logits, logits, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(e.probabilities, tf.nn.softmax(logits).numpy(), rtol=1e-5,
                               atol=1e-6)
    assert performer.get_layer("logits").activation.__name__ == (
        "softmax" if head == "activation" else "linear")  # the user's model unchanged


def test_silent_performer_filters_are_not_copied(performer):
    """A top-conv filter with no positive unit on the probe images (a dead ReLU: no gradient
    can revive it) keeps conv-interp-1's fresh initialisation; every other filter is copied."""
    from keras_icnn.models.explainer_build import silent_filters

    keras.utils.set_random_seed(3)
    dead = keras.models.clone_model(performer)
    dead.set_weights(performer.get_weights())
    top = dead.get_layer("top_conv")
    kernel, bias = top.kernel.numpy(), top.bias.numpy()
    killed = np.zeros(kernel.shape[-1], bool)
    killed[[1, 5, 6]] = True
    kernel[..., killed] = -np.abs(kernel[..., killed])  # inputs are post-ReLU: never positive
    bias[killed] = -1.0
    top.kernel.assign(kernel)
    top.bias.assign(bias)
    images = random_images(8)
    maps = keras.Model(dead.inputs, top.output).predict(images, verbose=0)
    want = maps.max(axis=(0, 1, 2)) <= 0  # numpy's verdict, on the same images
    assert want[killed].all()
    np.testing.assert_array_equal(silent_filters(dead, "top_conv", [images[:3], images[3:]]), want)
    keras.utils.set_random_seed(7)
    fresh, _ = build_explainer(dead, "block3_pool", copy_weights=False)
    keras.utils.set_random_seed(7)
    explainer, _ = build_explainer(dead, "block3_pool", probe_images=images)
    got = explainer.conv_interp_1.kernel.numpy()
    np.testing.assert_array_equal(got[..., ~want], kernel[..., ~want])
    np.testing.assert_array_equal(got[..., want], fresh.conv_interp_1.kernel.numpy()[..., want])
    np.testing.assert_array_equal(explainer.conv_interp_1.bias.numpy()[want], 0.0)
    assert explainer.copied_filters == int((~want).sum())
    # Without probe images every filter is copied (the paper's rule).
    everything, _ = build_explainer(dead, "block3_pool")
    np.testing.assert_array_equal(everything.conv_interp_1.kernel.numpy(), kernel)
    with pytest.raises(ValueError, match="no image"):
        silent_filters(dead, "top_conv", [])
