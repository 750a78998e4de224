import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_icnn.models import Explainer, build_explainer, vgg_backbone


@pytest.fixture(scope="module")
def performer():
    keras.utils.set_random_seed(0)
    model = vgg_backbone((32, 32, 3), 3, width=4, dense_units=16)
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(True))
    rng = np.random.RandomState(0)
    model.fit(rng.uniform(0, 255, (32, 32, 32, 3)).astype("float32"), rng.randint(0, 3, 32),
              epochs=1, verbose=0)
    return model


def _images(n=32, seed=1):
    return np.random.RandomState(seed).uniform(0, 255, (n, 32, 32, 3)).astype("float32")


def test_structure_and_weight_copies(performer):
    explainer, distiller = build_explainer(performer, "block3_pool")
    assert explainer.filters == 32 and explainer.num_classes == 3
    np.testing.assert_array_equal(explainer.conv_interp_1.kernel.numpy(),
                                  performer.get_layer("top_conv").kernel.numpy())
    dense = [layer for layer in explainer.decoder if isinstance(layer, keras.layers.Dense)]
    np.testing.assert_array_equal(dense[0].kernel.numpy(), performer.get_layer("fc1").kernel.numpy())
    # Reconstruction targets: every dense output of the head (fc1 and the logits).
    feats, targets, logits = distiller.performer_outputs(_images(4))
    assert [t.shape[-1] for t in targets] == [16, 3]
    np.testing.assert_allclose(targets[-1], logits)
    assert [r.shape[-1] for r in explainer(feats)] == [16, 3]


def test_reconstruction_loss_vs_numpy(performer):
    _, distiller = build_explainer(performer, "block3_pool")
    rng = np.random.RandomState(2)
    recon = [rng.normal(size=(5, 7)).astype(np.float32), rng.normal(size=(5, 2, 3)).astype(np.float32)]
    target = [rng.normal(size=(5, 7)).astype(np.float32), rng.normal(size=(5, 2, 3)).astype(np.float32)]
    got = [float(t) for t in distiller._reconstruction(recon, target)]
    for g, r, t in zip(got, recon, target):
        r, t = r.reshape(5, -1).astype(np.float64), t.reshape(5, -1).astype(np.float64)
        want = np.mean(np.sum((r - t) ** 2, 1)) / np.mean(np.sum(t ** 2, 1))
        assert g == pytest.approx(want, rel=1e-5)


def test_fit_keeps_performer_bit_identical(performer):
    before = [w.numpy().copy() for w in performer.weights]
    _, distiller = build_explainer(performer, "block3_pool")
    distiller.compile(keras.optimizers.Adam(1e-3))
    history = distiller.fit(_images(), batch_size=16, epochs=1, verbose=0)
    for a, b in zip(before, performer.weights):
        np.testing.assert_array_equal(a, b.numpy())
    for key in ("loss", "rec_0", "rec_1", "p", "filter_loss"):
        assert np.isfinite(history.history[key][0])


def test_initial_p_sets_the_starting_mixing_weight(performer):
    explainer, _ = build_explainer(performer, "block3_pool", initial_p=0.9)
    assert float(explainer.p) == pytest.approx(0.9, rel=1e-5)
    # w_p = logit(0.9) / p_scale
    assert float(explainer.w_p) == pytest.approx(np.log(0.9 / 0.1) / 10.0, rel=1e-5)
    with pytest.raises(ValueError, match="initial_p"):
        build_explainer(performer, "block3_pool", initial_p=1.0)


def test_log_p_term_raises_p(performer):
    explainer, distiller = build_explainer(performer, "block3_pool", eta=1.0, recon_weight=0.0,
                                           filter_fraction=0.0)
    distiller.compile(keras.optimizers.SGD(0.01))
    p0 = float(explainer.p)
    distiller.fit(_images(), batch_size=16, epochs=1, verbose=0)
    # Two SGD steps on -log sigmoid(k w): dw = lr * k * (1 - p) each, k = p_scale = 10.
    w = 0.0
    for _ in range(2):
        w += 0.01 * 10.0 * (1.0 - 1.0 / (1.0 + np.exp(-10.0 * w)))
    assert float(explainer.p) > p0
    assert float(explainer.w_p) == pytest.approx(w, rel=1e-5)


def test_filter_loss_never_reaches_the_ordinary_track(performer):
    explainer, distiller = build_explainer(performer, "block3_pool")
    feats, _, logits = distiller.performer_outputs(_images(8))
    labels = tf.argmax(logits, -1, output_type=tf.int32)
    with tf.GradientTape(persistent=True) as tape:
        parts = explainer.encode(feats, labels=labels, training=True)
        p = parts["p"]
        mixed = p * parts["x2"] + (1 - p) * tf.stop_gradient(parts["ordin"])
        loss = tf.reduce_sum(explainer.conv_interp_2.filter_loss_per_filter(mixed, labels))
    for var in explainer.conv_ordin.trainable_variables:
        grad = tape.gradient(loss, var.value, unconnected_gradients="zero")
        assert np.count_nonzero(grad.numpy()) == 0
    # ...while it does train conv-interp-2 and p.
    assert np.count_nonzero(tape.gradient(loss, explainer.conv_interp_2.kernel).numpy()) > 0
    assert float(tape.gradient(loss, explainer.w_p)) != 0.0


def test_explain_and_save_load(performer, tmp_path):
    explainer, distiller = build_explainer(performer, "block3_pool")
    distiller.compile(keras.optimizers.Adam(1e-3))
    images = _images()
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


def test_distils_under_mirrored_strategy(performer):
    from keras_icnn import distribute

    strategy = distribute.get_strategy("mirrored", num_cpu_devices=2)
    with strategy.scope():
        explainer, distiller = build_explainer(performer, "block3_pool")
        distiller.compile(keras.optimizers.Adam(1e-3))
    history = distiller.fit(_images(), batch_size=16, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    assert float(explainer.norm_interp.alpha.numpy().sum()) > 0
