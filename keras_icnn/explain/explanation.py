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
  sum of ``I * dS_c/dI``), ``"guided_backprop"`` (Springenberg et al. 2015: every
  ReLU passes back only positive gradients to positive inputs, reduced over channels
  like the saliency map) and ``"deconvnet"`` (Zeiler & Fergus 2014: every ReLU passes
  back the rectified upstream gradient whatever its forward input; max-pooling through
  its switches; reduced the same way).

The exported ``explain`` signature (:mod:`keras_icnn.export`), the report and
:func:`keras_icnn.metrics.part_contributions` are built on :class:`Explainable`,
so a SavedModel and a Python call give the same numbers.

Example:
    >>> e = keras_icnn.explain.explain(model, images)            # any of the four kinds
    >>> e.part_locations[0, e.heatmap_filters[0, 0]]            # (x, y) of the top filter
    >>> plt.imshow(images[0] / 255); plt.imshow(e.gradcam[0], alpha=0.5)
"""

import dataclasses

import numpy as np
import tensorflow as tf

from keras_icnn import validation
from keras_icnn.explain.explainable import (
    HEATMAPS, PIXEL_METHODS, check_methods, explainable_for)
from keras_icnn.models import heads
from keras_icnn.validation import check_images


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
        saliency, gradient_x_input, guided_backprop, deconvnet: [N, H, W] per-pixel maps of the target
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
    deconvnet: np.ndarray = None

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
            ``"saliency"``, ``"gradient_x_input"``, ``"guided_backprop"``, ``"deconvnet"``
            (per-pixel maps at image size; the first two share one backward pass to the
            image, guided backprop and the deconvnet add one each).

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
