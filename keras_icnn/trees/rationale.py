"""Per-image rationales of one class's logit at a conv layer (SPEC §9, first bullet), streamed:
``x̄_I`` (each filter's summed response), ``ρ_I`` (gradient x activation per filter) and the
logit ``y_I``, from which ``ḡ_I = ρ_I / x̄_I`` and the bias ``b_I = y_I − Σ_d ρ_I,d``.

Any Keras classifier the package explains works (nested ``keras.applications`` bases, softmax
heads: :mod:`keras_icnn.models.heads`), through the same traced :class:`~keras_icnn.explain.
Explainable` as :func:`keras_icnn.explain.explain`.
"""
import dataclasses

import numpy as np
import tensorflow as tf

from keras_icnn import validation
from keras_icnn.explain import explainable_for


@dataclasses.dataclass
class Rationales:
    """One row per image: ``responses`` x̄ [N, D], ``contributions`` ρ [N, D], ``logits`` y [N]
    (of the explained class), ``labels`` [N] (-1 where none were given)."""

    responses: np.ndarray
    contributions: np.ndarray
    logits: np.ndarray
    labels: np.ndarray

    @property
    def weights(self):
        """ḡ [N, D]: ρ / x̄, 0 where a filter did not respond (x̄ = 0)."""
        x = self.responses
        safe = np.where(x != 0, x, 1.0)
        return np.where(x != 0, self.contributions / safe, 0.0)

    @property
    def biases(self):
        """b [N]: y − Σ_d ρ_d (so that y = ḡ·x̄ + b exactly)."""
        return self.logits - self.contributions.sum(axis=1)

    def select(self, keep):
        return Rationales(self.responses[keep], self.contributions[keep], self.logits[keep],
                          self.labels[keep])


def image_batches(images, labels=None, batch_size=64):
    """(images float32 [b, H, W, C], labels int [b] or None) from arrays or a dataset of images,
    ``(images, labels)`` or dicts with ``"image"`` (and ``"label"``)."""
    if isinstance(images, tf.data.Dataset):
        if labels is not None:
            raise ValueError("`labels` goes with image arrays; a dataset carries its own "
                             "(a dataset of (images, labels) or of dicts with 'label').")
        spec = images.element_spec
        for element in images.as_numpy_iterator():
            if isinstance(spec, tuple):
                x, y = element[0], (element[1] if len(element) > 1 else None)
            elif isinstance(spec, dict):
                if "image" not in element:
                    raise ValueError("a dataset of dicts needs an 'image' key. "
                                     f"Received keys: {sorted(element)}")
                x, y = element["image"], element.get("label")
            else:
                x, y = element, None
            x = np.asarray(x, np.float32)
            if x.ndim == 3:
                x, y = x[None], (None if y is None else np.asarray(y)[None])
            yield x, (None if y is None else validation.labels_np(y, name="labels"))
        return
    x = np.asarray(images, np.float32)
    if x.ndim == 3:
        x = x[None]
    y = None if labels is None else validation.labels_np(labels, name="labels")
    if y is not None and len(y) != len(x):
        raise ValueError(f"`labels` must have one entry per image: {len(x)} images. "
                         f"Received: {len(y)} labels")
    for a in range(0, len(x), batch_size):
        yield x[a:a + batch_size], (None if y is None else y[a:a + batch_size])


def rationales(model, images, class_index, layer=None, labels=None, batch_size=64,
               logits_layer=None):
    """The :class:`Rationales` of ``class_index``'s logit at ``layer`` (default: the model's
    top conv layer) for every image of ``images`` (an array [N, H, W, C] with optional
    ``labels``, or a batched ``tf.data.Dataset`` of images, ``(images, labels)`` or feature
    dicts), one traced pass per batch.

    Example:
        >>> r = rationales(model, test_images, class_index=0)
        >>> r.weights.shape          # (N, filters): ḡ, the local linear weights of the logit
    """
    batch_size = validation.positive_int(batch_size, "batch_size")
    ex = explainable_for(model, layer, logits_layer)
    class_index = int(validation.labels_np([class_index], name="class_index")[0])
    if not 0 <= class_index < ex.num_classes:
        raise ValueError(f"`class_index` must lie in [0, {ex.num_classes}). "
                         f"Received: class_index={class_index}")
    step = ex.traced(())
    parts = {"responses": [], "contributions": [], "logits": [], "labels": []}
    for x, y in image_batches(images, labels, batch_size):
        out = step(tf.constant(x), tf.fill([len(x)], class_index))
        parts["responses"].append(tf.reduce_sum(out["maps"], axis=[1, 2]).numpy())
        parts["contributions"].append(out["contributions"].numpy())
        parts["logits"].append(out["target_logit"].numpy())
        parts["labels"].append(np.full(len(x), -1) if y is None else y)
    if not parts["logits"]:
        raise ValueError("`images` holds no image")
    return Rationales(*(np.concatenate(parts[k]).astype(np.float64 if k != "labels" else np.int64)
                        for k in ("responses", "contributions", "logits", "labels")))
