"""CSG training (Liang et al. 2020, Algorithm 1) as a Keras model trained with ``fit``."""


import keras
import numpy as np
import tensorflow as tf

from keras_icnn import validation
from keras_icnn.compat import onednn
from keras_icnn.layers import label_context
from keras_icnn.layers.class_specific_gate import ClassSpecificGate
from keras_icnn.models import graph, guard, heads
from keras_icnn.models.interpretable import as_functional

PHASES = ("std", "csg")


# The STD/CSG epoch schedule's defaults (the library's and train_csg.py's): one STD warm-up
# epoch, then periods of 2 epochs starting with 1 CSG epoch.
PERIOD, CSG_EPOCHS, WARMUP = 2, 1, 1


def phase_for_epoch(epoch, period=PERIOD, csg_epochs=CSG_EPOCHS, warmup=WARMUP, epochs=None,
                    final_std=False):
    """Phase of a 0-based epoch: STD during ``warmup``, then per ``period`` epochs
    the first ``csg_epochs`` are CSG and the rest STD.

    Algorithm 1 prints the test as ``e % period <= csg_epochs``, which gives one
    CSG epoch more per period than ``csg_epochs`` says; this schedule gives
    exactly ``csg_epochs`` (with ``warmup = 0`` and ``csg_epochs = k`` it equals
    Algorithm 1's ``e % period < k``). With ``final_std`` the last of ``epochs``
    epochs is STD whatever the period says, so the weights served (the STD path)
    come from an STD update (the paper recipe of ``train_csg.py --recipe=paper``).

    Example:
        >>> [phase_for_epoch(e, period=3, csg_epochs=1, warmup=2, epochs=6, final_std=True)
        ...  for e in range(6)]
        ['std', 'std', 'csg', 'std', 'std', 'std']
    """
    validation.non_negative_int(epoch, "epoch")
    _check_schedule(period, csg_epochs, warmup)
    if final_std:
        if epochs is None:
            raise ValueError("phase_for_epoch(final_std=True) needs `epochs`, the run's length")
        if epoch == int(epochs) - 1:
            return "std"
    if epoch < warmup:
        return "std"
    return "csg" if (epoch - warmup) % period < csg_epochs else "std"


def phase_table(epochs, period=PERIOD, csg_epochs=CSG_EPOCHS, warmup=WARMUP, final_std=False):
    """Phases of epochs ``0 .. epochs-1``."""
    validation.non_negative_int(epochs, "epochs")
    return [phase_for_epoch(e, period, csg_epochs, warmup, epochs, final_std)
            for e in range(epochs)]


def _check_schedule(period, csg_epochs, warmup):
    validation.positive_int(period, "period")
    validation.non_negative_int(warmup, "warmup")
    if not 0 <= validation.non_negative_int(csg_epochs, "csg_epochs") <= int(period):
        raise ValueError(
            "The CSG schedule needs 0 <= csg_epochs <= period. "
            f"Received: csg_epochs={csg_epochs}, period={period}")


class CSGSchedule(keras.callbacks.Callback):
    """Sets ``model.phase`` from the epoch schedule.

    Each phase's train function is traced (and XLA-compiled) once per ``fit``
    and kept: switching phase swaps the function in, it never retraces (the
    default schedule switches every epoch).
    """

    def __init__(self, period=PERIOD, csg_epochs=CSG_EPOCHS, warmup=WARMUP, final_std=False):
        super().__init__()
        _check_schedule(period, csg_epochs, warmup)
        self.period, self.csg_epochs, self.warmup = int(period), int(csg_epochs), int(warmup)
        self.final_std = bool(final_std)
        self._functions = {}

    def on_train_begin(self, logs=None):
        # fit() has made the train function for the phase the model is in.
        self._functions = {self.model.phase: self.model.train_function}

    def on_epoch_begin(self, epoch, logs=None):
        phase = phase_for_epoch(epoch, self.period, self.csg_epochs, self.warmup,
                                self.params.get("epochs"), self.final_std)
        if phase != self.model.phase:
            self.model.phase = phase
            if phase in self._functions:
                self.model.train_function = self._functions[phase]
            else:
                self.model.make_train_function(force=True)
                self._functions[phase] = self.model.train_function


# The non-finite stop of a CSG fit is the package's one (it names the phase); public name kept.
StopOnNonFinite = guard.StopOnNonFiniteStep


@keras.saving.register_keras_serializable(package="keras_icnn")
class CSGModel(guard.GuardedModel, keras.Model):
    """A classifier with a ``ClassSpecificGate`` after its last conv layer, trained by phases.

    Build it with :func:`make_csg` (or functionally, with a ``ClassSpecificGate``
    in the graph). ``fit`` runs Algorithm 1: STD epochs minimise ``CE(y, y^)``
    over the network; CSG epochs minimise ``lambda1 CE(y, y^G) + lambda2 d(||G||_1, g)``
    (plus ``CE(y, y^)`` with ``std_in_csg``, eq. 3) over the network and G,
    each phase with its own optimizer and G with its own (larger) learning
    rate (or inside the CSG-phase optimizer: ``gate_optimizer="csg"``). The phase comes from :class:`CSGSchedule`, which ``fit`` adds; G is
    projected after every update by its weight constraint. ``evaluate`` and
    ``predict`` always use the STD path (the gate is the identity).

    Example:
        >>> base = keras_icnn.models.resnet20_backbone((64, 64, 3), num_classes=6)
        >>> model = keras_icnn.models.make_csg(base, "top_conv", num_classes=6)
        >>> model.compile(keras.optimizers.Adam(1e-3), gate_optimizer=keras.optimizers.Adam(0.05))
        >>> model.fit(train_ds, epochs=12, schedule=dict(period=3, csg_epochs=1, warmup=3))
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.phase = "std"
        self.current_epoch = 0
        self.std_loss_tracker = keras.metrics.Mean(name="std_loss")
        self.std_accuracy = keras.metrics.SparseCategoricalAccuracy(name="std_accuracy")
        self.csg_loss_tracker = keras.metrics.Mean(name="csg_loss")
        self.csg_accuracy = keras.metrics.SparseCategoricalAccuracy(name="csg_accuracy")
        self.density_tracker = keras.metrics.Mean(name="l1_density")
        # A user's softmax head: its output is probabilities, the cross-entropies take them so.
        self.outputs_logits = heads.output_softmax(self) is None

    @property
    def gate_layer(self):
        gates = [layer for layer in self._flatten_layers(include_self=False)
                 if isinstance(layer, ClassSpecificGate)]
        if len(gates) != 1:
            raise ValueError(f"CSGModel needs exactly one ClassSpecificGate; found {len(gates)}")
        return gates[0]

    @property
    def num_classes(self):
        return self.gate_layer.num_classes

    def compile(self, optimizer="adam", csg_optimizer=None, gate_optimizer=None,
                lambda1=1.0, lambda2=1e-3, std_in_csg=False, **kwargs):
        """Compile with one optimizer per phase and one for G.

        Args:
            optimizer: updates the network in STD epochs.
            csg_optimizer: updates the network in CSG epochs (default: a fresh
                optimizer with the same configuration as ``optimizer``).
            gate_optimizer: updates G (default ``Adam(0.05)``: G needs a much
                larger learning rate than the network in short runs, SPEC §6), or
                ``"csg"``: G is one more variable of ``csg_optimizer``, at the
                network's rate, as in the authors' code (hyliang96/CSGCNN
                ``VOCPart/train/train.py``: ``optimizer_reg`` holds every parameter
                of the CSG phase, the gate included).
            lambda1, lambda2: weights of the CSG cross-entropy and of the
                sparsity penalty.
            std_in_csg: add the STD cross-entropy in CSG epochs (eq. 3).
            **kwargs: ``keras.Model.compile`` arguments (``jit_compile``, ...); the
                loss (cross-entropy on logits) and metrics (accuracy of both
                paths, L1-density) are built in.
        """
        for key in ("loss", "metrics"):
            if kwargs.pop(key, None) is not None:
                raise ValueError(f"CSGModel computes its own losses and metrics; do not pass `{key}`")
        super().compile(optimizer=optimizer, **kwargs)
        self.csg_optimizer = (csg_optimizer if csg_optimizer is not None else
                              self.optimizer.__class__.from_config(self.optimizer.get_config()))
        self.csg_optimizer = keras.optimizers.get(self.csg_optimizer)
        self.gate_in_csg_optimizer = isinstance(gate_optimizer, str) and gate_optimizer == "csg"
        if self.gate_in_csg_optimizer:
            self.gate_optimizer = self.csg_optimizer
        else:
            self.gate_optimizer = keras.optimizers.get(
                gate_optimizer if gate_optimizer is not None else keras.optimizers.Adam(0.05))
        self.lambda1, self.lambda2, self.std_in_csg = float(lambda1), float(lambda2), bool(std_in_csg)
        gate = self.gate_layer.gate
        theta = self._network_variables()
        train_gate = self.gate_layer.trainable and gate.trainable
        # Every optimizer is built once with every variable it will ever update.
        self.optimizer.build(theta)
        if self.gate_in_csg_optimizer:
            self.csg_optimizer.build(theta + ([gate] if train_gate else []))
        else:
            self.csg_optimizer.build(theta)
            if train_gate:
                self.gate_optimizer.build([gate])

    def _network_variables(self):
        """Trainable variables of the network, without G (a fresh list: never stored on
        the model, where Keras would track it as the model's own variables)."""
        gate = self.gate_layer.gate
        return [v for v in self.trainable_variables if v is not gate]

    def _cross_entropy(self, y, logits):
        per_example = keras.losses.sparse_categorical_crossentropy(
            y, logits, from_logits=self.outputs_logits)
        return tf.reduce_mean(tf.cast(per_example, tf.float32))

    def _checked_labels(self, y):
        return validation.labels_tf(y, self.num_classes, where=f"CSGModel {self.name!r}")

    def _train_step(self, data):
        """One training step (run under the non-finite guard: :class:`guard.GuardedModel`)."""
        x, y, _ = keras.utils.unpack_x_y_sample_weight(data)
        y = self._checked_labels(y)
        replicas = tf.distribute.get_strategy().num_replicas_in_sync
        gate_layer = self.gate_layer
        csg = self.phase == "csg"
        opt = self.csg_optimizer if csg else self.optimizer
        with tf.GradientTape() as tape:
            if csg:
                with label_context.label_scope(y, use_gate=True):
                    logits_g = self(x, training=True)
                csg_ce = self._cross_entropy(y, logits_g)
                loss = self.lambda1 * csg_ce + self.lambda2 * gate_layer.sparsity_loss()
                csg_loss = loss
            if not csg or self.std_in_csg:
                logits = self(x, training=True)
                std_ce = self._cross_entropy(y, logits)
                loss = loss + std_ce if csg else std_ce
            if self.losses:
                loss = loss + tf.add_n([tf.cast(v, tf.float32) for v in self.losses])
            # Gradients are summed over replicas: scale each replica's mean.
            scaled = opt.scale_loss(loss / replicas)
        train_gate = csg and gate_layer.trainable and gate_layer.gate.trainable
        theta = self._network_variables()
        grads = tape.gradient(scaled, theta + ([gate_layer.gate] if train_gate else []))
        # Two optimizers may apply: the guard sees every gradient before the first does.
        guard.declare_gradients(grads, theta + ([gate_layer.gate] if train_gate else []))
        if train_gate and self.gate_in_csg_optimizer:
            opt.apply(grads, theta + [gate_layer.gate])
        else:
            opt.apply(grads[:len(theta)], theta)
        if train_gate and not self.gate_in_csg_optimizer:
            loss_scale = opt.scale_loss(tf.constant(1.0))
            self.gate_optimizer.apply([grads[-1] / loss_scale], [gate_layer.gate])
        logs = {}
        if csg:
            self.csg_loss_tracker.update_state(csg_loss)
            self.csg_accuracy.update_state(y, logits_g)
            logs.update(csg_loss=self.csg_loss_tracker.result(),
                        csg_accuracy=self.csg_accuracy.result())
        if not csg or self.std_in_csg:
            self.std_loss_tracker.update_state(std_ce)
            self.std_accuracy.update_state(y, logits)
            logs.update(loss=self.std_loss_tracker.result(), accuracy=self.std_accuracy.result())
        if csg and "loss" not in logs:
            logs["loss"] = self.csg_loss_tracker.result()
        self.density_tracker.update_state(gate_layer.l1_density())
        logs["l1_density"] = self.density_tracker.result()
        return logs

    def test_step(self, data):
        """Always the STD path: cross-entropy and accuracy."""
        x, y, _ = keras.utils.unpack_x_y_sample_weight(data)
        y = self._checked_labels(y)
        logits = self(x, training=False)
        self.std_loss_tracker.update_state(self._cross_entropy(y, logits))
        self.std_accuracy.update_state(y, logits)
        return {"loss": self.std_loss_tracker.result(), "accuracy": self.std_accuracy.result()}

    def fit(self, x=None, y=None, *args, schedule=None, callbacks=None, **kwargs):
        """``keras.Model.fit`` plus ``schedule=dict(period, csg_epochs, warmup, final_std)``.

        Labels are checked (whole numbers in ``[0, C)``, one per image) before
        the compiled step, which may drop assert ops under XLA.
        """
        x, y = validation.checked_fit_data(x, y, self.num_classes, f"CSGModel {self.name!r}")
        callbacks = guard.with_guard_callback(self, callbacks)
        if not any(isinstance(c, CSGSchedule) for c in callbacks):
            callbacks.insert(0, CSGSchedule(**(schedule or {})))
        return super().fit(x, y, *args, callbacks=callbacks, **kwargs)

    def csg_logits(self, x, y):
        """Predictions through the CSG path (the gate row of each label)."""
        with label_context.label_scope(tf.convert_to_tensor(y), use_gate=True):
            return self(x, training=False)


def make_csg(model, layer_name, num_classes=None, copy_weights=True, **gate_kwargs):
    """Insert a ``ClassSpecificGate`` after ``layer_name`` (the last conv layer).

    Args:
        model: a functional or Sequential classifier producing logits (or a softmax of
            them), possibly with nested sub-models: the result is the flattened model
            (:mod:`keras_icnn.models.graph`) with the gate inserted.
        layer_name: the layer whose output is gated (its maps feed the head): a unique
            name or a path (``"vgg16/block5_conv3"``).
        num_classes: C; defaults to the model's output size.
        copy_weights: copy the model's weights (otherwise fresh initialisation).
        **gate_kwargs: ``ClassSpecificGate`` options (density, sparsity, fixed, ...).

    Returns:
        A :class:`CSGModel`.
    """
    flat = as_functional(model, "make_csg")
    layer_name = graph.flat_layer_name(model, layer_name, "make_csg")
    model = flat
    if len(model.outputs) != 1 or len(model.outputs[0].shape) != 2:
        raise ValueError(
            "make_csg needs a classifier with one output of shape [batch, classes] (the "
            "logits or their softmax). Received: a model with outputs "
            f"{[tuple(o.shape) for o in model.outputs]}")
    target = model.get_layer(layer_name)
    if len(target.output.shape) != 4:
        raise ValueError(f"make_csg needs a layer with 4D output; {layer_name!r} outputs "
                         f"{tuple(target.output.shape)}")
    num_classes = int(num_classes or model.outputs[0].shape[-1])
    gate = ClassSpecificGate(num_classes, name="class_specific_gate", **gate_kwargs)

    def call_function(layer, *args, **kwargs):
        out = layer(*args, **kwargs)
        return gate(out) if layer.name == layer_name else out

    cloned = keras.models.clone_model(
        model, clone_function=lambda layer: layer.__class__.from_config(layer.get_config()),
        call_function=call_function)
    if copy_weights:
        for layer in model.layers:
            if layer.weights:
                cloned.get_layer(layer.name).set_weights(layer.get_weights())
    result = CSGModel(cloned.inputs, cloned.outputs, name=f"{model.name}_csg")
    onednn.warn_onednn_unsafe_convs(result)
    return result


def gate_matrix(model):
    """The gate matrix G [C, K] of a CSG model as numpy."""
    return np.asarray(model.gate_layer.gate)
