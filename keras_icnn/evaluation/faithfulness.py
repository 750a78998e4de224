"""Is an explanation faithful to the model? Deletion, insertion and MuFidelity (SPEC §8).

An attribution map ``A`` [H, W] per image (a heatmap upsampled to the image, or a per-pixel
map) ranks the pixels, descending, ties broken by index. Each metric changes the image where
the map points and watches the model:

* :func:`deletion` (Petsiuk et al., *RISE*, 2018): in ``steps`` equal steps, replace the
  next ``H·W/steps`` ranked pixels (all channels) by the baseline (default black: 0 in the
  model's input space) and record the probability of the explained class after each step;
  the score is the area under that curve (trapezoid over s/steps in [0, 1]). Lower is better.
* :func:`insertion` (same paper): start from the baseline (default a Gaussian blur, sigma 5
  px) and put the ranked pixels of the image back in the same steps. Higher is better.
* :func:`mu_fidelity` (Bhatt et al., IJCAI 2020): on a ``grid x grid`` partition, ``subsets``
  random sets of exactly ``round(fraction * grid²)`` cells (the same sets for every image and
  every map, drawn from ``seed``); per set, the attribution mass inside it and the drop of the
  explained *logit* when the set is set to the baseline (default black); the score of an
  image is the Pearson correlation of the two over the sets (0 when either is constant).
  Higher is better.

Each runs as one ``tf.function`` over a chunk of images and all of its steps / subsets at
once; the model is a Keras classifier (logits are read through a softmax head, as
everywhere in the package) or any callable ``images -> logits``. Scores are per image
(float64 numpy [N]); report their mean.

Example:
    >>> e = keras_icnn.explain.explain(model, images, methods=("gradcam", "saliency"))
    >>> metrics.deletion(model, images, e.gradcam).mean()      # lower: more faithful
    >>> metrics.insertion(model, images, e.saliency).mean()    # higher: more faithful
    >>> metrics.mu_fidelity(model, images, e.gradcam).mean()
"""
import keras
import numpy as np
import tensorflow as tf

from keras_icnn import validation
from keras_icnn.ops.imaging import gaussian_blur
from keras_icnn.models import heads

BASELINES = ("black", "blur")


def _logit_fn(model, caller):
    """``(images -> float32 class scores, head kind)`` for a Keras classifier (its head read
    by :mod:`keras_icnn.models.heads`) or a callable returning logits (a softmax head)."""
    if isinstance(model, keras.Model):
        kind = heads.head_of(model, caller)
        logits = heads.as_logits(model, caller)
        return (lambda x: tf.cast(logits(x, training=False), tf.float32)), kind
    if callable(model):
        return (lambda x: tf.cast(model(x), tf.float32)), "logits"
    raise TypeError(f"{caller}: `model` must be a Keras classifier or a callable images -> "
                    f"logits. Received: {type(model).__name__}")


def _check(model, images, attributions, targets, caller):
    """(logit fn, head kind, images float32 [N, H, W, C], attributions float32 [N, H, W],
    targets int32 [N] with -1 for the prediction)."""
    fn, kind = _logit_fn(model, caller)
    images = validation.finite_array(validation.array_of_rank(
        images, "images", 4, "[N, H, W, C]"), "images", np.float32)
    attr = np.asarray(attributions)
    if attr.ndim == 4 and attr.shape[-1] == 1:
        attr = attr[..., 0]
    if attr.shape != images.shape[:3]:
        raise ValueError(f"{caller}: `attributions` must be [N, H, W] = {images.shape[:3]} (one "
                         f"map per image at image size; upsample heatmaps first). Received: "
                         f"shape {attr.shape}")
    attr = validation.finite_array(attr, "attributions", np.float32)
    if len(images) < 1:
        raise ValueError(f"{caller}: `images` holds no image")
    if targets is None:
        return fn, kind, images, attr, np.full(len(images), -1, np.int32)
    num_classes = int(fn(tf.constant(images[:1])).shape[-1])
    targets = validation.labels_np(np.broadcast_to(targets, (len(images),)) if np.ndim(
        targets) == 0 else targets, num_classes, count=len(images), name="targets")
    return fn, kind, images, attr, targets.astype(np.int32)


def _baseline(images, baseline, sigma):
    """The baseline images [N, H, W, C] float32 for ``baseline``: "black" (zeros), "blur"
    (:func:`gaussian_blur`), a number, or an array broadcastable to the images."""
    if isinstance(baseline, str):
        validation.one_of(baseline, "baseline", BASELINES)
        if baseline == "black":
            return np.zeros_like(images)
        return gaussian_blur(images, sigma).numpy()
    base = validation.finite_array(baseline, "baseline", np.float32)
    try:
        return np.broadcast_to(base, images.shape).astype(np.float32)
    except ValueError:
        raise ValueError(f"`baseline` must be 'black', 'blur', a number or an array "
                         f"broadcastable to the images {images.shape}. Received: shape "
                         f"{base.shape}") from None


def _resolve_targets(logits, targets):
    predicted = tf.argmax(logits, axis=-1, output_type=tf.int32)
    return tf.where(targets < 0, predicted, targets)


def pixel_ranks(attributions):
    """Rank of each pixel [B, H*W] int32 (0: the largest attribution; ties by index)."""
    a = tf.convert_to_tensor(attributions, tf.float32)
    flat = tf.reshape(a, [tf.shape(a)[0], -1])
    # Descending by value, equal values in index order: sort the negated values, stably.
    order = tf.argsort(-flat, axis=-1, stable=True)
    return tf.argsort(order, axis=-1, stable=True)


def _curve_fn(fn, steps, insert, kind="logits"):
    """tf.function (x, attr, target, baseline) -> (probability curves [B, steps + 1],
    targets [B])."""

    def curves(x, attr, target, base):
        b = tf.shape(x)[0]
        hw = tf.shape(x)[1] * tf.shape(x)[2]
        ranks = pixel_ranks(attr)  # [B, HW]
        counts = (tf.range(steps + 1) * hw) // steps  # pixels changed after step s
        changed = ranks[:, None, :] < counts[None, :, None]  # [B, S+1, HW]
        changed = tf.reshape(changed, tf.concat([[b, steps + 1], tf.shape(x)[1:3], [1]], 0))
        start, end = (base, x) if insert else (x, base)
        mixed = tf.where(changed, end[:, None], start[:, None])  # [B, S+1, H, W, C]
        logits = fn(tf.reshape(mixed, tf.concat([[-1], tf.shape(x)[1:]], 0)))
        logits = tf.reshape(logits, [b, steps + 1, -1])
        original = logits[:, -1] if insert else logits[:, 0]
        target = _resolve_targets(original, target)
        probs = heads.probabilities(logits, kind)
        return tf.gather(probs, target, axis=2, batch_dims=1), target

    return tf.function(curves, reduce_retracing=True)


def trapezoid_auc(curves):
    """Area under curves [..., S + 1] sampled at s/S, s = 0..S (trapezoid rule)."""
    c = np.asarray(curves, np.float64)
    return (c[..., 1:] + c[..., :-1]).sum(-1) / (2.0 * (c.shape[-1] - 1))


def _chunks(n, per_chunk):
    return [(a, min(n, a + per_chunk)) for a in range(0, n, per_chunk)]


def _curves(model, images, attributions, targets, steps, baseline, sigma, batch_size, insert,
            caller):
    fn, kind, images, attr, targets = _check(model, images, attributions, targets, caller)
    steps = validation.positive_int(steps, "steps")
    batch_size = validation.positive_int(batch_size, "batch_size")
    hw = images.shape[1] * images.shape[2]
    if steps > hw:
        raise ValueError(f"{caller}: `steps` must be at most the {hw} pixels of an image. "
                         f"Received: steps={steps}")
    base = _baseline(images, baseline, sigma)
    run = _curve_fn(fn, steps, insert, kind)
    per_chunk = max(1, batch_size // (steps + 1))
    curves, used = [], []
    for a, b in _chunks(len(images), per_chunk):
        c, t = run(tf.constant(images[a:b]), tf.constant(attr[a:b]), tf.constant(targets[a:b]),
                   tf.constant(base[a:b]))
        curves.append(c.numpy())
        used.append(t.numpy())
    return np.concatenate(curves).astype(np.float64), np.concatenate(used)


def deletion(model, images, attributions, targets=None, steps=32, baseline="black", sigma=5.0,
             batch_size=256, return_curves=False):
    """Deletion score per image (SPEC §8; lower is more faithful).

    Args:
        model: a Keras classifier (logits or a softmax head) or a callable images -> logits.
        images: [N, H, W, C] in the model's input range.
        attributions: [N, H, W] (or [N, H, W, 1]) one map per image at image size.
        targets: the explained class: None (each image's prediction), one index or N.
        steps: S, the number of equal deletion steps.
        baseline: what deleted pixels become: "black" (0; default), "blur" (Gaussian,
            ``sigma`` px), a number or an array broadcastable to the images.
        batch_size: model inputs per forward pass (images x (steps + 1)).
        return_curves: also return the probability curves [N, steps + 1] and the targets.

    Returns:
        float64 [N] areas under the curves (with ``return_curves``: ``(scores, curves,
        targets)``).

    Example:
        >>> metrics.deletion(model, images, explanation.gradcam).mean()
    """
    return _area(model, images, attributions, targets, steps, baseline, sigma, batch_size,
                 False, "deletion", return_curves)


def insertion(model, images, attributions, targets=None, steps=32, baseline="blur", sigma=5.0,
              batch_size=256, return_curves=False):
    """Insertion score per image (SPEC §8; higher is more faithful): start from the baseline
    (default "blur", a Gaussian blur with ``sigma`` px) and insert the ranked pixels of the
    image in ``steps`` equal steps. Arguments and returns as :func:`deletion`.

    Example:
        >>> metrics.insertion(model, images, explanation.saliency).mean()
    """
    return _area(model, images, attributions, targets, steps, baseline, sigma, batch_size,
                 True, "insertion", return_curves)


def _area(model, images, attributions, targets, steps, baseline, sigma, batch_size, insert,
          caller, return_curves):
    """Deletion's / insertion's areas (and, with ``return_curves``, curves and targets)."""
    curves, used = _curves(model, images, attributions, targets, steps, baseline, sigma,
                           batch_size, insert, caller)
    scores = trapezoid_auc(curves)
    return (scores, curves, used) if return_curves else scores


def cell_index(height, width, grid):
    """int32 [H, W]: the cell ``row * grid + col`` of a ``grid x grid`` partition each pixel
    lies in (cell boundaries at ``floor(i * H / grid)``)."""
    rows = (np.arange(height) * grid) // height
    cols = (np.arange(width) * grid) // width
    return (rows[:, None] * grid + cols[None, :]).astype(np.int32)


def subset_masks(grid, fraction, subsets, seed):
    """bool [M, grid²]: ``subsets`` sets of exactly ``round(fraction * grid²)`` cells, each
    drawn uniformly without replacement (stateless, from ``seed``)."""
    cells = grid * grid
    size = int(round(fraction * cells))
    if not 1 <= size < cells:
        raise ValueError(f"`fraction` * grid² must round to a subset size in [1, {cells - 1}]. "
                         f"Received: fraction={fraction}, grid={grid} (size {size})")
    noise = tf.random.stateless_uniform([subsets, cells], seed=[int(seed), 0x5EED])
    chosen = tf.math.top_k(noise, k=size).indices
    return tf.reduce_any(tf.one_hot(chosen, cells, dtype=tf.int32) > 0, axis=1).numpy()


MIN_SUBSETS = 3


def pearson(a, b):
    """Row-wise Pearson correlation of [B, M] arrays (0 where either row is constant)."""
    a = np.asarray(a, np.float64)
    b = np.asarray(b, np.float64)
    a = a - a.mean(-1, keepdims=True)
    b = b - b.mean(-1, keepdims=True)
    norm = np.sqrt((a * a).sum(-1) * (b * b).sum(-1))
    scale = np.maximum(np.abs(a).max(-1), 1e-30) * np.maximum(np.abs(b).max(-1), 1e-30)
    constant = norm <= 1e-9 * scale * a.shape[-1]
    return np.where(constant, 0.0, (a * b).sum(-1) / np.where(constant, 1.0, norm))


def mu_fidelity(model, images, attributions, targets=None, grid=8, fraction=0.2, subsets=64,
                baseline="black", sigma=5.0, seed=0, batch_size=256, return_parts=False):
    """MuFidelity per image (SPEC §8; higher is more faithful).

    Args:
        model, images, attributions, targets, baseline, sigma, batch_size: as :func:`deletion`
            (baseline default "black").
        grid: g, the image is cut into g x g cells.
        fraction: f, each subset holds exactly ``round(f * g²)`` cells.
        subsets: M, the number of subsets (the same for every image and map given ``seed``).
        seed: the subsets' seed.
        return_parts: also return the attribution masses and logit drops [N, M] and targets.

    Returns:
        float64 [N]: per image, the Pearson correlation over the subsets of the attribution
        mass in the subset and the drop of the target logit when it is set to the baseline.

    Example:
        >>> metrics.mu_fidelity(model, images, explanation.gradcam, seed=0).mean()
    """
    fn, _, images, attr, targets = _check(model, images, attributions, targets, "mu_fidelity")
    grid = validation.positive_int(grid, "grid")
    subsets = validation.positive_int(subsets, "subsets")
    if subsets < MIN_SUBSETS:
        raise ValueError(f"mu_fidelity: `subsets` must be >= {MIN_SUBSETS}: the Pearson "
                         "correlation of one subset is undefined and of two always ±1 (SPEC §8 "
                         f"uses 64). Received: subsets={subsets}")
    fraction = validation.number_in(fraction, "fraction", 0, 1, low_open=True, high_open=True)
    batch_size = validation.positive_int(batch_size, "batch_size")
    h, w = images.shape[1:3]
    if h < grid or w < grid:
        raise ValueError(f"mu_fidelity: the images ({h}x{w}) must be at least grid={grid} "
                         f"pixels on a side")
    cells = cell_index(h, w, grid)
    masks = subset_masks(grid, fraction, subsets, seed)  # [M, g²]
    pixel_masks = tf.constant(masks[:, cells][..., None])  # [M, H, W, 1]
    # The attribution masses in float64, from maps scaled by their largest |value| (Pearson
    # is scale-free): no float32 overflow for huge maps, no rounding noise for flat ones.
    a64 = attr.reshape(len(attr), -1).astype(np.float64)
    scale = np.maximum(np.abs(a64).max(-1, keepdims=True), np.finfo(np.float64).tiny)
    a64 /= scale
    onehot = (cells.reshape(-1, 1) == np.arange(grid * grid)[None]).astype(np.float64)
    mass = (a64 @ onehot) @ masks.T.astype(np.float64)  # [N, M]
    flat_map = np.ptp(a64, axis=-1) == 0.0  # a constant map ranks nothing: its score is 0
    base = _baseline(images, baseline, sigma)

    def parts(x, target, b0):
        n = tf.shape(x)[0]
        masked = tf.where(pixel_masks[None], b0[:, None], x[:, None])  # [B, M, H, W, C]
        logits = fn(tf.concat([x, tf.reshape(masked, tf.concat([[-1], tf.shape(x)[1:]], 0))],
                              0))
        original, changed = logits[:n], tf.reshape(logits[n:], [n, subsets, -1])
        target = _resolve_targets(original, target)
        base_logit = tf.gather(original, target, axis=1, batch_dims=1)
        drop = base_logit[:, None] - tf.gather(changed, target, axis=2, batch_dims=1)
        return drop, target

    run = tf.function(parts, reduce_retracing=True)
    per_chunk = max(1, batch_size // (subsets + 1))
    drops, used = [], []
    for a, b in _chunks(len(images), per_chunk):
        d, t = run(tf.constant(images[a:b]), tf.constant(targets[a:b]), tf.constant(base[a:b]))
        drops.append(d.numpy())
        used.append(t.numpy())
    drop = np.concatenate(drops)
    scores = np.where(flat_map, 0.0, pearson(mass, drop))
    if return_parts:
        return scores, mass * scale, drop, np.concatenate(used)
    return scores
