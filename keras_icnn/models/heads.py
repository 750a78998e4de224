"""How a classifier's head is read: one rule for explanations, the faithfulness metrics, the
attacks and both exported signatures.

The package works on **class scores** ``[batch, K]``: one logit per class, whose argmax is
the prediction and whose entry for class k is what an explanation of k differentiates. A
head's output is turned into class scores and its probabilities by its kind:

=========== ============================================== ======================= ===========
kind        the output layer                               class scores            probabilities
=========== ============================================== ======================= ===========
``logits``  linear (or log-softmax), K >= 2 units           the output              softmax
``softmax`` a ``Softmax`` / ``Activation("softmax")``      the softmax's input     softmax
            layer, or ``activation="softmax"``
``sigmoid`` ``activation="sigmoid"`` (or an Activation     the pre-sigmoid logits  sigmoid per
            layer), K >= 2 units: independent labels       (class = largest)       unit
``binary``  one unit, linear or sigmoid: a binary          ``[-z, z]`` from the    sigmoid:
            classifier with logit z                        logit z                 ``[1-σ(z), σ(z)]``
=========== ============================================== ======================= ===========

A binary head predicts class 1 when its logit is > 0; explaining class 1 differentiates z
and class 0 differentiates -z (the log-odds of each class). Any other output (another
activation such as ReLU or tanh, or not ``[batch, units]``) is not read as a classifier: a
``ValueError`` asks for ``logits_layer=`` (the layer whose output is the logits).

Example:
    >>> kind, applied = head_kind(flat_model)          # e.g. ("binary", "activation")
    >>> probabilities(scores, kind)                    # what the head's output means
"""
import keras
import tensorflow as tf

KINDS = ("logits", "softmax", "sigmoid", "binary")
SOFTMAX, SIGMOID = "softmax", "sigmoid"
LINEAR = ("linear", None)
# log_softmax(z) differs from z by a per-row constant: the same softmax, argmax and gradient
# differences, so its output is read as logits.
LOG_SOFTMAX = "log_softmax"


def activation_name(layer):
    """The name of ``layer``'s ``activation`` (``"softmax"``, ``"sigmoid"``, ``"linear"``, ...)
    or None for a layer without one."""
    activation = getattr(layer, "activation", None)
    if activation is None:
        return None
    return getattr(activation, "__name__", str(activation))


def output_layer(model):
    """The layer that produces ``model``'s first output."""
    return model.outputs[0]._keras_history.operation


def output_activation(model):
    """``(name, applied)``: the activation ending the flat ``model``'s first output and how it
    is applied: ``"layer"`` (a ``Softmax`` layer or an ``Activation`` layer), ``"activation"``
    (a ``Dense`` / conv with ``activation=``), or ``(None, None)`` for a linear output."""
    layer = output_layer(model)
    if isinstance(layer, keras.layers.Softmax):
        return SOFTMAX, "layer"
    name = activation_name(layer)
    if name in LINEAR:
        return None, None
    if isinstance(layer, keras.layers.Activation):
        return name, "layer"
    return name, "activation"


def kind_of(activation, units, caller="head_kind", where="the model's output"):
    """The head kind (module docstring) of an output with ``activation`` (None: linear) and
    ``units`` classes."""
    if activation == SOFTMAX and units >= 2:
        return "softmax"
    if activation in (SIGMOID, None) and units == 1:
        return "binary"
    if activation == SIGMOID:
        return "sigmoid"
    if activation in (None, LOG_SOFTMAX):
        return "logits"
    raise ValueError(
        f"{caller}: {where} applies {activation!r} to {units} unit(s): not a classifier head "
        "(softmax, sigmoid, or linear logits). Pass logits_layer=<the layer whose output is "
        "the logits>.")


def head_kind(model, caller="head_kind"):
    """``(kind, applied)`` of the flat ``model``'s head: ``kind`` as the module docstring's
    table, ``applied`` as :func:`output_activation` says (None: the output is linear)."""
    out = model.outputs[0]
    if len(out.shape) != 2 or out.shape[-1] is None:
        raise ValueError(
            f"{caller}: the output of model {model.name!r} has shape {tuple(out.shape)}, not "
            "[batch, classes]: not a classifier head. Pass logits_layer=<the layer whose output "
            "is the logits>.")
    activation, applied = output_activation(model)
    return kind_of(activation, int(out.shape[-1]), caller,
                   f"the output of model {model.name!r}"), applied


def binary_scores(logit):
    """``[-z, z]`` [batch, 2] from a single logit ``z`` [batch, 1]: class scores whose argmax is
    class 1 exactly when z > 0 and whose entries are each class's log-odds."""
    return keras.ops.concatenate([-logit, logit], axis=-1)


def probabilities(scores, kind="logits"):
    """The head's probabilities (float32) from its class scores: softmax for ``logits`` and
    ``softmax`` heads, sigmoid per unit for ``sigmoid`` and ``binary`` heads (for a binary
    head's ``[-z, z]`` this is ``[1 - σ(z), σ(z)]``)."""
    if kind not in KINDS:
        raise ValueError(f"`kind` must be one of {KINDS}. Received: kind={kind!r}")
    scores = tf.cast(scores, tf.float32)
    if kind in ("sigmoid", "binary"):
        return tf.sigmoid(scores)
    return tf.nn.softmax(scores, axis=-1)
