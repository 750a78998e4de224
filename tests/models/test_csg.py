import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_icnn import distribute
from keras_icnn.models import (CSGModel, gate_matrix, make_csg, phase_table, resnet20_backbone)
from tests.models.conftest import tiny_backbone, tiny_data


def test_phase_table_matches_algorithm_1():
    s, c = "std", "csg"
    assert phase_table(12, period=3, csg_epochs=1, warmup=3) == [s, s, s, c, s, s, c, s, s, c, s, s]
    assert phase_table(12, period=4, csg_epochs=2, warmup=0) == [c, c, s, s] * 3
    assert phase_table(12, period=2, csg_epochs=1, warmup=1) == [s] + [c, s] * 5 + [c]
    assert phase_table(12, period=5, csg_epochs=0, warmup=0) == [s] * 12
    # Algorithm 1 with warmup 0: CSG iff e % period < csg_epochs.
    for period, k in ((3, 1), (4, 3), (6, 2)):
        assert phase_table(12, period, k, 0) == [c if e % period < k else s for e in range(12)]


def _fit(strategy, epochs, schedule):
    x, y = tiny_data()
    with strategy.scope():
        model = make_csg(tiny_backbone(), "top_conv", density=0.4)
        model.compile(keras.optimizers.SGD(0.05), gate_optimizer=keras.optimizers.SGD(0.5))
    ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(16)
    history = model.fit(ds, epochs=epochs, verbose=0, schedule=schedule)
    return model, history


def test_trains_in_both_phases_and_gate_moves_only_in_csg():
    model, h = _fit(tf.distribute.get_strategy(), 1, dict(warmup=1))
    np.testing.assert_array_equal(gate_matrix(model), 1.0)  # STD epoch: G untouched
    assert "csg_loss" not in h.history
    x, y = tiny_data()
    before = model.get_layer("c1").kernel.numpy().copy()
    h = model.fit(x, y, batch_size=16, epochs=1, verbose=0, schedule=dict(warmup=0))
    g = gate_matrix(model)
    assert g.min() < 1.0 and np.allclose(g.max(0), 1.0)
    assert not np.allclose(model.get_layer("c1").kernel.numpy(), before)
    assert np.isfinite(h.history["csg_loss"][0]) and 0 < h.history["l1_density"][0] <= 1
    # evaluate/predict use the STD path: identical to the network without gate.
    logits = model.predict(x, verbose=0)
    ungated = keras.Model(model.inputs, model.outputs)(x, training=False)
    np.testing.assert_allclose(logits, ungated, rtol=1e-6)
    gated = model.csg_logits(x, y)
    assert not np.allclose(gated, logits)
    scores = model.evaluate(x, y, verbose=0, return_dict=True)
    assert set(scores) == {"loss", "accuracy"}


def test_mirrored_matches_default():
    ref, h_ref = _fit(tf.distribute.get_strategy(), 2, dict(warmup=1, period=1, csg_epochs=1))
    strategy = distribute.get_strategy("mirrored", num_cpu_devices=2)
    assert strategy.num_replicas_in_sync == 2
    mir, h_mir = _fit(strategy, 2, dict(warmup=1, period=1, csg_epochs=1))
    np.testing.assert_allclose(gate_matrix(mir), gate_matrix(ref), rtol=1e-4, atol=1e-5)
    assert gate_matrix(ref).min() < 1.0
    np.testing.assert_allclose(h_mir.history["loss"], h_ref.history["loss"], rtol=1e-4)
    for a, b in zip(mir.weights, ref.weights):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-3, atol=1e-5)


def test_fixed_gate_mode_keeps_gate():
    x, y = tiny_data()
    model = make_csg(tiny_backbone(), "top_conv", density=0.5, fixed=True,
                     filters_per_class=3, shared_filters=3)
    model.compile(keras.optimizers.SGD(0.05))
    g0 = gate_matrix(model).copy()
    model.fit(x, y, batch_size=16, epochs=1, verbose=0, schedule=dict(warmup=0))
    np.testing.assert_array_equal(gate_matrix(model), g0)


def test_nan_loss_stops_with_phase_epoch_step():
    x, y = tiny_data(32)
    model = make_csg(tiny_backbone(), "top_conv", density=0.4)
    model.compile(keras.optimizers.SGD(0.05))
    model.get_layer("logits").kernel.assign(np.full((12, 3), np.nan, np.float32))
    with pytest.raises(FloatingPointError, match=r"Non-finite values \(NaN or Inf\) in the "
                                                 r"gradient of 'c1/kernel' at CSG phase, epoch 1, "
                                                 r"step 1"):
        model.fit(x, y, batch_size=16, epochs=1, verbose=0, schedule=dict(warmup=0))


def test_labels_out_of_range():
    x, y = tiny_data(16)
    model = make_csg(tiny_backbone(), "top_conv", density=0.4)
    model.compile(keras.optimizers.SGD(0.05))
    # Checked before the compiled step (XLA would drop an assert op).
    with pytest.raises(ValueError, match=r"y` must lie in \[0, 3\)\. Received: min=1, max=3"):
        model.fit(x, y + 1, batch_size=16, epochs=1, verbose=0)


def test_save_load_round_trip(tmp_path):
    x, y = tiny_data()
    model = make_csg(resnet20_backbone((16, 16, 3), 3, width=4, blocks_per_stage=1), "top_conv",
                     density=0.4)
    model.compile(keras.optimizers.Adam(1e-3))
    model.fit(x, y, batch_size=16, epochs=1, verbose=0, schedule=dict(warmup=0))
    model.save(tmp_path / "csg.keras")
    loaded = keras.models.load_model(tmp_path / "csg.keras")
    assert isinstance(loaded, CSGModel)
    np.testing.assert_array_equal(gate_matrix(loaded), gate_matrix(model))
    np.testing.assert_allclose(loaded.predict(x, verbose=0), model.predict(x, verbose=0), rtol=1e-5)


def test_each_phase_traces_once_and_switching_swaps_functions():
    """The default schedule switches phase every epoch: each phase's step is traced once per
    fit (a retrace per epoch would recompile the step with XLA every epoch)."""
    x, y = tiny_data()
    model = make_csg(tiny_backbone(), "top_conv", density=0.4)
    model.compile(keras.optimizers.SGD(0.05), gate_optimizer=keras.optimizers.SGD(0.5))
    traces, step = [], model.train_step

    def counting_step(data):
        traces.append(model.phase)  # runs in Python only while tracing
        return step(data)

    model.train_step = counting_step
    gates = []

    class Record(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            gates.append((model.phase, gate_matrix(model).copy()))

    ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(16)
    history = model.fit(ds, epochs=6, verbose=0, callbacks=[Record()],
                        schedule=dict(warmup=1, period=2, csg_epochs=1))
    assert sorted(traces) == ["csg", "std"], traces
    assert [p for p, _ in gates] == phase_table(6, 2, 1, 1)
    # The swapped-in functions still train their own phase: G moves only in CSG epochs.
    previous = np.ones_like(gates[0][1])
    for phase, g in gates:
        assert np.array_equal(g, previous) == (phase == "std"), phase
        previous = g
    assert np.isfinite(history.history["csg_loss"]).all()


def test_final_std_makes_the_last_epoch_std_in_the_table_and_in_fit():
    s, c = "std", "csg"
    # The paper recipe's schedule over 30 epochs: STD, STD, CSG, ... with epoch 29 forced STD.
    table = phase_table(30, period=3, csg_epochs=1, warmup=2, final_std=True)
    assert table == [c if e % 3 == 2 and e != 29 else s for e in range(30)]
    assert table.count(c) == 9 and table[-1] == s
    assert phase_table(4, 3, 1, 0, final_std=True) == [c, s, s, s]  # epoch 3 would be CSG
    x, y = tiny_data(32)
    model = make_csg(tiny_backbone(), "top_conv", density=0.4)
    model.compile(keras.optimizers.SGD(0.05), gate_optimizer=keras.optimizers.SGD(0.5))
    seen = []

    class Record(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            seen.append(model.phase)

    model.fit(x, y, batch_size=16, epochs=4, verbose=0, callbacks=[Record()],
              schedule=dict(period=3, csg_epochs=1, warmup=0, final_std=True))
    assert seen == [c, s, s, s]


def _one_csg_step_by_hand(model, x, y, lr):
    """The weights after one plain-SGD step on lambda1 CE(y, y^G) + lambda2 d (no STD term),
    computed with a tape outside ``train_step``, and G projected as SPEC §6 says."""
    from keras_icnn.layers import label_context

    gate = model.gate_layer.gate
    theta = [v for v in model.trainable_variables if v is not gate]
    with tf.GradientTape() as tape:
        with label_context.label_scope(tf.constant(y), use_gate=True):
            logits = model(x, training=True)
        ce = tf.reduce_mean(keras.losses.sparse_categorical_crossentropy(y, logits, True))
        loss = model.lambda1 * ce + model.lambda2 * model.gate_layer.sparsity_loss()
    grads = tape.gradient(loss, theta + [gate])
    theta_new = [v.numpy() - lr * g.numpy() for v, g in zip(theta, grads[:-1])]
    g_new = gate.numpy() - lr * grads[-1].numpy()
    g_new = np.clip(g_new / g_new.max(axis=0, keepdims=True), 0.0, 1.0)
    return theta, theta_new, g_new


def test_gate_in_the_csg_optimizer_and_no_std_term_in_csg_epochs():
    """gate_optimizer="csg" (the authors' code): one CSG step moves G by the CSG-phase
    optimizer's rate, and the network by the gradient of the CSG objective alone."""
    x, y = tiny_data(16)
    lr = 0.2
    model = make_csg(tiny_backbone(), "top_conv", density=0.4)
    model.compile(keras.optimizers.SGD(1e-3), csg_optimizer=keras.optimizers.SGD(lr),
                  gate_optimizer="csg", lambda2=0.05)
    assert model.gate_optimizer is model.csg_optimizer and model.gate_in_csg_optimizer
    # A G whose columns are not all ones, so the projection does not undo the step.
    model.gate_layer.gate.assign(np.linspace(0.2, 1.0, 36, dtype="float32").reshape(3, 12))
    theta, theta_new, g_new = _one_csg_step_by_hand(model, x, y, lr)
    model.fit(x, y, batch_size=16, epochs=1, verbose=0, shuffle=False,
              schedule=dict(warmup=0, period=1, csg_epochs=1))
    np.testing.assert_allclose(gate_matrix(model), g_new, rtol=1e-4, atol=1e-6)
    for v, expected in zip(theta, theta_new):
        np.testing.assert_allclose(v.numpy(), expected, rtol=1e-4, atol=1e-6)
    assert int(model.csg_optimizer.iterations) == 1 and int(model.optimizer.iterations) == 0
    # With its own optimizer (the default), G moves by that optimizer's rate instead.
    own = make_csg(tiny_backbone(), "top_conv", density=0.4)
    own.compile(keras.optimizers.SGD(1e-3), csg_optimizer=keras.optimizers.SGD(lr),
                gate_optimizer=keras.optimizers.SGD(10 * lr), lambda2=0.05)
    own.gate_layer.gate.assign(np.linspace(0.2, 1.0, 36, dtype="float32").reshape(3, 12))
    own.fit(x, y, batch_size=16, epochs=1, verbose=0, shuffle=False,
            schedule=dict(warmup=0, period=1, csg_epochs=1))
    assert not np.allclose(gate_matrix(own), g_new, atol=1e-4)


def test_each_phase_schedule_advances_only_in_its_own_epochs():
    """Step decay (the paper recipe) per phase: the STD optimizer counts STD steps only,
    the CSG optimizer CSG steps only, each schedule reaching its own milestones."""
    from keras_icnn.recipes import CSGConfig
    from keras_icnn.recipes.optim import network_learning_rates as _network_learning_rates, network_optimizer as _network_optimizer

    x, y = tiny_data(32)  # 2 steps per epoch
    config = CSGConfig(recipe="paper", epochs=6, warmup=0, explicit=("warmup",))
    phases = phase_table(6, period=3, csg_epochs=1, warmup=0, final_std=True)  # c s s c s s
    std_lr, csg_learning_rate, _ = _network_learning_rates(config, 2, phases)
    model = make_csg(tiny_backbone(), "top_conv", density=0.4)
    model.compile(_network_optimizer(config, std_lr),
                  csg_optimizer=_network_optimizer(config, csg_learning_rate), gate_optimizer="csg")
    rates = []

    class Record(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            rates.append((model.phase, int(model.optimizer.iterations),
                          int(model.csg_optimizer.iterations),
                          float(model.optimizer.learning_rate),
                          float(model.csg_optimizer.learning_rate)))

    model.fit(x, y, batch_size=16, epochs=6, verbose=0, callbacks=[Record()],
              schedule=dict(period=3, csg_epochs=1, warmup=0, final_std=True))
    assert [r[0] for r in rates] == phases
    assert [(r[1], r[2]) for r in rates] == [(0, 2), (2, 2), (4, 2), (4, 4), (6, 4), (8, 4)]
    lr0 = 0.1 * config.batch_size / 256
    # STD: 8 steps, milestones at round(0.4/0.6/0.8 * 8) = 3, 5, 6; CSG: 4 steps -> 2, 2, 3.
    def by_hand(step, total):
        bounds = [max(1, round(f * total)) for f in (0.4, 0.6, 0.8)]
        return lr0 * 0.1 ** sum(step > b for b in bounds)

    for _, s_it, c_it, s_lr, c_lr in rates:
        np.testing.assert_allclose(s_lr, by_hand(s_it, 8), rtol=1e-6)
        np.testing.assert_allclose(c_lr, by_hand(c_it, 4), rtol=1e-6)
    assert rates[-1][3] < lr0 * 0.01 and rates[-1][4] < lr0 * 0.01
