"""The local peaks of several conv layers' maps, image by image, streamed (SPEC §10).

A filter's map on an image may have several peaks (local maxima): the explanatory graph assigns
each to one of the filter's nodes. Only the strongest ``count`` peaks of each map are kept, as
image-plane positions (receptive-field centres, SPEC §7) and values, so a fit holds
``N x filters x count`` numbers per layer, never the maps.

Example:
    >>> probe = LayerPeaks(model, ["top_conv", "block3_relu2"], count=6)
    >>> peaks = probe.collect(images)            # [(positions [N, D, 6, 2], values [N, D, 6])]
"""
import keras
import numpy as np
import tensorflow as tf

from keras_icnn import validation
from keras_icnn.models import graph
from keras_icnn.models.backbones import default_layer
from keras_icnn.models.receptive_field import receptive_field
from keras_icnn.trees.rationale import image_batches

_SPATIAL = (keras.layers.Conv2D, keras.layers.ReLU, keras.layers.Activation,
            keras.layers.BatchNormalization)


def local_peaks(maps, field, count):
    """The ``count`` strongest local maxima (3x3 neighbourhood, value > 0) of each map.

    Args:
        maps: [B, h, w, D] feature maps.
        field: the layer's :class:`~keras_icnn.models.receptive_field.ReceptiveField`.
        count: peaks kept per map (fewer real peaks leave value-0 entries).

    Returns:
        ``(positions [B, D, count, 2] image-plane (x, y), values [B, D, count])``, strongest
        first; an entry of value 0 is no peak.
    """
    maps = tf.cast(maps, tf.float32)
    pooled = tf.nn.max_pool2d(maps, 3, 1, "SAME")
    values = tf.where((maps >= pooled) & (maps > 0), maps, tf.zeros_like(maps))
    shape = tf.shape(maps)
    w = shape[2]
    flat = tf.transpose(tf.reshape(values, [shape[0], shape[1] * w, shape[3]]), [0, 2, 1])
    top, index = tf.math.top_k(flat, k=count)
    x, y = field.centers(index // w, index % w)
    return tf.stack([x, y], axis=-1), top


def default_graph_layers(model, count=3):
    """The layers a graph of ``model`` is built on by default: its top conv layer
    (:func:`~keras_icnn.models.backbones.default_layer`), then for each finer map size below it
    the last conv or activation layer of that size, ``count`` layers in all, top first."""
    validation.positive_int(count, "count")
    flat = graph.flatten(model, "default_graph_layers")
    top = default_layer(flat)
    names = [layer.name for layer in flat.layers]
    chosen, sizes = [top], [tuple(graph.layer_output(flat, top).shape[1:3])]
    for layer in reversed(flat.layers[:names.index(top)]):
        if len(chosen) == count:
            break
        if not isinstance(layer, _SPATIAL):
            continue
        size = tuple(graph.layer_output(flat, layer.name).shape[1:3])
        if size[0] > sizes[-1][0] and size not in sizes:
            chosen.append(layer.name)
            sizes.append(size)
    return chosen


class LayerPeaks:
    """A model read at several layers, each map reduced to its strongest local peaks.

    Attributes:
        layers: the layers' names in the flat graph, top first; ``fields``: their receptive
            fields; ``filters``: filters per layer; ``map_sizes``: (h, w) per layer;
        image_size: (H, W) of the model's input; ``count``: peaks kept per map.
    """

    def __init__(self, model, layers, count, caller="LayerPeaks"):
        self.count = validation.positive_int(count, "peaks_per_filter")
        flat = graph.flatten(model, caller)
        if not layers:
            raise ValueError(f"{caller}: `layers` must name at least one conv layer. "
                             f"Received: layers={layers!r}")
        self.layers = [graph.flat_layer_name(model, name, caller) for name in layers]
        if len(set(self.layers)) != len(self.layers):
            raise ValueError(f"{caller}: `layers` names a layer twice. Received: {layers!r}")
        outputs = [graph.layer_output(flat, name) for name in self.layers]
        for name, out in zip(layers, outputs):
            if len(out.shape) != 4:
                raise ValueError(f"{caller}: layer {name!r} must give 4D maps [B, h, w, D]. "
                                 f"Received: output shape {tuple(out.shape)}")
        self.fields = [receptive_field(flat, name) for name in self.layers]
        self.filters = [int(out.shape[-1]) for out in outputs]
        self.map_sizes = [tuple(int(s) for s in out.shape[1:3]) for out in outputs]
        for name, (h, w) in zip(layers, self.map_sizes):
            if h * w < self.count:
                raise ValueError(f"{caller}: layer {name!r} has {h * w} units per map, fewer "
                                 f"than peaks_per_filter={self.count}")
        self.image_size = tuple(int(s) for s in flat.inputs[0].shape[1:3])
        self.channels = int(flat.inputs[0].shape[-1])
        self._probe = keras.Model(flat.inputs[0], outputs)
        fields, count = self.fields, self.count

        @tf.function(autograph=False, reduce_retracing=True)
        def step(x):
            maps = self._probe(x, training=False)
            maps = maps if isinstance(maps, (list, tuple)) else [maps]
            return [local_peaks(m, f, count) for m, f in zip(maps, fields)]

        self._step = step

    def batches(self, images, batch_size=64, verbose=0):
        """Yield ``[(positions, values)]`` per layer (numpy) for each batch of ``images``
        (an array [N, H, W, C] or a dataset of images, ``(images, labels)`` or dicts)."""
        batch_size = validation.positive_int(batch_size, "batch_size")
        bar = keras.utils.Progbar(len(images) if isinstance(images, np.ndarray) else None,
                                  unit_name="image", verbose=verbose)
        seen = 0
        for x, _ in image_batches(images, None, batch_size):
            if x.shape[1:] != self.image_size + (self.channels,):
                raise ValueError(f"images must be [N, {self.image_size[0]}, "
                                 f"{self.image_size[1]}, {self.channels}] (the model's input). "
                                 f"Received: a batch of shape {x.shape}")
            out = self._step(tf.constant(x))
            seen += len(x)
            bar.update(seen)
            yield [(p.numpy(), v.numpy()) for p, v in out]

    def collect(self, images, batch_size=64, verbose=0):
        """``[(positions [N, D, count, 2], values [N, D, count])]`` per layer, top first."""
        parts = [([], []) for _ in self.layers]
        for batch in self.batches(images, batch_size, verbose):
            for (pos, val), (p, v) in zip(parts, batch):
                pos.append(p)
                val.append(v)
        if not parts[0][0]:
            raise ValueError("`images` holds no image")
        return [(np.concatenate(p), np.concatenate(v)) for p, v in parts]
