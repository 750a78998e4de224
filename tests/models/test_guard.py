"""The non-finite guard (issue 31): a NaN/Inf stops fit naming the tensor and undoes the step."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_icnn.layers import InterpretableConv
from keras_icnn.models import InterpretableModel, build_explainer, guard, make_csg, vgg_backbone
from keras_icnn.models.guard import NonFiniteStepError
from tests.models.conftest import tiny_backbone, tiny_data


@pytest.fixture(autouse=True)
def _fused_checks(monkeypatch):
    """These tests run the guard as users get it (the rest of the suite: plain ops)."""
    monkeypatch.setattr(keras.Model, "fused_checks", True)


def _state(model):
    """Every variable of the model and of its optimizers, by identity: {id: numpy copy}."""
    return {id(v): np.array(v) for _, v in guard._state(model)}


class _Snapshots(keras.callbacks.Callback):
    """The model's whole state before every batch (eagerly, outside the step)."""

    def on_train_batch_begin(self, batch, logs=None):
        self.before = _state(self.model)


def _assert_restored(model, snapshots):
    now = _state(model)
    # Keras builds the optimizer in the first step: its slots did not exist before it, and a
    # restored first step leaves them at their initial zeros.
    assert snapshots.before.keys() <= now.keys()
    for key in now.keys() - snapshots.before.keys():
        np.testing.assert_array_equal(now[key], 0)
    for key, value in snapshots.before.items():
        np.testing.assert_array_equal(now[key], value)
    assert all(np.isfinite(v).all() for v in now.values() if v.dtype.kind == "f")


def _icnn_first_layer(jit):
    keras.utils.set_random_seed(0)
    inputs = keras.Input((16, 16, 3))
    x = InterpretableConv(6, 3, num_classes=3, name="iconv")(inputs)
    x = keras.layers.BatchNormalization(name="bn")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    model = InterpretableModel(inputs, keras.layers.Dense(3, name="logits")(x))
    model.compile(keras.optimizers.Adam(1e-2), keras.losses.SparseCategoricalCrossentropy(True),
                  jit_compile=jit)
    return model


@pytest.mark.parametrize("jit", [False, True])
def test_one_nan_pixel_stops_interpretable_fit_and_restores_everything(jit):
    """The issue's case: one NaN pixel in one image of a 3-epoch fit on numpy arrays."""
    x, y = tiny_data(48)
    x[20, 5, 5, 1] = np.nan                         # batch 2 of 3 in epoch 1
    model = _icnn_first_layer(jit)
    snaps = _Snapshots()
    with pytest.raises(NonFiniteStepError, match=r"in input at epoch 1, step 2: training stopped "
                                                 r"and the model .* restored"):
        model.fit(x, y, batch_size=16, epochs=3, verbose=0, shuffle=False, callbacks=[snaps])
    _assert_restored(model, snaps)                  # kernel, BN statistics, class stats, slots
    assert int(model.optimizer.iterations) == 1     # the one good step, not the poisoned one
    # The guard reads the step's values, not just its losses: no NaN was written anywhere.
    assert np.isfinite(model.get_layer("iconv").kernel.numpy()).all()


def test_csg_epoch_with_a_nan_batch_restores_gate_and_network():
    x, y = tiny_data(48)
    x[40, 0, 0, 0] = np.inf                          # step 3 of a CSG epoch
    model = make_csg(tiny_backbone(), "top_conv", density=0.4)
    model.compile(keras.optimizers.SGD(0.05, momentum=0.9), gate_optimizer="csg")
    snaps = _Snapshots()
    with pytest.raises(NonFiniteStepError, match=r"in input at CSG phase, epoch 1, step 3"):
        model.fit(x, y, batch_size=16, epochs=2, verbose=0, shuffle=False, callbacks=[snaps],
                  schedule=dict(warmup=0))
    _assert_restored(model, snaps)
    assert model.gate_layer.gate.numpy().min() < 1.0   # two CSG steps moved G; the third did not


def test_distiller_nan_batch_restores_explainer_and_norm_alpha():
    keras.utils.set_random_seed(0)
    performer = vgg_backbone((32, 32, 3), 3, width=4, dense_units=16)
    images = np.random.RandomState(1).uniform(0, 255, (32, 32, 32, 3)).astype("float32")
    images[20, 3, 3, 2] = np.nan
    explainer, distiller = build_explainer(performer, "block3_pool")
    distiller.compile(keras.optimizers.Adam(1e-3))
    snaps = _Snapshots()
    with pytest.raises(NonFiniteStepError, match=r"in input at epoch 1, step 2"):
        distiller.fit(images, batch_size=16, epochs=1, verbose=0, shuffle=False,
                      callbacks=[snaps])
    _assert_restored(distiller, snaps)
    alphas = [v for v in explainer.variables if "alpha" in v.path]
    assert alphas and all(np.isfinite(v.numpy()).all() for v in alphas)


@tf.custom_gradient
def _nan_gradient(x):
    return tf.identity(x), lambda dy: dy * np.float32(np.nan)


class _NaNGradient(keras.layers.Layer):
    def call(self, x):
        return _nan_gradient(x)


class _Statistic(keras.layers.Layer):
    """Identity whose training call stores the batch's largest |x| x 1e36 (Inf for |x| > ~340)."""

    def build(self, shape):
        self.stat = self.add_weight(shape=(), initializer="zeros", trainable=False, name="stat")

    def call(self, x, training=False):
        if training:
            self.stat.assign(tf.reduce_max(tf.abs(x)) * 1e36)
        return x


def _plain(extra):
    keras.utils.set_random_seed(0)
    inputs = keras.Input((16, 16, 3))
    x = keras.layers.Conv2D(4, 3, name="c1")(inputs)
    x = extra(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    model = keras.Model(inputs, keras.layers.Dense(3, name="logits")(x))
    model.compile(keras.optimizers.Adam(1e-2), keras.losses.SparseCategoricalCrossentropy(True))
    return model


def test_gradient_path_names_the_variable():
    x, y = tiny_data(16)
    model = _plain(_NaNGradient(name="nan_grad"))
    x = x.copy()
    snaps = _Snapshots()
    # The inputs and the forward pass are finite; only the backward pass is NaN.
    with pytest.raises(NonFiniteStepError, match=r"in the gradient of 'c1/kernel' at epoch 1, "
                                                 r"step 1: .* lower the learning rate"):
        model.fit(x, y, batch_size=16, epochs=1, verbose=0,
                  callbacks=[guard.protect(model), snaps])
    _assert_restored(model, snaps)
    assert int(model.optimizer.iterations) == 0


def test_variable_path_names_a_statistic_the_forward_pass_wrote():
    x, y = tiny_data(32)
    x[20] *= 1e4                                      # finite, but the statistic overflows
    model = _plain(_Statistic(name="stat_layer"))
    snaps = _Snapshots()
    with pytest.raises(NonFiniteStepError, match=r"in variable 'stat_layer/stat' at epoch 1, step 2"):
        model.fit(x, y, batch_size=16, epochs=1, verbose=0, shuffle=False,
                  callbacks=[guard.protect(model), snaps])
    _assert_restored(model, snaps)
    assert float(model.get_layer("stat_layer").stat.numpy()) < 1e37   # step 1's value, finite


def test_finite_fit_is_unchanged_by_the_guard():
    """On finite data the guard only watches: the same weights as an unguarded fit."""
    x, y = tiny_data(32)
    guarded, plain = _plain(keras.layers.Identity()), _plain(keras.layers.Identity())
    guarded.fit(x, y, batch_size=16, epochs=2, verbose=0, shuffle=False,
                callbacks=[guard.protect(guarded)])
    plain.fit(x, y, batch_size=16, epochs=2, verbose=0, shuffle=False)
    for a, b in zip(guarded.weights, plain.weights):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_mirrored_restores_every_replica():
    from keras_icnn import distribute

    strategy = distribute.get_strategy("mirrored", num_cpu_devices=2)
    x, y = tiny_data(48)
    x[37, 1, 1, 0] = np.nan                          # global batch 3 (16 = 8 per replica)
    with strategy.scope():
        model = _plain(keras.layers.BatchNormalization(name="bn"))
    snaps = _Snapshots()
    with pytest.raises(NonFiniteStepError, match=r"in input at epoch 1, step 3"):
        model.fit(x, y, batch_size=16, epochs=1, verbose=0, shuffle=False,
                  callbacks=[guard.protect(model), snaps])
    _assert_restored(model, snaps)
    # Both replicas' copies of every weight agree (BatchNorm's moving statistics are each
    # replica's own unless synchronized, restored or not).
    for v in model.trainable_variables:
        values = [np.asarray(t) for t in getattr(v.value, "values", [v.value])]
        assert len(values) == 2 or not isinstance(v.value, tf.distribute.DistributedValues)
        for t in values:
            np.testing.assert_array_equal(t, values[0])


def test_mixed_precision_skipped_steps_are_not_errors_but_nan_inputs_are():
    x, y = tiny_data(32)
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        model = _plain(keras.layers.Identity())
        # x 3000 makes float16 gradients overflow at the initial loss scale (2^15): the
        # loss-scale optimizer skips those steps and halves the scale; not an error.
        model.fit(x * 3000.0, y, batch_size=16, epochs=1, verbose=0,
                  callbacks=[guard.protect(model)])
        assert float(model.optimizer.dynamic_scale) < 2.0 ** 15
        bad = x.copy()
        bad[3, 0, 0, 0] = np.nan
        with pytest.raises(NonFiniteStepError, match=r"in input at epoch 1, step 1"):
            model.fit(bad, y, batch_size=16, epochs=1, verbose=0,
                      callbacks=[guard.protect(model)])
    finally:
        keras.mixed_precision.set_global_policy("float32")


def test_mirrored_finite_fit_applies_every_step_like_an_unguarded_one():
    """Issue 49: under MirroredStrategy the apply runs inside a cond of the cross-replica
    context; on finite data it must apply every step, exactly as without the guard."""
    from keras_icnn import distribute

    strategy = distribute.get_strategy("mirrored", num_cpu_devices=2)
    x, y = tiny_data(32)
    with strategy.scope():
        guarded, plain = _plain(keras.layers.Identity()), _plain(keras.layers.Identity())
    guarded.fit(x, y, batch_size=16, epochs=2, verbose=0, shuffle=False,
                callbacks=[guard.protect(guarded)])
    plain.fit(x, y, batch_size=16, epochs=2, verbose=0, shuffle=False)
    assert int(np.asarray(guarded.optimizer.iterations)) == int(np.asarray(plain.optimizer.iterations)) == 4
    for a, b in zip(guarded.weights, plain.weights):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-6, atol=1e-7)


def test_no_weight_or_slot_is_copied_only_forward_written_state():
    """Issue 49: the snapshot holds what the forward pass writes (BatchNorm's moving
    statistics, a statistic), never a trainable weight or an optimizer slot."""
    model = _plain(keras.layers.BatchNormalization(name="bn"))
    names = sorted(name for name, _ in guard._forward_state(model))
    assert names == ["bn/moving_mean", "bn/moving_variance"], names
