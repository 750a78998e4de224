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

The models built on the rule live here too: :func:`logits_model` / :func:`class_scores_model`
(a flat model whose output is the class scores; :class:`PreActivation` switches a layer's
activation off for the call), :func:`as_logits` (cached per model) and :class:`Classifier`
(a user's model read as the package needs it: flat, with a layer's maps and the class scores
side by side: the one probe of maps and logits).

Example:
    >>> kind, applied = head_kind(flat_model)          # e.g. ("binary", "activation")
    >>> probabilities(scores, kind)                    # what the head's output means
    >>> maps, scores = Classifier(model, "top_conv").probe(images)
"""
import weakref

import keras
import tensorflow as tf

from keras_icnn.models import graph

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


# ----------------------------------------------------------------------------- models

def output_softmax(model):
    """How the (first) output of the flat ``model`` applies a softmax: ``"layer"`` (a final
    ``Softmax`` / ``Activation("softmax")``), ``"activation"`` (a ``Dense`` or conv with
    ``activation="softmax"``) or None (no softmax)."""
    name, applied = output_activation(model)
    return applied if name == SOFTMAX else None


def call_without_activation(layer, inputs):
    """``layer.call(inputs)`` with its activation switched off for the call (the pre-softmax
    logits of a ``Dense(..., activation="softmax")``); the layer is left as it was."""
    saved = layer.activation
    layer.activation = keras.activations.linear
    try:
        return layer.call(inputs)
    finally:
        layer.activation = saved


@keras.saving.register_keras_serializable(package="keras_icnn")
class PreActivation(keras.layers.Layer):
    """Calls a wrapped layer (``Dense``, conv) with its activation switched off: the
    pre-softmax logits of a ``Dense(..., activation="softmax")`` head, on the wrapped layer's
    own weights. The wrapped layer is left as it was after every call."""

    def __init__(self, layer, **kwargs):
        super().__init__(**kwargs)
        self.layer = layer

    def build(self, input_shape):
        if not self.layer.built:
            self.layer.build(input_shape)
        self.built = True

    def call(self, inputs):
        return call_without_activation(self.layer, inputs)

    def compute_output_shape(self, input_shape):
        return self.layer.compute_output_shape(input_shape)

    def get_config(self):
        config = super().get_config()
        config["layer"] = keras.saving.serialize_keras_object(self.layer)
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["layer"] = keras.saving.deserialize_keras_object(config["layer"])
        return cls(**config)


def logits_model(model, logits_layer=None, caller="logits_model"):
    """The flat ``model`` with its class scores as output (the user's model unchanged): the
    pre-softmax logits of a softmax head, the pre-sigmoid logits of a sigmoid head, ``[-z, z]``
    for a binary head with logit z (:mod:`keras_icnn.models.heads` has the rule).

    Args:
        model: a classifier (nested sub-models allowed) whose first output is logits, a
            softmax or a sigmoid of them, or one binary logit.
        logits_layer: name or path of the layer whose output is the logits, for a head
            this function cannot trace (e.g. a softmax inside a custom layer).
        caller: the name used in error messages.

    Returns:
        ``(flat_scores_model, applied)``: ``applied`` is how the original output applied its
        activation (``"layer"``, ``"activation"``, ``"logits_layer"``), None when it gave
        logits already. :func:`class_scores_model` also returns the head's kind.
    """
    scores, _, applied = class_scores_model(model, logits_layer, caller)
    return scores, applied


def class_scores_model(model, logits_layer=None, caller="class_scores_model"):
    """``(flat_scores_model, kind, applied)``: :func:`logits_model`'s model and how the head
    is read (``kind`` in :data:`KINDS`; ``applied`` as :func:`logits_model`)."""
    flat = graph.flatten(model, caller)
    if logits_layer:
        layer = graph.output_leaf(graph.find_layer(model, logits_layer, caller))
        out = graph.layer_output(flat, layer.name)
        if len(out.shape) != 2:
            raise ValueError(f"{caller}: `logits_layer` must output [batch, classes]. Received: "
                             f"{logits_layer!r} with shape {tuple(out.shape)}")
        units = int(out.shape[-1])
        # The output's own activation says what the logits mean (a sigmoid: independent
        # labels); a softmax or anything untraceable: logits of a softmax.
        name, _ = output_activation(flat)
        kind = "binary" if units == 1 else ("sigmoid" if name == SIGMOID else "logits")
        if kind == "binary":
            out = binary_scores(out)
        return (keras.Model(_single(flat.inputs), out, name=f"{flat.name}_logits"), kind,
                "logits_layer")
    kind, applied = head_kind(flat, caller)
    if applied is None and kind != "binary":
        return flat, kind, None
    history = flat.outputs[0]._keras_history
    head = history.operation
    node = head._inbound_nodes[history.node_index]
    if applied is not None and len(node.input_tensors) != 1:
        raise ValueError(f"{caller}: cannot trace the {kind} output of model {model.name!r} back "
                         "to its logits; pass logits_layer=... (the layer whose output is the "
                         "logits).")
    if applied is None:
        logits = flat.outputs[0]
    elif applied == "layer":
        logits = node.input_tensors[0]
    else:
        logits = PreActivation(head, name=f"{head.name}_logits")(node.input_tensors[0])
    if kind == "binary":
        logits = binary_scores(logits)
    return keras.Model(_single(flat.inputs), logits, name=f"{flat.name}_logits"), kind, applied


def _single(inputs):
    return inputs[0] if len(inputs) == 1 else inputs


def probabilities_from_logits(logits, kind="logits"):
    """The probabilities (float32) a head of ``kind`` outputs for its class scores
    (:func:`probabilities`: softmax, or sigmoid for sigmoid and binary heads)."""
    return probabilities(logits, kind)


_LOGITS_CACHE = weakref.WeakKeyDictionary()


def as_logits(model, caller="as_logits"):
    """The flat logits model of ``model`` (:func:`logits_model`), cached per model object:
    ``model`` itself when it is flat and outputs logits already."""
    try:
        return _LOGITS_CACHE[model]
    except (KeyError, TypeError):
        pass
    logits, _ = logits_model(model, caller=caller)
    try:
        _LOGITS_CACHE[model] = logits
    except TypeError:
        pass
    return logits


def head_of(model, caller="head_of"):
    """The kind of ``model``'s head (:data:`KINDS`); ``"logits"`` for a callable that is
    not a Keras model (it returns logits)."""
    if not isinstance(model, keras.Model):
        return "logits"
    return head_kind(graph.flatten(model, caller), caller)[0]


class Classifier:
    """A user's classifier read as the package needs it: flat, with a named layer's maps and
    the pre-softmax logits side by side.

    Attributes:
        model: the model as given.
        flat: :func:`flatten` ``(model)`` (the model itself when it is already flat).
        logits: a model on ``flat``'s graph whose output is the logits.
        head: the head's kind (:data:`KINDS`: logits, softmax, sigmoid, binary).
        softmax: how the original output applied its activation (None: logits already).
        layer: the explained/evaluated layer's name in ``flat`` (None if not asked).
        probe: ``flat``'s input -> ``[maps of layer, logits]`` (None without a layer).

    Example:
        >>> c = Classifier(nested_sequential, "vgg16/block5_conv3")
        >>> maps, logits = c.probe(images)
    """

    def __init__(self, model, layer=None, logits_layer=None, default_layer=None,
                 caller="Classifier"):
        self.model = model
        self.flat = graph.flatten(model, caller)
        resolved = graph.flat_layer_name(model, logits_layer, caller) if logits_layer else None
        self.logits, self.head, self.softmax = class_scores_model(self.flat, resolved, caller)
        if layer:
            self.layer = graph.flat_layer_name(model, layer, caller)
        elif default_layer is not None:
            self.layer = default_layer(self.flat)
        else:
            self.layer = None
        self.probe = None
        if self.layer is not None:
            maps = graph.layer_output(self.flat, self.layer)
            self.probe = keras.Model(self.flat.inputs[0], [maps, self.logits.outputs[0]])
