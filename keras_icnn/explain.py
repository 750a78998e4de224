"""One explanation of a prediction for any model: which filters, which parts, how much.

:func:`explain` works the same way for an interpretable CNN
(:class:`~keras_icnn.models.InterpretableModel`), a CSG model
(:class:`~keras_icnn.models.CSGModel`), an explainer with its performer
(:class:`~keras_icnn.models.ExplainerDistiller`) and any plain Keras CNN, and
returns an :class:`Explanation` of plain arrays:

* the predicted class and the explained ``target`` (default: the prediction);
* per filter of the explained layer: the part location (image pixels, the
  centre of its peak unit's receptive field), the part score (the peak
  value), the filter's category (-1: none);
* each filter's contribution to the target logit, gradient x activation
  ``sum_ij (d y_target / d A_ijf) A_ijf``, and that contribution as a share of
  the logit;
* for CSG models the gate relevance ``G[target]``;
* heatmaps at image resolution of the filters that contribute most
  (``heatmaps="top"``), of all filters (``"all"``) or none, and Grad-CAM
  (Selvaraju et al., 2017) of the target at the same layer: the usual baseline;
* on request (``methods=``), per-pixel maps of the target logit's gradient with
  respect to the image: ``"saliency"`` (Simonyan et al. 2014; the survey's eqs. 6-7:
  ``max`` over colour channels of ``|dS_c/dI|``), ``"gradient_x_input"`` (the channel
  sum of ``I * dS_c/dI``) and ``"guided_backprop"`` (Springenberg et al. 2015: every
  ReLU passes back only positive gradients to positive inputs, reduced over channels
  like the saliency map).

The exported ``explain`` signature (:mod:`keras_icnn.export`), the report and
:func:`keras_icnn.metrics.part_contributions` are built on :class:`Explainable`,
so a SavedModel and a Python call give the same numbers.

Example:
    >>> e = keras_icnn.explain.explain(model, images)            # any of the four kinds
    >>> e.part_locations[0, e.heatmap_filters[0, 0]]            # (x, y) of the top filter
    >>> plt.imshow(images[0] / 255); plt.imshow(e.gradcam[0], alpha=0.5)
"""

import dataclasses

import keras
import numpy as np
import tensorflow as tf

from keras_icnn import validation
from keras_icnn.validation import check_images  # noqa: F401  (its old home; re-exported)
from keras_icnn.models import graph, heads
from keras_icnn.relu_gradients import guided_relu_gradients
from keras_icnn.models.csg import CSGModel
from keras_icnn.models.distiller import ExplainerDistiller
from keras_icnn.models.interpretable import InterpretableModel
from keras_icnn.receptive_field import peak_locations, receptive_field

KINDS = ("ordinary", "interpretable", "csg", "explainer")
HEATMAPS = ("top", "all", None)
# Grad-CAM is always computed (it comes with the filter contributions); the others on request.
METHODS = ("gradcam", "saliency", "gradient_x_input", "guided_backprop")
PIXEL_METHODS = METHODS[1:]
_SPATIAL = (keras.layers.Conv2D, keras.layers.ReLU, keras.layers.Activation)


def model_kind(model):
    """``ordinary``, ``interpretable``, ``csg`` or ``explainer`` (a distiller)."""
    if isinstance(model, ExplainerDistiller):
        return "explainer"
    if isinstance(model, CSGModel):
        return "csg"
    if isinstance(model, InterpretableModel) or model.__class__.__name__ == "InterpretableModel":
        return "interpretable"
    return "ordinary"


def default_layer(model):
    """Name of the last layer with a 4D output that a filter explanation applies to (in
    the flat graph of a model with nested sub-models: :func:`keras_icnn.models.graph.flatten`)."""
    flat = graph.flatten(model, "default_layer")
    for layer in reversed(flat.layers):
        out = graph.layer_output(flat, layer.name) if not isinstance(
            layer, keras.layers.InputLayer) else None
        if len(getattr(out, "shape", ())) != 4:
            continue
        if isinstance(layer, _SPATIAL) or hasattr(layer, "part_mask"):
            return layer.name
    raise ValueError(f"Model {model.name!r} has no conv layer with a 4D output")


def gradient_x_activation(maps, grads):
    """``sum_ij grads_ijf * maps_ijf``: each filter's first-order contribution [B, F] float32."""
    return tf.reduce_sum(tf.cast(grads, tf.float32) * tf.cast(maps, tf.float32), axis=[1, 2])


def grad_cam(maps, grads):
    """Grad-CAM at the layer's resolution: ``ReLU(sum_f mean_ij(grads_f) maps_f)`` [B, h, w]."""
    for name, value in (("maps", maps), ("grads", grads)):
        if tf.convert_to_tensor(value).shape.rank != 4:
            raise ValueError(f"`{name}` must be [batch, h, w, filters] (rank 4). Received: "
                             f"{name} of shape {tf.convert_to_tensor(value).shape}")
    weights = tf.reduce_mean(tf.cast(grads, tf.float32), axis=[1, 2])
    return tf.nn.relu(tf.einsum("bhwf,bf->bhw", tf.cast(maps, tf.float32), weights))


def pixel_maps(images, gradients, guided=None):
    """The per-pixel maps [B, H, W] of :data:`PIXEL_METHODS` from the image gradients
    ``[B, H, W, C]`` (and the guided ones): saliency ``max_c |g|``, gradient x input
    ``sum_c x g``, guided backprop ``max_c |g_guided|``."""
    x = tf.cast(images, tf.float32)
    g = tf.cast(gradients, tf.float32)
    out = {"saliency": tf.reduce_max(tf.abs(g), axis=-1),
           "gradient_x_input": tf.reduce_sum(x * g, axis=-1)}
    if guided is not None:
        out["guided_backprop"] = tf.reduce_max(tf.abs(tf.cast(guided, tf.float32)), axis=-1)
    return out


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
            feats, _, logits = d.performer_outputs(x)
            logits = tf.cast(logits, tf.float32)
            classes = tf.argmax(logits, axis=-1, output_type=tf.int32)
            target = tf.where(target < 0, classes, target)
            parts = d.explainer.encode(feats, training=False)
            maps = parts["interp"]
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

    def input_gradients(self, x, target, guided=False):
        """``(d logit_target / d x, d guided / d x or None)`` [B, H, W, C] of the classifier the
        images go to (the performer for an explainer); ``target`` already resolved."""
        with tf.GradientTape(persistent=guided) as tape:
            tape.watch(x)
            logits = tf.cast(self.classifier(x, training=False), tf.float32)
            chosen = tf.gather(logits, target, axis=1, batch_dims=1)
        plain = tape.gradient(chosen, x)
        if not guided:
            return plain, None
        with guided_relu_gradients():
            return plain, tape.gradient(chosen, x)

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
            plain, guided = self.input_gradients(x, target, "guided_backprop" in methods)
            out.update({k: v for k, v in pixel_maps(x, plain, guided).items() if k in methods})
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


@dataclasses.dataclass
class Explanation:
    """What :func:`explain` returns (numpy arrays; N images, F filters, C classes).

    Attributes:
        kind: ``ordinary``, ``interpretable``, ``csg`` or ``explainer``.
        layer: the explained layer.
        classes: [N] predicted class.
        target: [N] the class explained (default: ``classes``).
        logits: [N, C]; ``probabilities`` their softmax.
        target_logit: [N] the logit the contributions add up to (for an explainer:
            the performer's classifier on the explainer's reconstruction).
        part_locations: [N, F, 2] (x, y) image pixels of each filter's peak.
        part_scores: [N, F] each filter's peak value.
        filter_classes: [F] each filter's category, -1 for none.
        contributions: [N, F] gradient x activation of each filter for the target logit.
        contribution_shares: [N, F] ``contributions / target_logit``.
        filter_relevance: [N, F] ``G[target]`` of a CSG model (None otherwise).
        heatmaps: [N, k, H, W] the maps of ``heatmap_filters`` at image resolution (None
            with ``heatmaps=None``).
        heatmap_filters: [N, k] which filters ``heatmaps`` shows, by contribution, largest first.
        gradcam: [N, H, W] Grad-CAM of the target at the explained layer (non-negative),
            resized to image size.
        p: the explainer's mixing weight (None for other kinds).
        gradcam_maps: [N, h, w] the same Grad-CAM at the layer's own resolution.
        heatmap_maps: [N, k, h, w] the maps behind ``heatmaps`` at the layer's resolution.
        saliency, gradient_x_input, guided_backprop: [N, H, W] per-pixel maps of the target
            logit (module docstring), when asked for in ``methods`` (None otherwise).
    """

    kind: str
    layer: str
    classes: np.ndarray
    target: np.ndarray
    logits: np.ndarray
    probabilities: np.ndarray
    target_logit: np.ndarray
    part_locations: np.ndarray
    part_scores: np.ndarray
    filter_classes: np.ndarray
    contributions: np.ndarray
    contribution_shares: np.ndarray
    filter_relevance: np.ndarray = None
    heatmaps: np.ndarray = None
    heatmap_filters: np.ndarray = None
    gradcam: np.ndarray = None
    p: float = None
    gradcam_maps: np.ndarray = None
    heatmap_maps: np.ndarray = None
    saliency: np.ndarray = None
    gradient_x_input: np.ndarray = None
    guided_backprop: np.ndarray = None

    def part_shares(self, filter_parts, num_parts):
        """Share of each target logit carried by each part's filters: [N, P + 1] (last
        column: filters with no part), from ``filter_parts`` [F] (a part index or -1)."""
        filter_parts = np.asarray(filter_parts)
        if filter_parts.shape != (self.contributions.shape[1],):
            raise ValueError(f"`filter_parts` must give a part index (or -1) for each of the "
                             f"{self.contributions.shape[1]} filters. Received: shape="
                             f"{filter_parts.shape}")
        if filter_parts.size and (filter_parts.min() < -1 or filter_parts.max() >= num_parts):
            raise ValueError(f"`filter_parts` must lie in [-1, num_parts={num_parts}). "
                             f"Received: min={filter_parts.min()}, max={filter_parts.max()}")
        parts = np.where(filter_parts < 0, num_parts, filter_parts)
        onehot = (parts[:, None] == np.arange(num_parts + 1)[None, :]).astype(np.float64)
        return self.contribution_shares.astype(np.float64) @ onehot


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


def _targets(target, n, num_classes):
    if target is None:
        return np.full(n, -1, np.int32)
    t = np.asarray(target)
    if t.ndim == 0:
        t = np.broadcast_to(t, (n,))
    if t.shape != (n,):
        raise ValueError(f"`target` must be None, a class index or {n} class indices (one per "
                         f"image). Received: shape {t.shape} for {n} images")
    # Booleans and floats that are not whole numbers are refused, never truncated.
    return validation.labels_np(t, num_classes, count=n, name="target").astype(np.int32)


INTERPOLATIONS = ("bilinear", "bicubic", "nearest")


def _resize(maps, size, method="bilinear"):
    """[N, h, w, k] -> [N, k, H, W] (``method``: bilinear, as the metrics upsample maps)."""
    up = tf.image.resize(tf.convert_to_tensor(maps, tf.float32), size, method=method)
    return np.transpose(up.numpy(), (0, 3, 1, 2))


def _image_batches(images, image_shape, batch_size):
    """``(batches, n)``: an iterable of float32 numpy batches [b, H, W, C] from a single
    image [H, W, C], an array or ``tf.Tensor`` [N, H, W, C], or a batched ``tf.data.Dataset``
    of images, ``(images, labels)`` or feature dicts with ``"image"``; ``n`` is None for a
    dataset (its size is known once it has been read)."""
    if isinstance(images, tf.data.Dataset):
        spec = images.element_spec
        if isinstance(spec, tuple):
            images = images.map(lambda *e: e[0])
            spec = spec[0]
        elif isinstance(spec, dict):
            if "image" not in spec:
                raise ValueError("explain: a dataset of dicts needs an 'image' key. "
                                 f"Received keys: {sorted(spec)}")
            images = images.map(lambda e: e["image"])
            spec = spec["image"]
        if spec.shape.rank == len(image_shape):  # unbatched: batch it here
            images = images.batch(batch_size)
        elif spec.shape.rank != len(image_shape) + 1:
            raise ValueError(f"explain: the dataset's images must be [batch, "
                             f"{', '.join(map(str, image_shape))}]. Received: {spec.shape}")
        return (np.asarray(b, np.float32) for b in images.as_numpy_iterator()), None
    array = np.asarray(images, np.float32)
    if array.ndim == len(image_shape):  # one image
        array = array[None]
    return (array[a:a + batch_size] for a in range(0, len(array), batch_size)), len(array)


def _refuse_hidden_probabilities(ex, logits):
    """A model whose output rows are non-negative and sum to 1, with no softmax in its graph,
    applies one the graph does not show (a Lambda, a custom layer): its "logits" are
    probabilities, and every contribution would be computed on them. Say so."""
    if ex.kind == "explainer" or ex.softmax is not None or logits.shape[-1] < 2:
        return
    sums = logits.astype(np.float64).sum(-1)
    if logits.min() >= 0.0 and np.allclose(sums, 1.0, atol=1e-4):
        raise ValueError(
            f"explain: the outputs of model {ex.model.name!r} look like probabilities (each row "
            "non-negative, summing to 1) but no softmax layer or activation ends its graph: "
            "explanations need the logits. Pass logits_layer=<the layer whose output is the "
            "logits>.")


def explain(model, images, target=None, layer=None, heatmaps="top", num_heatmaps=3,
            batch_size=64, logits_layer=None, interpolation="bilinear", methods=("gradcam",)):
    """Explain ``model``'s predictions on ``images`` filter by filter.

    Args:
        model: an interpretable CNN, a CSG model, an ``ExplainerDistiller``
            (explainer + performer), any Keras CNN classifier, or an
            :class:`Explainable` of one.
        images: one image [H, W, C], images [N, H, W, C] (numpy or ``tf.Tensor``) in
            the model's input range, or a ``tf.data.Dataset`` of image batches,
            ``(images, labels)`` batches or feature dicts with ``"image"``.
        target: class to explain: None (each image's predicted class), one
            index for all images, or N indices.
        layer: the explained conv layer (default: the top conv layer).
        heatmaps: ``"top"`` (the ``num_heatmaps`` filters with the largest
            contributions per image), ``"all"`` (every filter: N x F maps at image
            size, mind the memory) or None.
        num_heatmaps: k of ``"top"``.
        batch_size: images per step.
        logits_layer: the layer whose output is the logits, for a model whose softmax
            cannot be traced from the graph. By default the logits are read from the graph:
            the output itself, or what a final ``Softmax`` / ``Activation("softmax")`` layer
            or a ``Dense(..., activation="softmax")`` applies the softmax to.
        interpolation: how maps reach image size: ``"bilinear"`` (default),
            ``"bicubic"`` or ``"nearest"``.
        methods: names from :data:`METHODS`: ``"gradcam"`` (always computed),
            ``"saliency"``, ``"gradient_x_input"``, ``"guided_backprop"`` (per-pixel maps at
            image size; each adds a backward pass to the image, guided backprop two).

    A model with nested sub-models (a ``keras.applications`` base in a ``Sequential``) is
    read through its flat graph; ``layer`` may be a path (``"vgg16/block5_conv3"``). The
    traced explanation is kept on the model (:func:`explainable_for`): a second call on
    the same model and layer traces nothing, whatever the batch size.

    Returns:
        :class:`Explanation`.

    Example:
        >>> e = explain(model, images[:4])
        >>> e.contribution_shares[0].argsort()[::-1][:3]   # the 3 filters that matter most
        >>> e.gradcam.shape                                # (4, H, W): the Grad-CAM baseline
        >>> e.gradcam_maps.shape                           # (4, h, w): at the layer's size
        >>> explain(model, images[:4], methods=("saliency", "guided_backprop")).saliency.shape
    """
    if heatmaps not in HEATMAPS:
        raise ValueError(f"`heatmaps` must be one of {HEATMAPS}. Received: {heatmaps!r}")
    if interpolation not in INTERPOLATIONS:
        raise ValueError(f"`interpolation` must be one of {INTERPOLATIONS}. "
                         f"Received: {interpolation!r}")
    batch_size = validation.positive_int(batch_size, "batch_size")
    num_heatmaps = validation.positive_int(num_heatmaps, "num_heatmaps")
    methods = check_methods(methods)
    ex = explainable_for(model, layer, logits_layer)
    batches, n = _image_batches(images, ex.image_shape, batch_size)
    targets = _targets(target, n, ex.num_classes) if n is not None else None
    step = ex.traced(methods)
    size = ex.image_shape[:2]
    k = ex.num_filters if heatmaps == "all" else min(int(num_heatmaps), ex.num_filters)
    keys = ("logits", "classes", "target", "target_logit", "part_locations", "part_scores",
            "contributions", "contribution_shares", "filter_relevance") + PIXEL_METHODS
    out = {key: [] for key in keys + ("heatmaps", "heatmap_maps", "heatmap_filters", "gradcam",
                                      "gradcam_maps")}
    seen = 0
    for batch in batches:
        batch = check_images(ex.classifier, batch, "explain")
        if n is not None:
            t = targets[seen:seen + len(batch)]
        elif target is not None and np.ndim(target) == 1:  # per-image targets of a dataset
            if len(target) < seen + len(batch):
                raise ValueError(
                    f"`target` holds {len(target)} class indices but the dataset holds more "
                    f"images (at least {seen + len(batch)}): give one index per image, or one "
                    "index for all of them")
            t = _targets(np.asarray(target)[seen:seen + len(batch)], len(batch), ex.num_classes)
        else:
            t = _targets(target, len(batch), ex.num_classes)
        seen += len(batch)
        r = step(tf.constant(batch), tf.constant(t))
        for key in keys:
            if key in r:
                out[key].append(r[key].numpy())
        cam = r["gradcam"].numpy()
        out["gradcam_maps"].append(cam)
        out["gradcam"].append(_resize(cam[..., None], size, interpolation)[:, 0])
        if heatmaps is not None:
            order = np.argsort(-r["contributions"].numpy(), axis=1, kind="stable")[:, :k]
            chosen = np.take_along_axis(r["maps"].numpy(), order[:, None, None, :], axis=3)
            out["heatmap_maps"].append(np.transpose(chosen, (0, 3, 1, 2)))
            out["heatmaps"].append(_resize(chosen, size, interpolation))
            out["heatmap_filters"].append(order.astype(np.int32))
    if seen == 0:
        raise ValueError("explain: `images` holds no image")
    if n is None and target is not None and np.ndim(target) == 1 and len(target) != seen:
        raise ValueError(f"`target` holds {len(target)} class indices but the dataset held "
                         f"{seen} images: give one index per image, or one index for all")
    arrays = {key: np.concatenate(v) if v else None for key, v in out.items()}
    logits = arrays.pop("logits")
    _refuse_hidden_probabilities(ex, logits)
    return Explanation(
        kind=ex.kind, layer=ex.layer, logits=logits,
        probabilities=heads.probabilities(logits, ex.head).numpy(),
        filter_classes=np.asarray(ex.filter_classes()).astype(np.int32),
        p=float(ex.model.explainer.p) if ex.kind == "explainer" else None, **arrays)
