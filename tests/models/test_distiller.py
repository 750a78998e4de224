"""The explainer's distiller (models/distiller.py) through its real train step."""
import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_icnn import losses as keras_icnn_losses
from keras_icnn.models import build_explainer
from keras_icnn.models.distiller import PAPER_FILTER_FRACTION
from keras_icnn.models.explainer_build import p_scale_for
from tests.models.conftest import random_images


def _same_state(a, b):
    b.explainer.set_weights(a.explainer.get_weights())


def test_lambda_rule_through_the_real_train_step(performer):
    """lambda_f = 1/(300 N) E_x||dLoss_rec/dx_f|| / E_x||dLoss_f/dx_f||, per image, at N = 3."""
    _, distiller = build_explainer(performer, "block3_pool", filter_fraction=PAPER_FILTER_FRACTION,
                                   fraction_decay=True)
    distiller.compile(keras.optimizers.SGD(0.01))
    images = random_images(8, seed=6)
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
    images = random_images(8, seed=7)
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


def test_fit_keeps_performer_bit_identical(performer):
    before = [w.numpy().copy() for w in performer.weights]
    _, distiller = build_explainer(performer, "block3_pool")
    distiller.compile(keras.optimizers.Adam(1e-3))
    history = distiller.fit(random_images(), batch_size=16, epochs=1, verbose=0)
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
    distiller.fit(random_images(), batch_size=16, epochs=1, verbose=0)
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
        distiller.train_on_batch(random_images(8, seed=4))
        moved[(lr, scale)] = abs(float(explainer.p_logit) - before)
    # Adam's first step is lr * g / (|g| + eps): the logit moves scale * lr (at lr 1e-3
    # and the default scale 10 that is 1e-2 too).
    assert moved[(1e-4, 100.0)] == pytest.approx(1e-2, rel=1e-3)
    assert moved[(1e-4, 10.0)] == pytest.approx(1e-3, rel=1e-3)


def test_distils_under_mirrored_strategy(performer):
    from keras_icnn import distribute

    strategy = distribute.get_strategy("mirrored", num_cpu_devices=2)
    with strategy.scope():
        explainer, distiller = build_explainer(performer, "block3_pool")
        distiller.compile(keras.optimizers.Adam(1e-3))
    history = distiller.fit(random_images(), batch_size=16, epochs=1, verbose=0)
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
    distiller.fit(random_images(), batch_size=16, epochs=3, verbose=0, callbacks=[record])
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
    images = random_images(8, seed=9)
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
