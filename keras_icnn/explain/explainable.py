"""A model with its explained layer, ready to explain batches inside TensorFlow
(:class:`Explainable`; traced once per model, layer and methods, cached on the model by
:func:`explainable_for`): the maps, the class scores (the head rule of
:mod:`keras_icnn.models.heads`), gradient x activation per filter, part locations, Grad-CAM and
the per-pixel maps. :func:`keras_icnn.explain.explain` and the exported ``explain`` signature
are built on it.
"""
import keras
import tensorflow as tf

from keras_icnn.models import graph, heads
from keras_icnn.models.backbones import default_layer  # noqa: F401  (re-exported by explain)
from keras_icnn.models.csg import CSGModel
from keras_icnn.models.distiller import ExplainerDistiller
from keras_icnn.models.interpretable import InterpretableModel
from keras_icnn.ops.attribution import grad_cam, gradient_x_activation, pixel_maps
from keras_icnn.models.receptive_field import peak_locations, receptive_field
from keras_icnn.ops.relu_gradients import deconvnet_relu_gradients, guided_relu_gradients

KINDS = ("ordinary", "interpretable", "csg", "explainer")
HEATMAPS = ("top", "all", None)
# Grad-CAM is always computed (it comes with the filter contributions); the others on request.
METHODS = ("gradcam", "saliency", "gradient_x_input", "guided_backprop", "deconvnet")
# The pixel methods that re-run the backward pass with another ReLU rule (ops/relu_gradients).
_SWAPPED_RULES = {"guided_backprop": guided_relu_gradients,
                  "deconvnet": deconvnet_relu_gradients}
PIXEL_METHODS = METHODS[1:]


def model_kind(model):
    """``ordinary``, ``interpretable``, ``csg`` or ``explainer`` (a distiller)."""
    if isinstance(model, ExplainerDistiller):
        return "explainer"
    if isinstance(model, CSGModel):
        return "csg"
    if isinstance(model, InterpretableModel) or model.__class__.__name__ == "InterpretableModel":
        return "interpretable"
    return "ordinary"


def _safe(values):
    return tf.where(tf.abs(values) > 1e-12, values, tf.ones_like(values))


class Explainable:
    """A model with its explained layer, ready to explain batches in TF (traceable).

    Args:
        model: an ``InterpretableModel``, ``CSGModel``, ``ExplainerDistiller`` or
            any Keras classifier with a 4D conv layer (Sequential, functional, with
            nested sub-models; logits or a softmax head).
        layer: the explained layer's name or path (default: the model's top conv layer;
            an explainer always explains its conv-interp-2 filters).
        argument: the caller's name for ``layer`` in error messages.
        logits_layer: see :func:`explain`.

    Call ``explainable(x, target)`` with float32 images and int32 targets
    (``-1``: the predicted class) inside or outside a ``tf.function``; it returns
    a dict of tensors (see :func:`explain` for their meaning).
    """

    def __init__(self, model, layer=None, argument="layer", logits_layer=None):
        self.model, self.kind = model, model_kind(model)
        self.softmax, self.head = None, "logits"
        if self.kind == "explainer":
            self.classifier = model.performer
            self.layer = "conv_interp_2"
            self.rf = receptive_field(model.performer, model.target_layer)
            self.num_filters = int(model.explainer.filters)
        else:
            try:
                view = heads.Classifier(model, layer, logits_layer, default_layer=default_layer,
                                        caller="explain")
            except ValueError as err:
                if layer and "no layer named" in str(err):
                    raise ValueError(f"`{argument}` must name a layer of model {model.name!r}. "
                                     f"Received: {argument}={layer!r}. {err}") from None
                raise
            self.flat, self.layer, self.softmax = view.flat, view.layer, view.softmax
            self.head = view.head  # how its class scores become probabilities
            found = self.flat.get_layer(self.layer)
            maps = graph.layer_output(self.flat, self.layer)
            if len(getattr(maps, "shape", ())) != 4:
                raise ValueError(
                    f"`{argument}` must name a layer with 4D feature maps [batch, h, w, filters] "
                    f"(a conv layer). Received: {argument}={layer or self.layer!r} "
                    f"({found.__class__.__name__}, output shape {maps.shape})")
            self.rf = receptive_field(self.flat, self.layer)
            self.probe = view.probe
            # The classifier the images go to: its output is the logits.
            self.classifier = view.logits
            self.num_filters = int(maps.shape[-1])
        shape = self.classifier.inputs[0].shape
        self.image_shape = tuple(int(d) for d in shape[1:])
        self.num_classes = int(self.classifier.outputs[0].shape[-1])
        self._traced = None

    def filter_classes(self):
        """int32 [F]: each filter's category (-1 for filters of an ordinary layer)."""
        if self.kind == "explainer":
            return self.model.explainer.conv_interp_2.target_classes
        layer = self.flat.get_layer(self.layer)
        if hasattr(layer, "target_classes"):
            return layer.target_classes
        gate_filters = (int(self.model.gate_layer.gate.shape[-1]) if self.kind == "csg"
                        else None)
        if gate_filters == self.num_filters:  # the layer the gates act on
            return tf.argmax(tf.convert_to_tensor(self.model.gate_layer.gate), axis=0,
                             output_type=tf.int32)
        return tf.fill([self.num_filters], -1)

    def _maps_and_logits(self, x, target):
        """(maps, grads of the target logit, logits, classes, target, target logit)."""
        if self.kind == "explainer":
            d = self.model
            maps, parts, logits = d.interpretable_maps(x)
            logits = tf.cast(logits, tf.float32)
            classes = tf.argmax(logits, axis=-1, output_type=tf.int32)
            target = tf.where(target < 0, classes, target)
            with tf.GradientTape() as tape:
                tape.watch(maps)
                enc = parts["p"] * maps + (1.0 - parts["p"]) * parts["ordin"]
                # The performer's own frozen classifier on the reconstruction.
                reconstructed = tf.cast(d.decode_logits(enc), tf.float32)
                chosen = tf.gather(reconstructed, target, axis=1, batch_dims=1)
            # d chosen / d interp carries the factor p of x_enc = p x_interp + ...: times the
            # interpretable maps it is the interpretable track's contribution.
            return maps, tape.gradient(chosen, maps), logits, classes, target, chosen
        with tf.GradientTape() as tape:
            # Watching the input records every op above it, so the gradient reaches the
            # maps even for a model whose weights are all frozen.
            tape.watch(x)
            maps, logits = self.probe(x, training=False)
            logits = tf.cast(logits, tf.float32)
            classes = tf.argmax(logits, axis=-1, output_type=tf.int32)
            target = tf.where(target < 0, classes, target)
            chosen = tf.gather(logits, target, axis=1, batch_dims=1)
        return maps, tape.gradient(chosen, maps), logits, classes, target, chosen

    def input_gradients(self, x, target, rules=()):
        """``(d logit_target / d x, {rule: the same gradient with that ReLU rule})``, each
        [B, H, W, C], of the classifier the images go to (the performer for an explainer);
        ``target`` already resolved; ``rules``: names of ``_SWAPPED_RULES`` (guided backprop,
        deconvnet), each one more backward pass over the same tape."""
        with tf.GradientTape(persistent=bool(rules)) as tape:
            tape.watch(x)
            logits = tf.cast(self.classifier(x, training=False), tf.float32)
            chosen = tf.gather(logits, target, axis=1, batch_dims=1)
        plain = tape.gradient(chosen, x)
        swapped = {}
        for rule in rules:  # at most two rules, not a loop over data
            with _SWAPPED_RULES[rule]():
                swapped[rule] = tape.gradient(chosen, x)
        return plain, swapped

    def __call__(self, x, target=None, methods=()):
        x = tf.cast(x, tf.float32)
        if target is None:
            target = tf.fill(tf.shape(x)[:1], -1)
        target = tf.cast(target, tf.int32)
        methods = check_methods(methods)
        maps, grads, logits, classes, target, chosen = self._maps_and_logits(x, target)
        contributions = gradient_x_activation(maps, grads)
        locations, scores = peak_locations(maps, self.rf)
        out = {"logits": logits, "classes": classes, "target": target, "target_logit": chosen,
               "part_locations": locations, "part_scores": scores,
               "contributions": contributions,
               "contribution_shares": contributions / _safe(chosen)[:, None],
               "maps": tf.cast(maps, tf.float32), "gradcam": grad_cam(maps, grads)}
        if self.kind == "csg" and int(self.model.gate_layer.gate.shape[-1]) == self.num_filters:
            gate = tf.convert_to_tensor(self.model.gate_layer.gate)
            out["filter_relevance"] = tf.gather(gate, target)
        if any(m in PIXEL_METHODS for m in methods):
            plain, swapped = self.input_gradients(
                x, target, tuple(m for m in _SWAPPED_RULES if m in methods))
            out.update({k: v for k, v in pixel_maps(x, plain, swapped).items() if k in methods})
        return out

    def traced(self, methods=()):
        """This explainable as a ``tf.function`` with a batch-size-free input signature:
        traced once per model, layer and set of ``methods``, whatever the batch sizes
        (``self.traces`` counts)."""
        methods = check_methods(methods)
        if self._traced is None:
            self._traced = {}
        if methods not in self._traced:
            spec = [tf.TensorSpec((None,) + self.image_shape, tf.float32, name="images"),
                    tf.TensorSpec((None,), tf.int32, name="target")]

            def run(x, target):
                self.traces += 1  # Python: runs only while tracing
                return self(x, target, methods)

            self._traced[methods] = tf.function(run, input_signature=spec, autograph=False)
        return self._traced[methods]

    traces = 0


_CACHE_ATTRIBUTE = "_keras_icnn_explainables"


def explainable_for(model, layer=None, logits_layer=None):
    """The :class:`Explainable` of ``model`` for ``layer``, made once and kept on the model
    (so a second :func:`explain` call on the same model traces nothing, and the cache dies
    with the model: it is not a global that keeps models alive).

    ``model`` may be an :class:`Explainable`: it is used as it is, unless ``layer`` /
    ``logits_layer`` ask for another layer of its model.
    """
    if isinstance(model, Explainable):
        if layer is None and logits_layer is None:
            return model
        base = model.model
        if model.kind == "explainer":
            raise ValueError("`layer` cannot be chosen for an explainer: it explains its "
                             f"conv-interp-2 filters. Received: layer={layer!r}")
        resolved = graph.flat_layer_name(base, layer, "explain") if layer else model.layer
        if resolved == model.layer and logits_layer is None:
            return model
        model = base
    cache = getattr(model, _CACHE_ATTRIBUTE, None)
    if cache is None:
        cache = {}
        # Past Keras' attribute tracking: a plain dict on the model object.
        object.__setattr__(model, _CACHE_ATTRIBUTE, cache)
    key = (layer, logits_layer)
    if key not in cache:
        cache[key] = Explainable(model, layer, logits_layer=logits_layer)
    return cache[key]


def check_methods(methods):
    """The pixel methods of ``methods`` as a sorted tuple (Grad-CAM is always computed, so it
    does not count); a clear error for a name not in :data:`METHODS`."""
    if isinstance(methods, str):
        methods = (methods,)
    methods = tuple(methods or ())
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        raise ValueError(f"`methods` must be names from {METHODS}. Received: {unknown}")
    return tuple(sorted(set(methods) - {"gradcam"}))
