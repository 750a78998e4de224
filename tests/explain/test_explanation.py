import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_icnn.explain import Explainable, explain, explainable_for
from keras_icnn.models import build_explainer, make_csg, resnet20_backbone, vgg_backbone
from tests.explain.conftest import linear_model


def _by_hand(images, target=None):
    w = np.array([[1.0, -1.0, 0.5], [2.0, 0.5, -1.5]])
    maps = images.astype(np.float64) * np.array([1.0, -2.0]) + np.array([0.5, 0.25])  # [N,4,4,2]
    logits = maps.mean((1, 2)) @ w + np.array([0.1, -0.2, 0.3])
    t = logits.argmax(-1) if target is None else np.broadcast_to(target, (len(images),))
    # d logit_t / d A_ijf = w[f, t] / 16, so gradient x activation = w[f, t] * mean_ij A_f.
    contributions = w[:, t].T * maps.mean((1, 2))
    cam = np.maximum(np.einsum("nhwf,nf->nhw", maps, w[:, t].T / 16.0), 0)
    return maps, logits, t, contributions, cam


@pytest.mark.parametrize("frozen", [False, True])
def test_contributions_and_gradcam_by_hand(frozen):
    model = linear_model(frozen)
    images = np.random.RandomState(1).uniform(-1, 1, (5, 4, 4, 1)).astype(np.float32)
    maps, logits, t, contributions, cam = _by_hand(images)
    e = explain(model, images)
    assert e.kind == "ordinary" and e.layer == "conv"
    np.testing.assert_array_equal(e.classes, t)
    np.testing.assert_array_equal(e.target, t)
    np.testing.assert_allclose(e.logits, logits, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(e.contributions, contributions, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(e.target_logit, logits[np.arange(5), t], rtol=1e-5)
    np.testing.assert_allclose(e.contribution_shares, contributions / logits[np.arange(5), t][:, None],
                               rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(e.gradcam, cam, rtol=1e-5, atol=1e-6)  # 4x4 maps of a 4x4 image
    np.testing.assert_array_equal(e.filter_classes, [-1, -1])
    assert e.filter_relevance is None and e.p is None
    # Peaks: a 1x1 conv's unit (i, j) is centred on pixel (j + 0.5, i + 0.5).
    flat = maps.reshape(5, 16, 2).argmax(1)
    np.testing.assert_allclose(e.part_locations, np.stack([flat % 4 + 0.5, flat // 4 + 0.5], -1))
    np.testing.assert_allclose(e.part_scores, maps.reshape(5, 16, 2).max(1), rtol=1e-5)
    # Heatmaps: the filters by contribution, largest first, at image resolution.
    order = np.argsort(-contributions, axis=1)
    np.testing.assert_array_equal(e.heatmap_filters, order[:, :2])
    np.testing.assert_allclose(e.heatmaps, np.transpose(
        np.take_along_axis(maps, order[:, None, None, :2], 3), (0, 3, 1, 2)), rtol=1e-5, atol=1e-6)


def test_target_and_heatmap_options():
    model = linear_model()
    images = np.random.RandomState(2).uniform(-1, 1, (4, 4, 4, 1)).astype(np.float32)
    for target in (2, np.array([0, 1, 2, 0])):
        _, _, t, contributions, cam = _by_hand(images, target)
        e = explain(model, images, target=target, heatmaps=None)
        np.testing.assert_array_equal(e.target, t)
        np.testing.assert_allclose(e.contributions, contributions, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(e.gradcam, cam, rtol=1e-5, atol=1e-6)
        assert e.heatmaps is None and e.heatmap_filters is None
    e = explain(model, images, heatmaps="all")
    assert e.heatmaps.shape == (4, 2, 4, 4)
    e = explain(model, images, num_heatmaps=1, batch_size=3)
    assert e.heatmaps.shape == (4, 1, 4, 4) and e.contributions.shape == (4, 2)
    with pytest.raises(ValueError, match=r"`target` must lie in \[0, 3\)"):
        explain(model, images, target=3)
    with pytest.raises(ValueError, match="`target` must be None, a class index or 4"):
        explain(model, images, target=[0, 1])
    with pytest.raises(ValueError, match="`heatmaps` must be one of"):
        explain(model, images, heatmaps="some")
    with pytest.raises(ValueError, match=r"explain: `images` must have shape \[N >= 1, 4, 4, 1\]"):
        explain(model, images[:, :2])
    with pytest.raises(ValueError, match="holds no image"):
        explain(model, images[:0])
    with pytest.raises(ValueError, match="`layer` must name a layer"):
        explain(model, images, layer="nope")
    with pytest.raises(ValueError, match="4D feature maps"):
        explain(model, images, layer="logits")


def test_csg_relevance_and_categories():
    keras.utils.set_random_seed(0)
    model = make_csg(resnet20_backbone((32, 32, 3), 3, width=4, blocks_per_stage=1), "top_conv",
                     density=0.4)
    gate = model.gate_layer.gate
    g = np.random.RandomState(1).uniform(0, 1, gate.shape).astype("float32")
    gate.assign(g)
    images = np.random.RandomState(2).uniform(0, 255, (3, 32, 32, 3)).astype("float32")
    e = explain(model, images, target=1)
    assert e.kind == "csg"
    np.testing.assert_allclose(e.filter_relevance, np.tile(g[1], (3, 1)))
    np.testing.assert_array_equal(e.filter_classes, g.argmax(0))


def test_explainer_contributions_are_the_interpretable_tracks_share():
    keras.utils.set_random_seed(0)
    performer = vgg_backbone((32, 32, 3), 3, width=4, dense_units=16)
    _, distiller = build_explainer(performer, "block3_pool", initial_p=0.7)
    images = np.random.RandomState(3).uniform(0, 255, (4, 32, 32, 3)).astype("float32")
    e = explain(distiller, images)
    assert e.kind == "explainer" and e.layer == "conv_interp_2" and e.p == pytest.approx(0.7)
    # By hand: gradient of the performer's classifier on the reconstruction w.r.t. x_enc, times
    # the interpretable track's part of x_enc, p * x_interp.
    feats, _, logits = distiller.performer_outputs(images)
    parts = distiller.explainer.encode(feats, training=False)
    enc = parts["p"] * parts["interp"] + (1 - parts["p"]) * parts["ordin"]
    classes = np.asarray(logits).argmax(-1)
    with tf.GradientTape() as tape:
        tape.watch(enc)
        z = tf.gather(distiller.decode_logits(enc), classes, axis=1, batch_dims=1)
    want = tf.reduce_sum(tape.gradient(z, enc) * parts["p"] * parts["interp"], [1, 2]).numpy()
    np.testing.assert_array_equal(e.classes, classes)
    np.testing.assert_allclose(e.target_logit, z.numpy(), rtol=1e-5)
    np.testing.assert_allclose(e.contributions, want, rtol=1e-4, atol=1e-6)
    np.testing.assert_array_equal(e.filter_classes,
                                  distiller.explainer.conv_interp_2.target_classes.numpy())
    assert e.part_locations.shape == (4, 32, 2)
    # The per-pixel maps of an explainer are the performer's: its saliency by hand.
    x = tf.constant(images)
    with tf.GradientTape() as tape:
        tape.watch(x)
        z = tf.gather(performer(x, training=False), classes, axis=1, batch_dims=1)
    np.testing.assert_allclose(explain(distiller, images, methods="saliency").saliency,
                               np.abs(tape.gradient(z, x).numpy()).max(-1), rtol=1e-4, atol=1e-7)


def test_input_forms_single_image_tensor_and_datasets():
    model = linear_model()
    images = np.random.RandomState(5).uniform(-1, 1, (6, 4, 4, 1)).astype(np.float32)
    maps, logits, t, contributions, cam = _by_hand(images)
    one = explain(model, images[2])
    np.testing.assert_allclose(one.contributions, contributions[2:3], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(explain(model, tf.constant(images)).logits, logits, rtol=1e-5)
    for ds in (tf.data.Dataset.from_tensor_slices(images).batch(4),
               tf.data.Dataset.from_tensor_slices((images, np.arange(6))).batch(4),
               tf.data.Dataset.from_tensor_slices({"image": images}).batch(5),
               tf.data.Dataset.from_tensor_slices(images)):  # unbatched: batched here
        e = explain(model, ds, target=1, batch_size=4)
        np.testing.assert_allclose(e.contributions, _by_hand(images, 1)[3], rtol=1e-5, atol=1e-6)
    # The raw maps at the layer's resolution, and the interpolation choice.
    e = explain(model, images, heatmaps="all", interpolation="nearest")
    np.testing.assert_allclose(e.gradcam_maps, cam, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(e.heatmap_maps, np.take_along_axis(
        np.transpose(maps, (0, 3, 1, 2)), e.heatmap_filters[:, :, None, None], 1), rtol=1e-5,
        atol=1e-6)
    np.testing.assert_allclose(e.heatmaps, e.heatmap_maps, rtol=1e-6)  # 4x4 -> 4x4, nearest
    with pytest.raises(ValueError, match="`interpolation` must be one of"):
        explain(model, images, interpolation="lanczos")
