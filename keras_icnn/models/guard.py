"""The non-finite guard: a NaN or Inf anywhere in a training step stops ``fit`` and undoes the step.

One NaN pixel can poison a model without changing a logged loss: a ReLU turns NaN
maps into zeros, so the losses stay finite while the kernel's gradient (NaN x 0) is
NaN and the optimizer writes it into the weights. Keras' ``TerminateOnNaN`` reads
the loss and never notices. The guard watches what the step *touches*:

* the batch's inputs (every floating tensor of ``x``);
* every gradient handed to an optimizer (not under a ``LossScaleOptimizer``, whose
  non-finite *scaled* gradients are normal: it skips those steps itself);
* every variable after the step: weights, non-trainable statistics (BatchNorm's
  moving statistics, ``NormLayer.alpha``, ``InterpretableConv``'s class
  statistics), seed-generator states, and each optimizer's slots, iteration
  counter and loss scale.

Mechanism (snapshot and restore): before the step the guard copies every variable
the step can write; after it, each one is assigned ``where(bad, copy, value)``,
where ``bad`` is the step's verdict agreed over the replicas (an all-reduce).
The restore is an unconditional assignment through ``strategy.extended.update``
inside a merge call, the way Keras' optimizers update mirrored variables, so it
needs no ``tf.cond`` around an optimizer (``LossScaleOptimizer``'s way, which
``DESIGN.md`` rules out under ``tf.distribute``) and works alike without a
strategy, under ``MirroredStrategy`` and under XLA. A conditional apply would
also not undo what the *forward* pass writes (BatchNorm, ``NormLayer``), which
the snapshot does. Once a step is bad, every later step of the same
``steps_per_execution`` is undone too, so the model is left exactly as it was
before the first bad step.

The verdict is a code (which tensor was first non-finite) in a replica-local
variable; :class:`StopOnNonFiniteStep` reads it after every batch, outside the
compiled step (XLA drops assert ops), and raises :class:`NonFiniteStepError`
naming the epoch, the step and the tensor. ``InterpretableModel``,
``CSGModel`` and ``ExplainerDistiller`` are guarded by themselves; any other
Keras model is guarded with :func:`protect`.

Example:
    >>> model = keras_icnn.models.vgg_backbone((64, 64, 3), num_classes=6)
    >>> model.compile("adam", keras.losses.SparseCategoricalCrossentropy(True))
    >>> model.fit(images, labels, epochs=3,
    ...           callbacks=[keras_icnn.models.guard.protect(model)])
"""

import functools
import math
import threading

import keras
import tensorflow as tf

from keras_icnn import _lazy
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


# The gradient checks of the step being traced, per thread: MirroredStrategy traces each
# replica's step in its own thread, and they share the optimizers.
_tracing = threading.local()


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


def _optimizers(model):
    found, seen = [], set()
    for value in [getattr(model, "optimizer", None), *vars(model).values()]:
        if isinstance(value, keras.optimizers.Optimizer) and id(value) not in seen:
            seen.add(id(value))
            found.append(value)
    return found


def _tf_variable(v):
    return v.value if isinstance(v, keras.Variable) else v


def _state(model):
    """Every variable a training step can write, except metric accumulators (reset each
    epoch, and no part of the model): (description, tf variable) pairs."""
    metric_ids = {id(_tf_variable(v)) for m in model.metrics for v in m.variables}
    out, seen = [], set(metric_ids)
    groups = [model.variables]
    for opt in _optimizers(model):
        groups.append(opt.variables)
        inner = getattr(opt, "inner_optimizer", None)
        if inner is not None:
            groups.append(inner.variables)
    for group in groups:
        for v in group:
            tv = _tf_variable(v)
            if id(tv) in seen:
                continue
            seen.add(id(tv))
            out.append((getattr(v, "path", None) or tv.name, tv))
    return out


# The finite checks of a step as one XLA-compiled call (a model's ``fused_checks``, default
# True): ~600 fewer small ops a step on an uncompiled VGG step (1.106x -> 1.065x CPU time),
# for one XLA compile (~1 s) per traced step. False: plain ops, no compile (a device with no
# XLA compiler; the test suite, which traces hundreds of tiny fits).


def _finite_flags_plain(tensors):
    return tf.stack([tf.reduce_all(tf.math.is_finite(t)) for t in tensors])


_finite_flags_fused = tf.function(_finite_flags_plain, jit_compile=True, autograph=False)


def _finite_flags(tensors, fused=True):
    """bool ``[len(tensors)]``: whether each floating tensor is all finite, as one
    XLA-compiled call with ``fused`` (two small ops a tensor would cost a dispatch each in a
    step that is not compiled)."""
    tensors = [tf.convert_to_tensor(t) for t in tensors]
    if not tensors:
        return tf.zeros([0], tf.bool)
    return (_finite_flags_fused if fused else _finite_flags_plain)(tensors)


def _record_gradients(opt):
    """Make ``opt.apply`` first record, for the guarded step being traced on this
    thread, whether each gradient is finite (once per optimizer; a no-op elsewhere)."""
    if "apply" in vars(opt):
        return
    original = opt.apply

    def apply(grads, trainable_variables=None):
        record = getattr(_tracing, "record", None)
        if record is not None:
            variables = (trainable_variables if trainable_variables is not None
                         else opt._trainable_variables)
            pairs = [(getattr(v, "path", None) or getattr(v, "name", "?"),
                      g.values if isinstance(g, tf.IndexedSlices) else g)
                     for g, v in zip(grads, variables) if g is not None]
            record([path for path, _ in pairs], _finite_flags(
                [g for _, g in pairs], getattr(_tracing, "fused", True)))
        return original(grads, trainable_variables)

    opt.apply = apply


def guarded_step(model, step, data):
    """Run ``step(data)`` (a train step of ``model``) under the guard; returns its logs."""
    with tf.init_scope():    # made by fit already; here only for a step traced without it
        guard = guard_of(model)
    x, _, _ = keras.utils.unpack_x_y_sample_weight(data)
    checks = []   # ([codes], bool [n] finite) in order: inputs, gradients, variables
    inputs = [(i, t) for i, t in enumerate(tf.nest.flatten(x))
              if t is not None and tf.convert_to_tensor(t).dtype.is_floating]
    single = len(tf.nest.flatten(x)) == 1
    fused = bool(getattr(model, "fused_checks", True))
    checks.append(([guard.code_of("input", "input" if single else f"input {i}")
                    for i, _ in inputs], _finite_flags([t for _, t in inputs], fused)))
    # Keras builds an optimizer inside its first apply; build it first, or its slots
    # would be born during the step and escape the snapshot.
    opt = getattr(model, "optimizer", None)
    if opt is not None and not opt.built:
        opt.build(model.trainable_variables)
    state = _state(model)
    snapshot = [tf.identity(v) for _, v in state]

    def record_gradient(paths, finite):
        checks.append(([guard.code_of("gradient", f"the gradient of {path!r}") for path in paths],
                       finite))

    for opt in _optimizers(model):
        if not isinstance(opt, keras.optimizers.LossScaleOptimizer):
            _record_gradients(opt)
    _tracing.record, _tracing.fused = record_gradient, fused
    try:
        logs = step(data)
    finally:
        _tracing.record = None
    floating = [(name, v) for name, v in state if v.dtype.is_floating]
    checks.append(([guard.code_of("variable", f"variable {name!r}") for name, _ in floating],
                   _finite_flags([v.read_value() for _, v in floating], fused)))
    # Agree over the replicas: the count of replicas that found each tensor non-finite.
    flags = tf.cast(tf.logical_not(tf.concat([ok for _, ok in checks], 0)), tf.float32)
    context = tf.distribute.get_replica_context()
    if context is not None:
        flags = context.all_reduce(tf.distribute.ReduceOp.SUM, flags)
    codes = tf.constant([c for cs, _ in checks for c in cs], tf.float32)
    first = tf.gather(codes, tf.argmax(tf.cast(flags > 0, tf.int32)))
    previous = tf.identity(guard.code)
    bad_now = tf.reduce_any(flags > 0)
    bad = tf.logical_or(bad_now, previous > 0)
    guard.code.assign(tf.where(previous > 0, previous, tf.where(bad_now, first, 0.0)))
    _restore(state, snapshot, bad)
    return {k: v for k, v in dict(logs).items() if not k.startswith("nonfinite_")}


def _restore(state, snapshot, bad):
    if not tf.distribute.has_strategy():
        # One replica, no strategy: restore only when the step was bad (a cond around plain
        # assigns, not around an optimizer's apply), instead of a where-assign per variable.
        def undo():
            with tf.control_dependencies([v.assign(s) for (_, v), s in zip(state, snapshot)]):
                return tf.constant(True)

        tf.cond(bad, undo, lambda: tf.constant(False))
        return

    def restore(distribution, bad, snapshot):
        first = distribution.experimental_local_results
        for (_, v), s in zip(state, snapshot):
            if distribution.num_replicas_in_sync > 1 and \
                    not isinstance(v, tf.distribute.DistributedValues):
                # A variable made outside the strategy's scope (a frozen performer built
                # before it) is one copy for all replicas; the verdict is the same on each.
                v.assign(tf.where(first(bad)[0], first(s)[0], v))
                continue
            distribution.extended.update(
                v, lambda var, s, b: var.assign(tf.where(b, s, var)), args=(s, bad), group=False)

    tf.__internal__.distribute.interim.maybe_merge_call(
        restore, tf.distribute.get_strategy(), bad, snapshot)


class GuardedModel:
    """Mixin for a ``keras.Model`` subclass: its ``_train_step`` runs under the guard.

    The guard's variable is made in ``make_train_function``, outside any trace: a
    variable born inside a trace that then fails (a step that raises on bad input, as
    ``train_on_batch`` without labels does) leaves Keras' cached train function returning
    nothing on its next call.
    """

    guards_nonfinite = True

    def train_step(self, data):
        """The subclass' ``_train_step`` under the non-finite guard."""
        return guarded_step(self, self._train_step, data)

    def make_train_function(self, force=False):
        guard_of(self)
        return super().make_train_function(force=force)


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


def protect(model, fused_checks=None):
    """Guard any Keras model's ``fit``: returns the callback to pass to ``fit``.

    Wraps the model's ``train_step`` (an instance attribute, not saved with the
    model) unless its class is guarded already. ``fused_checks``: run the step's finite
    checks as one XLA-compiled call (the default; ``model.fused_checks``) or, False, as
    plain ops (a device with no XLA compiler).
    """
    if not isinstance(model, keras.Model):
        raise TypeError(f"`model` must be a keras.Model. Received: model={model!r}")
    if fused_checks is not None:
        object.__setattr__(model, "fused_checks", bool(fused_checks))
    if not getattr(type(model), "guards_nonfinite", False) and \
            not getattr(model.train_step, "_keras_icnn_guarded", False):
        step = functools.partial(guarded_step, model, model.train_step)
        step._keras_icnn_guarded = True
        object.__setattr__(model, "train_step", step)
        model.train_function = None
    guard_of(model)
    return StopOnNonFiniteStep()


def with_guard_callback(model, callbacks):
    """``callbacks`` plus a :class:`StopOnNonFiniteStep` first, unless one is there."""
    callbacks = list(callbacks or [])
    guard_of(model)
    if not any(isinstance(c, StopOnNonFiniteStep) for c in callbacks):
        callbacks.insert(0, StopOnNonFiniteStep())
    return callbacks


_lazy.retired_switches(__name__, {
    "FUSED_CHECKS": "guard.protect(model, fused_checks=False) or model.fused_checks = False"})
