"""The non-finite guard's verdict and its reader: the per-model verdict variable
(:func:`guard_of`), :class:`StopOnNonFiniteStep` (the one stop callback, which raises
:class:`NonFiniteStepError` after a bad batch) and the one :class:`EpochCounter`. The step
that writes the verdict is :mod:`keras_icnn.models.guard`, which re-exports these names."""

import math
import threading

import keras
import tensorflow as tf

from keras_icnn.layers.interpretable_conv import InterpretableConv

_HINTS = {
    "input": "Check the inputs for NaN/Inf pixels (keras_icnn.data.pipeline.validate_examples "
             "names them).",
    "gradient": "The loss's gradient overflowed or a layer produced NaN: lower the learning "
                "rate, or check the loss for log(0) / division by zero.",
    "variable": "A weight, statistic or optimizer slot overflowed: lower the learning rate.",
}


class NonFiniteStepError(FloatingPointError, ValueError):
    """A training step met a NaN or Inf; the model was restored to its state before it."""


class _Guard:
    """Per-model state: the verdict variable and the names of the tensors it can point to."""

    def __init__(self, model):
        self.names = []          # code - 1 -> (kind, description)
        self._index = {}
        self._lock = threading.Lock()
        with model.distribute_strategy.scope():
            # Replica-local: each replica writes the (agreed) verdict; a read sums them.
            self.code = tf.Variable(0.0, trainable=False, name="keras_icnn_nonfinite_code",
                                    synchronization=tf.VariableSynchronization.ON_READ,
                                    aggregation=tf.VariableAggregation.SUM)

    def code_of(self, kind, description):
        key = (kind, description)
        with self._lock:     # the same code on every replica's thread
            if key not in self._index:
                self.names.append(key)
                self._index[key] = len(self.names)
            return self._index[key]

    def read(self, replicas):
        """The first offending (kind, description) since the last reset, or None."""
        value = int(round(float(self.code.numpy()) / max(replicas, 1)))
        return self.names[value - 1] if 0 < value <= len(self.names) else None

    def reset(self):
        self.code.assign(0.0)


def guard_of(model):
    """The model's guard (created on first use, inside the model's strategy scope)."""
    g = model.__dict__.get("_keras_icnn_guard")
    if g is None:
        g = _Guard(model)
        # Not a tracked attribute: the guard is no part of the model's saved state.
        object.__setattr__(model, "_keras_icnn_guard", g)
    return g


class EpochCounter(keras.callbacks.Callback):
    """The one epoch counter of the package's models: at each epoch's start it sets
    ``model.current_epoch`` (0-based, a Python int: the messages and the CSG schedule read
    it), every built ``InterpretableConv``'s ``epoch`` variable (1-based: the
    ``inverse_epoch`` schedule's N) and the model's own ``epoch`` variable when it has one
    (1-based: the explainer distiller's ``fraction_decay``). Every guarded model's ``fit``
    runs one (:class:`StopOnNonFiniteStep` is one); ``keras_icnn.models.FilterLossEpoch`` is
    this class.
    """

    def on_epoch_begin(self, epoch, logs=None):
        self.model.current_epoch = int(epoch)
        for layer in self.model._flatten_layers(include_self=False):
            if isinstance(layer, InterpretableConv) and layer.built:
                layer.epoch.assign(float(epoch + 1))
        counter = getattr(self.model, "epoch", None)
        if hasattr(counter, "assign"):
            counter.assign(float(epoch + 1))


class StopOnNonFiniteStep(EpochCounter):
    """The one non-finite stop callback: raises :class:`NonFiniteStepError` (a
    ``FloatingPointError`` and a ``ValueError``) after a batch whose step the guard undid,
    naming the tensor kind, phase, epoch and step; also when NaN/Inf maps reached an
    interpretable layer's filter loss (naming the layer) or a logged loss is not finite.
    It is the models' epoch counter too (:class:`EpochCounter`).

    The guarded models add it in ``fit``; :func:`protect` returns one for any model.
    """

    def on_train_begin(self, logs=None):
        guard_of(self.model).reset()

    def on_train_batch_end(self, batch, logs=None):
        guard = guard_of(self.model)
        found = guard.read(self.model.distribute_strategy.num_replicas_in_sync)
        # InterpretableModel also counts non-finite maps per interpretable layer.
        maps = [name for name, t in getattr(self.model, "nonfinite_trackers", {}).items()
                if float(t.result()) != 0]
        losses = [k for k in ("loss", "csg_loss") if (logs or {}).get(k) is not None
                  and not math.isfinite(float(logs[k]))]
        if found is None and not maps and not losses:
            return
        self.model.stop_training = True
        per = getattr(self.model, "_steps_per_execution", None)
        per = int(per.numpy()) if per is not None and hasattr(per, "numpy") else 1
        step = f"step {batch + 1}" if per <= 1 else f"one of steps {batch + 2 - per}-{batch + 1}"
        phase = getattr(self.model, "phase", None)
        where = (f"{phase.upper()} phase, " if isinstance(phase, str) else "") + \
            f"epoch {getattr(self.model, 'current_epoch', 0) + 1}, {step}"
        layers = ", ".join(map(repr, maps))
        if found is None and maps:
            raise NonFiniteStepError(
                f"Non-finite activations (NaN or Inf) reached the filter loss of layer(s) "
                f"{layers} at {where}: the filter loss and the weights would become NaN. "
                f"{_HINTS['input']} Or lower the learning rate.")
        if found is None:
            raise NonFiniteStepError(
                f"Non-finite {losses[0]} ({float(logs[losses[0]])}) at {where}. Lower the "
                "learning rate (of that phase, for a CSG model: --learning_rate / "
                "--csg_learning_rate / --gate_learning_rate).")
        kind, what = found
        maps = (f" Non-finite activations also reached the filter loss of layer(s) "
                f"{layers}." if maps else "")
        raise NonFiniteStepError(
            f"Non-finite values (NaN or Inf) in {what} at {where}: training stopped and the "
            "model (weights, statistics, optimizer slots and iteration count) was restored to "
            f"its state before that step.{maps} {_HINTS[kind]}")
