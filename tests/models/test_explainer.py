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


@pytest.fixture(scope="module")
def performer():
    keras.utils.set_random_seed(0)
    model = vgg_backbone((32, 32, 3), 3, width=4, dense_units=16)
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(True))
    rng = np.random.RandomState(0)
    model.fit(rng.uniform(0, 255, (32, 32, 32, 3)).astype("float32"), rng.randint(0, 3, 32),
              epochs=1, verbose=0)
    return model


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


def _images(n=32, seed=1, size=32, high=255.0):
    return np.random.RandomState(seed).uniform(0, high, (n, size, size, 3)).astype("float32")


def _ids(variables):
    return {id(v) for v in variables}


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
    feats, targets, logits = distiller.performer_outputs(_images(4))
    fc1 = keras.Model(performer.inputs[0], performer.get_layer("fc1").output)(_images(4))
    assert len(targets) == 1
    np.testing.assert_allclose(targets[0], fc1, rtol=1e-6)
    assert [r.shape[-1] for r in explainer(feats)] == [16]
    # The performer's classifier is not trainable by the distiller, and no copy of it is.
    classifier = performer.get_layer("logits")
    assert not _ids(classifier.weights) & _ids(distiller.trainable_variables)
    assert not _ids(performer.weights) & _ids(distiller.trainable_variables)
    shapes = {tuple(v.shape) for v in distiller.trainable_variables}
    assert tuple(classifier.kernel.shape) not in shapes


def test_perfect_reconstruction_gives_zero_delta_error_and_zero_gives_the_bias(performer):
    _, distiller = build_explainer(performer, "block3_pool")
    images = _images(24, seed=3)
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
    trainable = _ids(distiller.trainable_variables)
    assert {id(bn.gamma), id(bn.beta), id(explainer.decoder[3].gamma)} <= trainable
    assert not _ids(gap_performer.weights) & trainable
    images = _images(12, seed=4, size=16, high=1.0)
    feats, targets, logits = distiller.performer_outputs(images)
    assert targets[0].shape == (12, 8)
    np.testing.assert_allclose(distiller.classify(targets[0]), logits, rtol=1e-6, atol=1e-6)
    before = [w.numpy().copy() for w in gap_performer.weights]
    distiller.compile(keras.optimizers.Adam(1e-3))
    history = distiller.fit(images, batch_size=6, epochs=1, verbose=0).history
    assert np.isfinite(history["rec_0"][0])
    for a, b in zip(before, gap_performer.weights):
        np.testing.assert_array_equal(a, b.numpy())


def test_channel_scale():
    layer = ChannelScale()
    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    layer.build(x.shape)
    layer.gamma.assign([1.0, 2.0, -1.0])
    np.testing.assert_allclose(layer(x), x * [1.0, 2.0, -1.0])
    assert isinstance(keras.layers.deserialize(keras.layers.serialize(layer)), ChannelScale)


def test_residual_performer_refused():
    model = resnet20_backbone((32, 32, 3), 3, width=4, blocks_per_stage=1)
    with pytest.raises(ValueError, match="Residual performers"):
        build_explainer(model, "stage2_block0_out")


def test_reconstruction_loss_vs_numpy(performer):
    _, distiller = build_explainer(performer, "block3_pool")
    rng = np.random.RandomState(2)
    recon = [rng.normal(size=(5, 7)).astype(np.float32)]
    target = [rng.normal(size=(5, 7)).astype(np.float32)]
    got = float(distiller.task_losses(recon, target)[0])
    r, t = recon[0].astype(np.float64), target[0].astype(np.float64)
    assert got == pytest.approx(np.mean(np.sum((r - t) ** 2, 1)) / np.mean(np.sum(t ** 2, 1)),
                                rel=1e-5)


def test_gradient_ratio_vs_numpy():
    rng = np.random.RandomState(5)
    task, filt = rng.normal(size=(2, 6, 3, 3, 4)).astype(np.float32)
    filt[:, :, :, 3] = 0.0  # a filter whose loss has no gradient: lambda 0, not inf
    norms = lambda g: np.sqrt((g.astype(np.float64) ** 2).sum((1, 2)))  # noqa: E731
    want = 0.2 * norms(task).mean(0) / np.where(norms(filt).mean(0) > 0, norms(filt).mean(0), 1)
    want[3] = 0.0
    np.testing.assert_allclose(gradient_ratio(task, filt, 0.2), want, rtol=1e-5)


def _same_state(a, b):
    b.explainer.set_weights(a.explainer.get_weights())


def test_lambda_rule_through_the_real_train_step(performer):
    """lambda_f = 1/(300 N) E_x||dLoss_rec/dx_f|| / E_x||dLoss_f/dx_f||, per image, at N = 3."""
    _, distiller = build_explainer(performer, "block3_pool", filter_fraction=PAPER_FILTER_FRACTION,
                                   fraction_decay=True)
    distiller.compile(keras.optimizers.SGD(0.01))
    images = _images(8, seed=6)
    # The gradients by hand, from the same state (the statistics one forward pass sets are the
    # same when the train step repeats it on the same batch).
    with tf.GradientTape(persistent=True) as tape:
        out = distiller.forward(images, training=True)
        rec = tf.add_n(out["task_terms"])
        filter_losses = [tf.reduce_sum(out["l1"]), tf.reduce_sum(out["l2"])]
    want = []
    for x, loss in zip((out["x1"], out["x2"]), filter_losses):
        g_rec = tape.gradient(rec, x).numpy().astype(np.float64)
        g_f = tape.gradient(loss, x).numpy().astype(np.float64)
        per_image = lambda g: np.sqrt((g ** 2).sum((1, 2)))  # noqa: E731  [B, F]
        task_norm, filter_norm = per_image(g_rec).mean(0), per_image(g_f).mean(0)
        # A filter silent on every image has no filter-loss gradient: lambda_f = 0.
        want.append(np.where(filter_norm > 0, task_norm / np.maximum(filter_norm, 1e-300), 0.0)
                    / (300.0 * 3))
    del tape
    assert all(np.mean(w > 0) > 0.5 for w in want)
    distiller.epoch.assign(3.0)
    distiller.train_on_batch(images)
    for var, w in zip(distiller.lambdas, want):
        np.testing.assert_allclose(var.numpy(), w, rtol=2e-3)


def test_filter_loss_never_reaches_the_ordinary_track(performer):
    """Through the real train step: with the mix trick, the filter loss trains conv-interp-2 and
    p but leaves the ordinary track exactly where the reconstruction alone takes it."""
    images = _images(8, seed=7)
    runs = {}
    for name, mix, fraction in (("mix", True, 0.5), ("mix_no_filter", True, 0.0),
                                ("plain", False, 0.5)):
        _, d = build_explainer(performer, "block3_pool", mix_trick=mix, filter_fraction=fraction)
        if runs:
            _same_state(runs["mix"], d)
        d.compile(keras.optimizers.SGD(0.05))
        runs[name] = d
    start = runs["mix"].explainer.get_weights()
    ordin_start = runs["mix"].explainer.conv_ordin.kernel.numpy().copy()
    for d in runs.values():
        d.explainer.set_weights(start)
        d.train_on_batch(images)
    ordin = {k: d.explainer.conv_ordin.kernel.numpy() for k, d in runs.items()}
    np.testing.assert_array_equal(ordin["mix"], ordin["mix_no_filter"])
    np.testing.assert_array_equal(ordin["plain"], ordin["mix_no_filter"])
    assert not np.allclose(ordin["mix"], ordin_start)  # the reconstruction does train it
    interp2 = {k: d.explainer.conv_interp_2.kernel.numpy() for k, d in runs.items()}
    assert not np.allclose(interp2["mix"], interp2["mix_no_filter"])
    w_p = {k: float(d.explainer.w_p.numpy()) for k, d in runs.items()}
    assert w_p["mix"] != w_p["mix_no_filter"]  # the trick's filter loss reaches p...
    assert w_p["plain"] == w_p["mix_no_filter"]  # ...the plain one does not


def _two_class_performer():
    keras.utils.set_random_seed(2)
    model = vgg_backbone((32, 32, 3), 2, width=4, dense_units=16)
    images = _images(16, seed=8)
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
    images = _images(24, seed=9)
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


def test_fit_keeps_performer_bit_identical(performer):
    before = [w.numpy().copy() for w in performer.weights]
    _, distiller = build_explainer(performer, "block3_pool")
    distiller.compile(keras.optimizers.Adam(1e-3))
    history = distiller.fit(_images(), batch_size=16, epochs=1, verbose=0)
    for a, b in zip(before, performer.weights):
        np.testing.assert_array_equal(a, b.numpy())
    for key in ("loss", "rec_0", "p", "filter_loss"):
        assert np.isfinite(history.history[key][0])
    assert all(np.all(np.isfinite(v.numpy())) for v in distiller.lambdas)


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


def test_p_lr_sets_how_far_an_adam_step_moves_p(performer):
    """Issue 26: an Adam step moves w_p by ~lr whatever the gradient, so p's logit moves
    p_scale * lr per step. p_scale_for(1e-4, 1e-3) = 100 makes one step at lr 1e-4 move
    the logit as far (1e-2 = 10 * 1e-3) as the default scale at lr 1e-3, and 10x farther
    than the default at 1e-4; initial_p is honoured under any scale."""
    assert p_scale_for(1e-4, 1e-3) == pytest.approx(100.0)
    with pytest.raises(ValueError, match="p_lr"):
        p_scale_for(1e-4, 0.0)
    moved = {}
    for lr, scale in ((1e-4, p_scale_for(1e-4, 1e-3)), (1e-4, 10.0)):
        explainer, distiller = build_explainer(performer, "block3_pool", initial_p=0.6,
                                               p_scale=scale, filter_fraction=0.0)
        assert float(explainer.p) == pytest.approx(0.6, rel=1e-5)
        distiller.compile(keras.optimizers.Adam(lr))
        before = float(explainer.p_logit)
        distiller.train_on_batch(_images(8, seed=4))
        moved[(lr, scale)] = abs(float(explainer.p_logit) - before)
    # Adam's first step is lr * g / (|g| + eps): the logit moves scale * lr (at lr 1e-3
    # and the default scale 10 that is 1e-2 too).
    assert moved[(1e-4, 100.0)] == pytest.approx(1e-2, rel=1e-3)
    assert moved[(1e-4, 10.0)] == pytest.approx(1e-3, rel=1e-3)


def test_norm_layers_floor_a_dying_channel_by_default(performer):
    """Issue 26: the explainer's norm-layers divide by max(alpha, 0.1 * mean alpha), so a
    channel whose alpha decayed to ~0 is not multiplied by 1 / alpha; a config saved
    before the floor existed loads without it."""
    explainer, _ = build_explainer(performer, "block3_pool")
    assert explainer.norm_interp.alpha_floor == explainer.norm_ordin.alpha_floor == 0.1
    feats = performer.get_layer("block3_pool").output
    sub = keras.Model(performer.inputs[0], feats)(_images(4, seed=6))
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
    np.testing.assert_array_equal(loaded.performer_alpha.numpy(), explainer.performer_alpha.numpy())
    # A loaded explainer pairs with its performer again (the export CLI does this).
    again = ExplainerDistiller(performer, loaded, "block3_pool")
    np.testing.assert_allclose(again.reconstructed_logits(images[:6]),
                               distiller.reconstructed_logits(images[:6]), rtol=1e-5, atol=1e-5)


def test_distils_under_mirrored_strategy(performer):
    from keras_icnn import distribute

    strategy = distribute.get_strategy("mirrored", num_cpu_devices=2)
    with strategy.scope():
        explainer, distiller = build_explainer(performer, "block3_pool")
        distiller.compile(keras.optimizers.Adam(1e-3))
    history = distiller.fit(_images(), batch_size=16, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    assert float(explainer.norm_interp.alpha.numpy().sum()) > 0


def test_distillation_never_retraces_after_the_first_epoch(performer):
    """λ_f's epoch factor and the NormLayer statistics are variables: epochs reuse the trace."""
    _, distiller = build_explainer(performer, "block3_pool", fraction_decay=True)
    distiller.compile(keras.optimizers.Adam(1e-3))
    traces, step = [], distiller.train_step

    def counting_step(data):
        traces.append(1)
        return step(data)

    distiller.train_step = counting_step
    per_epoch = []
    record = keras.callbacks.LambdaCallback(on_epoch_end=lambda e, logs: per_epoch.append(len(traces)))
    distiller.fit(_images(), batch_size=16, epochs=3, verbose=0, callbacks=[record])
    assert per_epoch[0] <= 2 and per_epoch == [per_epoch[0]] * 3, per_epoch


def _scaled_copy(source, loss_scale, performer, factor):
    """A distiller in ``source``'s state whose conv-interp-1/2 maps are ``factor`` times its
    own (kernel and bias of conv-interp-1 and the bias of conv-interp-2 scaled: ReLU and the
    mask are positively homogeneous)."""
    _, d = build_explainer(performer, "block3_pool", loss_scale=loss_scale)
    _same_state(source, d)
    ex = d.explainer
    for var, f in ((ex.conv_interp_1.kernel, factor), (ex.conv_interp_1.bias, factor),
                   (ex.conv_interp_2.bias, factor)):
        var.assign(var.numpy() * f)
    d.compile(keras.optimizers.SGD(0.01), run_eagerly=True)  # one step: tracing costs more
    return d


def test_filter_losses_ignore_the_maps_scale_through_the_train_step(performer):
    """Issue 26: the reconstruction reads conv-interp-2 through a norm-layer, so only the
    filter loss acts on the maps' scale; on raw maps it shrank them until -MI was ~1e-7.
    With loss_scale="unit_mean" one real train step logs the same -MI (equal to numpy's on
    the maps divided by their mean) and sets the same lambda_f whether the maps are 1x or
    5x; on raw maps both move."""
    images = _images(8, seed=9)
    _, base = build_explainer(performer, "block3_pool")
    steps = {}
    for scale in ("unit_mean", "raw"):
        runs = [_scaled_copy(base, scale, performer, f) for f in (1.0, 5.0)]
        maps = runs[0].forward(images, training=False)
        logs = [d.train_on_batch(images, return_dict=True) for d in runs]
        steps[scale] = (maps, logs, [[v.numpy() for v in d.lambdas] for d in runs])
    maps, logs, lambdas = steps["unit_mean"]
    want = 0.0
    for x in (maps["x1"], maps["x2"]):
        x = x.numpy().astype(np.float64)
        mean = x.mean((0, 1, 2))
        normalised = x / np.where(mean > 0, mean, 1.0)
        want += float(tf.reduce_sum(keras_icnn_losses.mutual_information_loss(normalised)))
    np.testing.assert_allclose(logs[0]["filter_loss"], want, rtol=1e-3)
    np.testing.assert_allclose(logs[1]["filter_loss"], logs[0]["filter_loss"], rtol=1e-3)
    for a, b in zip(*lambdas):
        np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-6)
    _, raw_logs, raw_lambdas = steps["raw"]
    assert abs(raw_logs[1]["filter_loss"]) > 2 * abs(raw_logs[0]["filter_loss"])
    assert not np.allclose(raw_lambdas[0][1], raw_lambdas[1][1], rtol=0.1)


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
