"""Other gradients through every ReLU, for a while, without touching any model.

Guided backpropagation (Springenberg et al. 2015), the deconvnet (Zeiler & Fergus 2014) and
the gradient-ascent pictures' redirected ReLU (Olah et al. 2017) change how a gradient passes a ReLU. Rather than rebuild the user's
model with other activations, these context managers swap the gradient registry's ``Relu``
entry while ``tape.gradient`` runs (eagerly, or while a ``tf.function`` calling it is traced)
and restore it on exit: every ``Relu`` op on the path — Keras layers and activations,
``InterpretableConv`` and the mask alike — follows the rule.

Example:
    >>> with tf.GradientTape() as tape:
    ...     tape.watch(x); y = model(x)[:, c]
    >>> with guided_relu_gradients():
    ...     g = tape.gradient(y, x)
"""
import contextlib
import threading

import tensorflow as tf

_LOCK = threading.RLock()


def _guided(op, grad):
    """Only positive gradients, only to positive inputs."""
    return tf.raw_ops.ReluGrad(gradients=tf.nn.relu(grad), features=op.outputs[0])


def _deconvnet(op, grad):
    """The deconvnet's backward ReLU: the rectified upstream signal, whatever the forward input
    was (its mask ignored; max-pooling still routes through its switches, TF's own gradient)."""
    del op
    return tf.nn.relu(grad)


def _redirected(op, grad):
    """The ordinary gradient where the input is positive; where it is not, the gradient
    still passes when it would push the input up (so a silent unit can be woken)."""
    active = tf.cast(op.outputs[0] > 0, grad.dtype)
    return grad * tf.maximum(active, tf.cast(grad > 0, grad.dtype))


@contextlib.contextmanager
def _relu_gradient(rule, caller):
    from tensorflow.python.framework import ops as tf_ops  # the registry has no public API

    registry = getattr(getattr(tf_ops, "_gradient_registry", None), "_registry", None)
    if not isinstance(registry, dict) or "type" not in registry.get("Relu", {}):
        raise RuntimeError(f"{caller}: this TensorFlow version ({tf.__version__}) keeps its "
                           "gradient registry elsewhere; the ReLU gradient cannot be changed")
    entry = registry["Relu"]
    with _LOCK:
        saved = entry["type"]
        entry["type"] = rule
        try:
            yield
        finally:
            entry["type"] = saved


def guided_relu_gradients():
    """Within this block, gradients through every ``Relu`` follow guided backpropagation's
    rule (module docstring)."""
    return _relu_gradient(_guided, "guided_relu_gradients")


def deconvnet_relu_gradients():
    """Within this block, gradients through every ``Relu`` follow the deconvnet's rule:
    ``relu(upstream)``, the forward mask ignored (SPEC §11)."""
    return _relu_gradient(_deconvnet, "deconvnet_relu_gradients")


def redirected_relu_gradients():
    """Within this block, gradients through every ``Relu`` also pass where the input is not
    positive but the gradient would raise it (module docstring)."""
    return _relu_gradient(_redirected, "redirected_relu_gradients")
