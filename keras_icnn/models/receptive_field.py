"""Where a feature-map unit looks: receptive fields from the real layer geometry, and
the peak (strongest unit) of a map mapped to image pixels.

A map's peak is found in one place (:func:`keras_icnn.ops.peaks.peak_units`, re-exported
here) and turned into image coordinates here (:meth:`ReceptiveField.centers`,
:func:`peak_locations`); the part mask, the filter loss, the metrics, the explanations and
the export all call them. It depends on nothing else in the package but ``ops``.

For a conv or pooling layer with kernel ``k``, stride ``s`` and left padding
``p`` on an input whose units are ``jump`` pixels apart with unit 0 centred
at ``start`` and seeing ``size`` pixels:

    jump' = jump * s,   size' = size + (k - 1) * jump,
    start' = start + ((k - 1) / 2 - p) * jump.

``"same"`` padding follows TensorFlow: total padding
``max((ceil(n / s) - 1) * s + k - n, 0)`` with the smaller half on the left,
so it depends on the input size ``n``. Pixel ``c`` covers ``[c, c + 1)``, so
the image's unit 0 is centred at 0.5.
"""

import dataclasses
import math

import keras
import tensorflow as tf

from keras_icnn.ops.peaks import peak_units  # noqa: F401  (its old home; re-exported)

_PASS_THROUGH = (
    keras.layers.InputLayer, keras.layers.BatchNormalization, keras.layers.ReLU,
    keras.layers.Activation, keras.layers.Dropout, keras.layers.Rescaling,
    keras.layers.LayerNormalization, keras.layers.Normalization,
)


@dataclasses.dataclass(frozen=True)
class AxisField:
    size: float  # receptive-field size in pixels
    jump: float  # distance in pixels between neighbouring units
    start: float  # image-plane centre of unit 0
    length: int  # number of units along this axis


@dataclasses.dataclass(frozen=True)
class ReceptiveField:
    """Receptive field of a layer's units along the rows (y) and columns (x)."""

    rows: AxisField
    cols: AxisField

    def centers(self, i, j):
        """Image-plane ``(x, y)`` centre of unit ``(i, j)`` (arrays broadcast; numpy in,
        numpy out; a TF tensor in gives float32 tensors)."""
        if tf.is_tensor(i) or tf.is_tensor(j):
            i, j = tf.cast(i, tf.float32), tf.cast(j, tf.float32)
        return self.cols.start + j * self.cols.jump, self.rows.start + i * self.rows.jump


def peak_locations(maps, field):
    """``(locations, scores)``: each map's peak as image pixels ``(x, y)`` [B, F, 2] float32
    (the centre of the peak unit's receptive field ``field``) and its value [B, F] float32."""
    i, j, score = peak_units(tf.cast(maps, tf.float32))
    x, y = field.centers(i, j)
    return tf.stack([x, y], axis=-1), score


def _geometry(layer):
    """(kernel, strides, padding) of a spatial layer, or None for pass-through layers."""
    if isinstance(layer, keras.layers.Conv2D) or hasattr(layer, "kernel_size"):
        dilation = getattr(layer, "dilation_rate", (1, 1))
        kernel = tuple((k - 1) * d + 1 for k, d in zip(layer.kernel_size, dilation))
        return kernel, tuple(layer.strides), layer.padding
    if isinstance(layer, (keras.layers.MaxPooling2D, keras.layers.AveragePooling2D)):
        return tuple(layer.pool_size), tuple(layer.strides), layer.padding
    return None


def _step(field, kernel, stride, padding):
    n = field.length
    if padding == "same":
        out = math.ceil(n / stride)
        left = max((out - 1) * stride + kernel - n, 0) // 2
    elif padding == "valid":
        out = (n - kernel) // stride + 1
        left = 0
    else:
        raise ValueError(f"Unsupported padding {padding!r}")
    return AxisField(size=field.size + (kernel - 1) * field.jump, jump=field.jump * stride,
                     start=field.start + ((kernel - 1) / 2.0 - left) * field.jump, length=out)


def receptive_field(model, layer_name):
    """Receptive field of the units of ``layer_name``'s output in ``model``'s input.

    Walks the functional graph from the input to the layer. Where paths merge
    (residual ``Add``), the path with the largest receptive field is kept.

    Returns:
        :class:`ReceptiveField`; ``.centers(i, j)`` maps units to pixels.

    Example:
        >>> rf = receptive_field(model, "top_conv")
        >>> x, y = rf.centers(i, j)
    """
    from keras_icnn.models import graph

    flat = graph.flatten(model, "receptive_field")
    if flat is not model:
        layer_name = graph.flat_layer_name(model, layer_name, "receptive_field")
        model = flat
    model.get_layer(layer_name)  # a clear error for an unknown name
    target_output = graph.layer_output(model, layer_name)
    shape = model.inputs[0].shape
    if len(shape) != 4 or shape[1] is None or shape[2] is None:
        raise ValueError(
            f"receptive_field needs a model with a static 4D image input. Received: {shape}")
    memo = {}

    def field_of(tensor):
        key = id(tensor)
        if key in memo:
            return memo[key]
        history = getattr(tensor, "_keras_history", None)
        layer = history[0] if history else None
        if layer is None or isinstance(layer, keras.layers.InputLayer) or not layer._inbound_nodes:
            result = (AxisField(1.0, 1.0, 0.5, int(shape[1])), AxisField(1.0, 1.0, 0.5, int(shape[2])))
            memo[key] = result
            return result
        node = layer._inbound_nodes[history[1]]
        parents = [field_of(t) for t in node.input_tensors]
        parent = max(parents, key=lambda f: f[0].size + f[1].size)
        geometry = _geometry(layer)
        if geometry is None:
            result = parent
        else:
            kernel, strides, padding = geometry
            result = tuple(_step(f, k, s, padding) for f, k, s in zip(parent, kernel, strides))
        memo[key] = result
        return result

    rows, cols = field_of(target_output)
    return ReceptiveField(rows=rows, cols=cols)
