import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_icnn.models import (
    ChannelScale, Explainer, ExplainerDistiller, build_explainer, plan_head, resnet20_backbone,
    vgg_backbone)
from keras_icnn import losses as keras_icnn_losses
from keras_icnn.models.distiller import PAPER_FILTER_FRACTION
from keras_icnn.models.explainer_build import p_scale_for
from keras_icnn.ops.distillation import gradient_ratio
from tests.models.conftest import variable_ids, random_images


def test_structure_targets_are_hidden_fc_features_not_logits(performer):
    explainer, distiller = build_explainer(performer, "block3_pool")
    assert explainer.filters == 32 and explainer.num_classes == 3
    np.testing.assert_array_equal(explainer.conv_interp_1.kernel.numpy(),
                                  performer.get_layer("top_conv").kernel.numpy())
    # The decoder copies the head up to fc1 (the paper's fc7): flatten, fc1. Never the classifier.
    assert [type(layer).__name__ for layer in explainer.decoder] == ["Flatten", "Dense"]
    np.testing.assert_array_equal(explainer.decoder[1].kernel.numpy(),
                                  performer.get_layer("fc1").kernel.numpy())
    assert [layer.name for layer in distiller.plan.classifier_layers] == ["dropout", "logits"]
    feats, targets, logits = distiller.performer_outputs(random_images(4))
    fc1 = keras.Model(performer.inputs[0], performer.get_layer("fc1").output)(random_images(4))
    assert len(targets) == 1
    np.testing.assert_allclose(targets[0], fc1, rtol=1e-6)
    assert [r.shape[-1] for r in explainer(feats)] == [16]
    # The performer's classifier is not trainable by the distiller, and no copy of it is.
    classifier = performer.get_layer("logits")
    assert not variable_ids(classifier.weights) & variable_ids(distiller.trainable_variables)
    assert not variable_ids(performer.weights) & variable_ids(distiller.trainable_variables)
    shapes = {tuple(v.shape) for v in distiller.trainable_variables}
    assert tuple(classifier.kernel.shape) not in shapes


def test_perfect_reconstruction_gives_zero_delta_error_and_zero_gives_the_bias(performer):
    _, distiller = build_explainer(performer, "block3_pool")
    images = random_images(24, seed=3)
    labels = np.random.RandomState(3).randint(0, 3, 24)
    _, targets, logits = distiller.performer_outputs(images)
    # The performer's own classifier on its own fc1 features: its own logits.
    reclassified = np.asarray(distiller.classify(targets[-1]))
    np.testing.assert_allclose(reclassified, np.asarray(logits), rtol=1e-6, atol=1e-6)
    error = lambda z: float(np.mean(np.asarray(z).argmax(-1) != labels))  # noqa: E731
    assert error(reclassified) - error(logits) == 0.0
    # A zero reconstruction leaves the classifier's bias: every image gets argmax(bias).
    zero = np.asarray(distiller.classify(tf.zeros_like(targets[-1])))
    bias = performer.get_layer("logits").bias.numpy()
    np.testing.assert_allclose(zero, np.tile(bias, (24, 1)), rtol=1e-6)
    assert error(zero) == pytest.approx(float(np.mean(labels != bias.argmax())))


def test_channel_scale():
    layer = ChannelScale()
    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    layer.build(x.shape)
    layer.gamma.assign([1.0, 2.0, -1.0])
    np.testing.assert_allclose(layer(x), x * [1.0, 2.0, -1.0])
    assert isinstance(keras.layers.deserialize(keras.layers.serialize(layer)), ChannelScale)


def test_reconstruction_loss_vs_numpy(performer):
    _, distiller = build_explainer(performer, "block3_pool")
    rng = np.random.RandomState(2)
    recon = [rng.normal(size=(5, 7)).astype(np.float32)]
    target = [rng.normal(size=(5, 7)).astype(np.float32)]
    got = float(distiller.task_losses(recon, target)[0])
    r, t = recon[0].astype(np.float64), target[0].astype(np.float64)
    assert got == pytest.approx(np.mean(np.sum((r - t) ** 2, 1)) / np.mean(np.sum(t ** 2, 1)),
                                rel=1e-5)


def _two_class_performer():
    keras.utils.set_random_seed(2)
    model = vgg_backbone((32, 32, 3), 2, width=4, dense_units=16)
    images = random_images(16, seed=8)
    logits = np.asarray(model(images))
    # Centre the classifier so that the batch holds both predicted classes.
    bias = model.get_layer("logits").bias
    bias.assign(bias.numpy() + [0.0, float(np.median(logits[:, 0] - logits[:, 1]))])
    return model, images


def test_single_category_alpha_from_predicted_positives():
    model, images = _two_class_performer()
    explainer, distiller = build_explainer(model, "block3_pool", single_category=True)
    assert distiller.single_category
    positive = np.asarray(model(images)).argmax(-1) == 1
    assert 0 < positive.sum() < len(images)
    feats, _, _ = distiller.performer_outputs(images)
    raw = explainer.encode(feats, training=False)  # alpha still 0: the maps pass unscaled
    sums = lambda m: np.maximum(np.asarray(m, np.float64), 0).sum((1, 2))  # noqa: E731
    distiller.forward(images, training=True)  # no labels anywhere
    np.testing.assert_allclose(explainer.norm_interp.alpha.numpy(),
                               sums(raw["interp"])[positive].mean(0), rtol=1e-5)
    np.testing.assert_allclose(explainer.norm_ordin.alpha.numpy(),
                               sums(raw["ordin"])[positive].mean(0), rtol=1e-5)
    np.testing.assert_array_equal(explainer.conv_interp_2.target_classes.numpy(), 1)


def test_explainer_cls_baseline(performer):
    images = random_images(24, seed=9)
    labels = np.random.RandomState(9).randint(0, 3, 24)
    _, distiller = build_explainer(performer, "block3_pool", objective="classification")
    assert [m.name for m in distiller.task_trackers] == ["cls"]
    distiller.compile(keras.optimizers.Adam(1e-3))
    with pytest.raises(ValueError, match="labels"):
        distiller.train_on_batch(images)
    before = [w.numpy().copy() for w in performer.weights]
    distiller.fit(images, labels, batch_size=8, epochs=2, verbose=0)
    for a, b in zip(before, performer.weights):
        np.testing.assert_array_equal(a, b.numpy())
    # Its cls metric is the cross-entropy of the performer's classifier on the reconstruction.
    logits = distiller.reconstructed_logits(images).astype(np.float64)
    log_softmax = logits - np.log(np.exp(logits - logits.max(1, keepdims=True)).sum(1,
                                  keepdims=True)) - logits.max(1, keepdims=True)
    want = -log_softmax[np.arange(24), labels].mean()
    got = distiller.evaluate(images, labels, batch_size=24, verbose=0, return_dict=True)["cls"]
    assert got == pytest.approx(want, rel=1e-4)


def test_norm_layers_floor_a_dying_channel_by_default(performer):
    """Issue 26: the explainer's norm-layers divide by max(alpha, 0.1 * mean alpha), so a
    channel whose alpha decayed to ~0 is not multiplied by 1 / alpha; a config saved
    before the floor existed loads without it."""
    explainer, _ = build_explainer(performer, "block3_pool")
    assert explainer.norm_interp.alpha_floor == explainer.norm_ordin.alpha_floor == 0.1
    feats = performer.get_layer("block3_pool").output
    sub = keras.Model(performer.inputs[0], feats)(random_images(4, seed=6))
    parts = explainer.encode(sub, training=False)
    x2 = explainer.conv_interp_2.part_mask(explainer.conv_interp_2.conv_relu(
        explainer.conv_interp_1.part_mask(explainer.conv_interp_1.conv_relu(sub)))).numpy()
    alpha = np.maximum(x2, 0).sum((1, 2)).mean(0) + 1.0
    alpha[0] = 1e-9  # a dying channel
    explainer.norm_interp.alpha.assign(alpha)
    interp = explainer.encode(sub, training=False)["interp"].numpy()
    np.testing.assert_allclose(interp, x2 / np.maximum(alpha, 0.1 * alpha.mean()), rtol=1e-4,
                               atol=1e-6)
    assert np.isfinite(parts["interp"].numpy()).all()
    config = explainer.get_config()
    config.pop("alpha_floor")
    assert Explainer.from_config(config).norm_interp.alpha_floor == 0.0


def test_explain_and_save_load(performer, tmp_path):
    explainer, distiller = build_explainer(performer, "block3_pool")
    distiller.compile(keras.optimizers.Adam(1e-3))
    images = random_images()
    distiller.fit(images, batch_size=16, epochs=1, verbose=0)
    e = distiller.explain(images[:5])
    assert e["part_locations"].shape == (5, 32, 2) and e["part_scores"].shape == (5, 32)
    # Units of a 4x4 map of a 32px image are 8 px apart, unit 0 centred at 4.
    assert set(np.unique(e["part_locations"])) <= {4.0, 12.0, 20.0, 28.0}
    np.testing.assert_array_equal(e["filter_classes"],
                                  explainer.conv_interp_2.target_classes.numpy())
    explainer.save(tmp_path / "explainer.keras")
    loaded = keras.models.load_model(tmp_path / "explainer.keras")
    assert isinstance(loaded, Explainer)
    feats, _, _ = distiller.performer_outputs(images[:6])
    for a, b in zip(loaded(feats), explainer(feats)):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-6)
    assert float(loaded.p) == pytest.approx(float(explainer.p))
    np.testing.assert_array_equal(loaded.performer_alpha.numpy(), explainer.performer_alpha.numpy())
    # A loaded explainer pairs with its performer again (the export CLI does this).
    again = ExplainerDistiller(performer, loaded, "block3_pool")
    np.testing.assert_allclose(again.reconstructed_logits(images[:6]),
                               distiller.reconstructed_logits(images[:6]), rtol=1e-5, atol=1e-5)
