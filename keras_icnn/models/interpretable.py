"""Interpretable CNN construction (ICNN §5) and the model that feeds it labels."""

import keras
import tensorflow as tf

from keras_icnn.layers import label_context
from keras_icnn.layers.interpretable_conv import InterpretableConv


class FilterLossEpoch(keras.callbacks.Callback):
    """Tells every ``InterpretableConv`` the current epoch (1-based).

    Used by ``loss_schedule="inverse_epoch"``; ``InterpretableModel.fit``
    adds it by itself.
    """

    def on_epoch_begin(self, epoch, logs=None):
        for layer in self.model._flatten_layers(include_self=False):
            if isinstance(layer, InterpretableConv) and layer.built:
                layer.epoch.assign(float(epoch + 1))


@keras.saving.register_keras_serializable(package="keras_icnn")
class InterpretableModel(keras.Model):
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

    @property
    def interpretable_layers(self):
        """All ``InterpretableConv`` layers of the model, outermost first."""
        return [layer for layer in self._flatten_layers(include_self=False)
                if isinstance(layer, InterpretableConv)]

    def train_step(self, data):
        _, y, _ = keras.utils.unpack_x_y_sample_weight(data)
        with label_context.label_scope(y) as scope:
            logs = super().train_step(data)
        if scope.filter_losses:
            self.filter_loss_tracker.update_state(tf.add_n(scope.filter_losses))
        logs = dict(logs)
        logs["filter_loss"] = self.filter_loss_tracker.result()
        return logs

    def test_step(self, data):
        # The filter loss exists only in training; do not log a meaningless 0.
        logs = dict(super().test_step(data))
        logs.pop("filter_loss", None)
        return logs

    def fit(self, *args, callbacks=None, **kwargs):
        callbacks = list(callbacks or [])
        if not any(isinstance(c, FilterLossEpoch) for c in callbacks):
            callbacks.append(FilterLossEpoch())
        return super().fit(*args, callbacks=callbacks, **kwargs)


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


def make_interpretable(model, layer_name, num_classes=None, copy_weights=True, **layer_kwargs):
    """Turn a CNN into an interpretable CNN (ICNN §5, SPEC §4).

    The top conv layer ``layer_name`` becomes an :class:`InterpretableConv`
    (same filters, kernel, strides, padding; its weights copied when
    ``copy_weights``) and a new interpretable 3x3 conv with the same number of
    filters and zero "same" padding is added above it. When ``layer_name`` is
    not a ``Conv2D`` (e.g. the output of a ResNet's last residual stage), both
    interpretable layers are new and go after it, on the stage output.

    Args:
        model: a functional or Sequential ``keras.Model`` (left unchanged).
        layer_name: name of the top conv layer or stage output.
        num_classes: classes of the filter loss; defaults to the size of the
            model's last output dimension.
        copy_weights: copy the weights of every other layer (and of the
            replaced conv) into the new model.
        **layer_kwargs: ``InterpretableConv`` options (``gradient``, ``mu``,
            ``loss_weight``, ``loss_schedule``, ``single_category``, ...).

    Returns:
        An :class:`InterpretableModel`; train it with ordinary ``fit``.
    """
    try:
        target = model.get_layer(layer_name)
    except ValueError:
        names = [layer.name for layer in model.layers]
        raise ValueError(
            f"make_interpretable: no layer named {layer_name!r} in model "
            f"{model.name!r}. Layers: {names}"
        ) from None
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
    is_conv = isinstance(target, keras.layers.Conv2D)
    first = (_interpretable_like(target, num_classes, layer_kwargs) if is_conv else
             InterpretableConv(filters, 3, padding="same", num_classes=num_classes,
                               name=f"{layer_name}_interp1", **layer_kwargs))
    second = InterpretableConv(
        filters, 3, padding="same", num_classes=num_classes,
        name=f"{layer_name}_interp" if is_conv else f"{layer_name}_interp2", **layer_kwargs)

    def clone_function(layer):
        if layer is target and is_conv:
            return first
        return layer.__class__.from_config(layer.get_config())

    def call_function(layer, *args, **kwargs):
        if layer is first:
            return second(first(*args, **kwargs))
        out = layer(*args, **kwargs)
        if layer.name == layer_name and not is_conv:
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
    return InterpretableModel(cloned.inputs, cloned.outputs, name=f"{model.name}_interpretable")
