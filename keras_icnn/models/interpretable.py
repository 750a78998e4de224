"""Interpretable CNN construction (ICNN §5) and the model that feeds it labels."""

import keras
import tensorflow as tf

from keras_icnn import validation
from keras_icnn.compat import onednn
from keras_icnn.layers import label_context
from keras_icnn.models import graph, guard
from keras_icnn.layers.interpretable_conv import InterpretableConv
from keras_icnn.layers.interpretable_mask import InterpretableMask


# The epoch counter ``loss_schedule="inverse_epoch"`` reads: the package's one counter, which
# every guarded model's ``fit`` runs (the public name kept).
FilterLossEpoch = guard.EpochCounter


@keras.saving.register_keras_serializable(package="keras_icnn")
class InterpretableModel(guard.GuardedModel, keras.Model):
    """A ``keras.Model`` whose ``fit`` feeds the labels to its interpretable layers.

    Build it like a functional model, ``InterpretableModel(inputs, outputs)``,
    or get one from :func:`make_interpretable`. During ``fit`` every
    ``InterpretableConv`` in the graph receives the batch labels, computes its
    filter loss and updates its target classes; ``evaluate``/``predict`` are
    plain. The log ``filter_loss`` is the unweighted filter loss summed over
    filters and interpretable layers. Works with ``jit_compile=True`` and
    inside a ``tf.distribute`` strategy scope.

    Example:
        >>> base = keras_icnn.models.vgg_backbone((64, 64, 3), num_classes=6)
        >>> model = keras_icnn.models.make_interpretable(base, "top_conv")
        >>> model.compile("adam", keras.losses.SparseCategoricalCrossentropy(True),
        ...               metrics=["accuracy"])
        >>> model.fit(images, labels, epochs=2)
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.filter_loss_tracker = keras.metrics.Mean(name="filter_loss")
        # Non-finite maps per interpretable layer, read by guard.StopOnNonFiniteStep (not logged).
        self.nonfinite_trackers = {layer.name: keras.metrics.Sum(name=f"nonfinite_{layer.name}")
                                   for layer in self.interpretable_layers}

    @property
    def interpretable_layers(self):
        """All ``InterpretableConv`` layers of the model, outermost first."""
        return [layer for layer in self._flatten_layers(include_self=False)
                if isinstance(layer, InterpretableConv)]

    def _train_step(self, data):
        """Keras' step with the labels in scope (run under the non-finite guard:
        :class:`guard.GuardedModel`)."""
        _, y, _ = keras.utils.unpack_x_y_sample_weight(data)
        with label_context.label_scope(y) as scope:
            logs = keras.Model.train_step(self, data)  # not GuardedModel.train_step
        if scope.filter_losses:
            self.filter_loss_tracker.update_state(tf.add_n(scope.filter_losses))
        for name, finite in scope.finite_maps:
            if name in self.nonfinite_trackers:
                self.nonfinite_trackers[name].update_state(1.0 - tf.cast(finite, tf.float32))
        logs = {k: v for k, v in dict(logs).items() if not k.startswith("nonfinite_")}
        logs["filter_loss"] = self.filter_loss_tracker.result()
        return logs

    def test_step(self, data):
        # The filter loss exists only in training; do not log a meaningless 0.
        logs = dict(super().test_step(data))
        return {k: v for k, v in logs.items()
                if k != "filter_loss" and not k.startswith("nonfinite_")}

    def fit(self, x=None, y=None, *args, callbacks=None, **kwargs):
        """``keras.Model.fit``; labels are checked (whole numbers in ``[0, C)``) before the
        compiled step; a NaN/Inf in a batch, a gradient or a variable stops training with the
        tensor's name and the step undone, and NaN/Inf maps reaching a filter loss with the
        layer's name (both :class:`keras_icnn.models.guard.StopOnNonFiniteStep`, which also
        counts the epochs)."""
        classes = {layer.num_classes for layer in self.interpretable_layers
                   if not layer.single_category}
        if classes:
            x, y = validation.checked_fit_data(x, y, max(classes),
                                               f"InterpretableModel {self.name!r}")
        callbacks = guard.with_guard_callback(self, callbacks)
        return super().fit(x, y, *args, callbacks=callbacks, **kwargs)


def _interpretable_like(conv, num_classes, layer_kwargs):
    if conv.dilation_rate not in ((1, 1), 1) or getattr(conv, "groups", 1) != 1:
        raise ValueError(
            "make_interpretable supports plain Conv2D layers (dilation 1, groups 1). "
            f"Received: layer {conv.name!r} with dilation_rate={conv.dilation_rate}, "
            f"groups={conv.groups}"
        )
    if conv.padding not in ("same", "valid"):
        raise ValueError(f"Unsupported padding {conv.padding!r} in layer {conv.name!r}")
    return InterpretableConv(
        conv.filters, kernel_size=conv.kernel_size, strides=conv.strides,
        padding=conv.padding, use_bias=conv.use_bias, num_classes=num_classes,
        name=conv.name, **layer_kwargs,
    )


def _activation(layer):
    return str(layer.get_config().get("activation", "linear"))


def _only_consumer(layer, model=None):
    """The one layer reading ``layer``'s output (in ``model``'s graph when given), else None."""
    found = (graph.consumers(model, layer) if model is not None else
             [node.operation for node in getattr(layer, "_outbound_nodes", [])])
    return found[0] if len(found) == 1 else None


def _is_relu(layer):
    if isinstance(layer, keras.layers.ReLU):
        return float(layer.get_config().get("negative_slope", 0.0)) == 0.0
    return isinstance(layer, keras.layers.Activation) and _activation(layer) == "relu"


def bn_relu_after(conv, model=None):
    """The ReLU layer of a conv -> BatchNorm -> ReLU chain starting at ``conv`` (in
    ``model``'s graph when given), else None."""
    bn = _only_consumer(conv, model)
    if not isinstance(bn, keras.layers.BatchNormalization):
        return None
    relu = _only_consumer(bn, model)
    return relu if relu is not None and _is_relu(relu) else None


def _attach_point(model, target, layer_name):
    """Where the interpretable layers go: ``("conv", conv)`` to replace a conv with a ReLU
    inside, ``("after", layer)`` to add them on a layer's (post-ReLU) output."""
    if not isinstance(target, keras.layers.Conv2D):
        return "after", target
    activation = _activation(target)
    if activation == "relu":
        return "conv", target
    if activation == "linear":
        relu = bn_relu_after(target, model)
        if relu is not None:
            return "after", relu
        consumer = _only_consumer(target, model)
        raise ValueError(
            f"make_interpretable: conv {layer_name!r} has a linear activation and is not "
            "followed by BatchNormalization -> ReLU (its consumer is "
            f"{getattr(consumer, 'name', 'several layers')!r}); replacing it would put a ReLU "
            "and the part mask where the model has none. Name the layer whose output is the "
            "block's post-ReLU map instead (for a ResNet, the block's '..._out' layer).")
    raise ValueError(
        f"make_interpretable: conv {layer_name!r} uses activation {activation!r}; interpretable "
        "filters are post-ReLU. Name a conv with a ReLU, a conv -> BatchNorm -> ReLU block, or "
        "the layer holding a post-ReLU map.")


def as_functional(model, caller):
    """``model`` as one functional graph (:func:`keras_icnn.models.graph.flatten`): a
    ``Sequential`` is rebuilt on its own layers and nested sub-models are inlined, on the
    same layer objects. ``keras.models.clone_model(..., call_function=...)`` needs that."""
    return graph.flatten(model, caller)


def make_interpretable(model, layer_name, num_classes=None, copy_weights=True, **layer_kwargs):
    """Turn a CNN into an interpretable CNN (ICNN §5, SPEC §4).

    The top conv layer ``layer_name`` becomes an :class:`InterpretableConv`
    (same filters, kernel, strides, padding; its weights copied when
    ``copy_weights``) and a new interpretable 3x3 conv with the same number of
    filters and zero "same" padding is added above it. A conv with a linear
    activation followed by BatchNorm -> ReLU (ResNet-50, MobileNetV2) keeps
    that block; an :class:`InterpretableMask` (filter loss and mask, no
    kernel) goes on the ReLU's output, then the new conv. Any other linear or
    non-ReLU conv is refused with a message. When ``layer_name`` is not a
    ``Conv2D`` (e.g. the output of a ResNet's last residual stage), both
    interpretable layers are new and go after it, on the stage output.

    Args:
        model: a functional or Sequential ``keras.Model`` (left unchanged), possibly with
            nested sub-models (a ``keras.applications`` base in a ``Sequential``): the
            result is the flattened model (:mod:`keras_icnn.models.graph`) with the
            interpretable layers inserted.
        layer_name: name of the top conv layer or stage output: a name unique in the
            whole model, or a path (``"vgg16/block5_conv3"``); a sub-model's name stands
            for its output.
        num_classes: classes of the filter loss; defaults to the size of the
            model's last output dimension.
        copy_weights: copy the weights of every other layer (and of the
            replaced conv) into the new model.
        **layer_kwargs: ``InterpretableConv`` options (``gradient``, ``mu``,
            ``loss_weight``, ``loss_schedule``, ``single_category``, ...).

    Returns:
        An :class:`InterpretableModel`; train it with ordinary ``fit``.
    """
    flat = as_functional(model, "make_interpretable")
    layer_name = graph.flat_layer_name(model, layer_name, "make_interpretable")
    model = flat
    target = model.get_layer(layer_name)
    out_shape = target.output.shape
    if len(out_shape) != 4:
        raise ValueError(
            f"make_interpretable needs a conv layer with 4D output; layer "
            f"{layer_name!r} outputs shape {tuple(out_shape)}"
        )
    if num_classes is None and not layer_kwargs.get("single_category", False):
        num_classes = int(model.outputs[0].shape[-1])
        if num_classes < 2:
            raise ValueError(
                "Cannot infer num_classes from a model with one output unit; "
                "pass num_classes=... or single_category=True."
            )
    filters = int(out_shape[-1])
    kind, anchor = _attach_point(model, target, layer_name)
    is_conv = kind == "conv"
    if is_conv:
        first = _interpretable_like(target, num_classes, layer_kwargs)
    elif anchor is not target:  # conv -> BN -> ReLU: the block stays, loss and mask on the ReLU
        first = InterpretableMask(num_classes=num_classes, name=f"{layer_name}_mask",
                                  **layer_kwargs)
    else:
        first = InterpretableConv(filters, 3, padding="same", num_classes=num_classes,
                                  name=f"{layer_name}_interp1", **layer_kwargs)
    second = InterpretableConv(
        filters, 3, padding="same", num_classes=num_classes,
        name=f"{layer_name}_interp" if anchor is not target or is_conv else f"{layer_name}_interp2",
        **layer_kwargs)

    def clone_function(layer):
        if layer is target and is_conv:
            return first
        return layer.__class__.from_config(layer.get_config())

    def call_function(layer, *args, **kwargs):
        if layer is first:
            return second(first(*args, **kwargs))
        out = layer(*args, **kwargs)
        if layer.name == anchor.name and not is_conv:
            out = second(first(out))
        return out

    cloned = keras.models.clone_model(
        model, clone_function=clone_function, call_function=call_function)
    if copy_weights:
        for layer in model.layers:
            if layer is target and is_conv:
                first.kernel.assign(target.kernel)
                if target.use_bias:
                    first.bias.assign(target.bias)
            elif layer.weights:
                cloned.get_layer(layer.name).set_weights(layer.get_weights())
    result = InterpretableModel(cloned.inputs, cloned.outputs, name=f"{model.name}_interpretable")
    onednn.warn_onednn_unsafe_convs(result)
    return result
