"""The non-finite guard: a NaN or Inf anywhere in a training step stops ``fit`` and undoes the step.

One NaN pixel can poison a model without changing a logged loss: a ReLU turns NaN
maps into zeros, so the losses stay finite while the kernel's gradient (NaN x 0) is
NaN and the optimizer writes it into the weights. Keras' ``TerminateOnNaN`` reads
the loss and never notices. The guard watches what the step *touches*:

* the batch's inputs (every floating tensor of ``x``);
* every gradient handed to an optimizer, and its square (not under a
  ``LossScaleOptimizer``, whose non-finite *scaled* gradients are normal);
* what the forward pass wrote (BatchNorm's moving statistics, ``NormLayer.alpha``,
  ``InterpretableConv``'s class statistics, seed-generator states).

Mechanism (issue 49: nothing non-finite is applied, nothing large is copied): every
optimizer's apply runs under a verdict, the inputs and the gradients finite on every
replica, so weights, slots and iteration counters are never written by a bad step (a
``tf.cond``; under ``MirroredStrategy`` the cond sits in the cross-replica context of a
merge call, each replica's apply inside it, as Keras' ``LossScaleOptimizer`` does). Only the
forward-written state is snapshotted before the step and, after a bad one, restored. A
gradient whose square is finite cannot make Adam's or SGD's update overflow, so no weight
or slot needs checking after the step. Once a step is bad, every later step of the same
``steps_per_execution`` applies nothing and is restored too, so the model is left exactly as
it was before the first bad step.

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
import threading

import keras
import tensorflow as tf

from keras_icnn import _lazy
from keras_icnn.models.guard_verdict import (  # noqa: F401  (public names of the guard)
    EpochCounter, NonFiniteStepError, StopOnNonFiniteStep, guard_of)

# The gradient checks of the step being traced, per thread: MirroredStrategy traces each
# replica's step in its own thread, and they share the optimizers.
_tracing = threading.local()


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


def _forward_state(model):
    """The variables a forward pass can write: those of the model made non-trainable
    (BatchNorm's moving statistics, ``NormLayer.alpha``, class statistics, seed-generator
    states, diagnostics), metric accumulators left out. A weight made trainable and frozen
    later (a frozen performer's kernels) is not one of them; optimizer variables neither (the
    optimizer runs only on a verdict of finite)."""
    made_trainable = {id(_tf_variable(v)) for layer in model._flatten_layers(include_self=True)
                      for v in getattr(layer, "_trainable_variables", ())}
    metric_ids = {id(_tf_variable(v)) for m in model.metrics for v in m.variables}
    out, seen = [], made_trainable | metric_ids
    for v in model.variables:
        tv = _tf_variable(v)
        if id(tv) not in seen:
            seen.add(id(tv))
            out.append((getattr(v, "path", None) or tv.name, tv))
    return out


def _finite_gradients(grads, fused):
    """bool ``[n]``: each gradient finite *and its square too* (``|g| < 1.8e19``): Adam's
    second moment would overflow on a larger one, so a gradient that passes cannot make an
    optimizer write a non-finite slot or weight."""
    return _finite_flags([tf.square(g) for g in grads], fused)


def _conditional(ok, fn, args):
    """Run ``fn(*args)`` (an optimizer's apply) only where ``ok`` (a scalar every replica
    agrees on). One replica: ``tf.cond``. Under a strategy with merge calls
    (``MirroredStrategy``): the cond in the cross-replica context, each replica's apply of its
    own ``args`` inside it, as Keras' ``LossScaleOptimizer`` does (a cond in the replica
    context cannot hold the merge call an optimizer's apply makes)."""

    def skip():
        return tf.constant(False)

    if not tf.distribute.has_strategy() or \
            tf.__internal__.distribute.strategy_supports_no_merge_call():
        def run():
            fn(*args)
            return tf.constant(True)

        tf.cond(ok, run, skip)
        return

    def cross(distribution, ok, *args):
        def apply_all():
            distribution.extended.call_for_each_replica(fn, args=args)
            return tf.constant(True)

        tf.cond(distribution.experimental_local_results(ok)[0], apply_all, skip)

    tf.distribute.get_replica_context().merge_call(cross, args=(ok, *args))


def _gate_apply(opt):
    """Make ``opt.apply`` (once per optimizer; unchanged outside a guarded step) first record
    whether each gradient is finite (not under a ``LossScaleOptimizer``, whose non-finite
    *scaled* gradients are normal: it skips those steps itself), then apply only when
    everything the step checked so far is finite on every replica and no earlier step of the
    same ``steps_per_execution`` was bad."""
    if "apply" in vars(opt):
        return
    original = opt.apply
    scaled = isinstance(opt, keras.optimizers.LossScaleOptimizer)

    def apply(grads, trainable_variables=None):
        hooks = getattr(_tracing, "hooks", None)
        if hooks is None:
            return original(grads, trainable_variables)
        if not scaled:
            declare_gradients(grads, trainable_variables if trainable_variables is not None
                              else opt._trainable_variables)
        grads = list(grads)
        hooks.check_forward()
        _conditional(hooks.ok(), original, (grads, trainable_variables))
        return None

    opt.apply = apply


def declare_gradients(grads, variables):
    """Record, for the guarded step being traced, whether each gradient is finite, before any
    optimizer applies. A step that applies several optimizers (CSG's network and gate) calls
    it with every gradient first, so that a NaN in the last one also stops the first apply;
    a no-op outside a guarded step."""
    hooks = getattr(_tracing, "hooks", None)
    if hooks is None:
        return
    pairs = [(getattr(v, "path", None) or getattr(v, "name", "?"),
              g.values if isinstance(g, tf.IndexedSlices) else g)
             for g, v in zip(grads, variables) if g is not None]
    hooks.record([path for path, _ in pairs],
                 _finite_gradients([g for _, g in pairs], hooks.fused))


class _StepHooks:
    """The checks of the guarded step being traced: ``record`` adds (codes, finite flags),
    ``ok`` is the verdict so far, agreed over the replicas, and false once an earlier step of
    the same execution was bad."""

    def __init__(self, guard, previous, fused, forward):
        self.guard, self.previous, self.fused = guard, previous, fused
        self.forward = [(name, v) for name, v in forward if v.dtype.is_floating]
        self.checks = []

    def check_forward(self):
        """Record whether the forward-written state is finite now (before an apply: a
        statistic that overflowed in this step's forward pass stops the apply too)."""
        self.record([f"variable {name!r}" for name, _ in self.forward],
                    _finite_flags([v.read_value() for _, v in self.forward], self.fused),
                    kind="variable")

    def record(self, paths, finite, kind="gradient"):
        describe = (lambda p: f"the gradient of {p!r}") if kind == "gradient" else (lambda p: p)
        self.checks.append(([self.guard.code_of(kind, describe(p)) for p in paths], finite))

    def flags(self):
        """float ``[n]``: how many replicas found each checked tensor non-finite."""
        if not self.checks:
            return tf.zeros([0], tf.float32)
        flags = tf.cast(tf.logical_not(tf.concat([ok for _, ok in self.checks], 0)), tf.float32)
        context = tf.distribute.get_replica_context()
        if context is not None and context.num_replicas_in_sync > 1:
            flags = context.all_reduce(tf.distribute.ReduceOp.SUM, flags)
        return flags

    def ok(self):
        return tf.logical_and(tf.logical_not(tf.reduce_any(self.flags() > 0)),
                              self.previous <= 0)


def guarded_step(model, step, data):
    """Run ``step(data)`` (a train step of ``model``) under the guard; returns its logs.

    Nothing non-finite is applied: each optimizer's apply runs under a verdict (inputs and
    gradients finite on every replica, see :func:`_gate_apply`), and only what the forward
    pass writes (:func:`_forward_state`) is snapshotted and restored after a bad step.
    """
    with tf.init_scope():    # made by fit already; here only for a step traced without it
        guard = guard_of(model)
    x, _, _ = keras.utils.unpack_x_y_sample_weight(data)
    inputs = [(i, t) for i, t in enumerate(tf.nest.flatten(x))
              if t is not None and tf.convert_to_tensor(t).dtype.is_floating]
    single = len(tf.nest.flatten(x)) == 1
    fused = bool(getattr(model, "fused_checks", True))
    # Keras builds an optimizer inside its first apply; build it first, or its slots
    # would be born inside the conditional apply.
    opt = getattr(model, "optimizer", None)
    if opt is not None and not opt.built:
        opt.build(model.trainable_variables)
    previous = tf.identity(guard.code)
    forward = _forward_state(model)
    snapshot = [tf.identity(v) for _, v in forward]
    hooks = _StepHooks(guard, previous, fused, forward)
    hooks.record(["input" if single else f"input {i}" for i, _ in inputs],
                 _finite_flags([t for _, t in inputs], fused), kind="input")
    for opt in _optimizers(model):
        _gate_apply(opt)
    _tracing.hooks = hooks
    try:
        logs = step(data)
    finally:
        _tracing.hooks = None
    hooks.check_forward()
    flags = hooks.flags()
    codes = tf.constant([c for cs, _ in hooks.checks for c in cs], tf.float32)
    first = tf.gather(codes, tf.argmax(tf.cast(flags > 0, tf.int32)))
    bad_now = tf.reduce_any(flags > 0)
    bad = tf.logical_or(bad_now, previous > 0)
    guard.code.assign(tf.where(previous > 0, previous, tf.where(bad_now, first, 0.0)))
    _restore(forward, snapshot, bad)
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
