"""The papers' filter-interpretability metrics, vectorised over images and filters.

Shapes: ``N`` images, ``F`` filters, ``P`` parts / landmarks, ``C`` classes,
maps ``h x w``, images ``H x W``. Arrays in, numbers out.
"""

import numpy as np
import tensorflow as tf

from keras_icnn import validation


def _as_float(x):
    return np.asarray(x, np.float64)


def _select_top_k(scores, valid, top_k):
    """Boolean [N, ...] mask of the ``top_k`` highest ``scores`` where ``valid``, per column."""
    masked = np.where(valid, scores, -np.inf)
    order = np.argsort(-masked, axis=0, kind="stable")
    ranks = np.empty_like(order)
    np.put_along_axis(ranks, order, np.arange(len(scores)).reshape((-1,) + (1,) * (scores.ndim - 1)),
                      axis=0)
    return (ranks < top_k) & valid


def _masked_std(values, mask):
    """Population std of ``values`` over axis 0 where ``mask``; NaN where nothing is selected."""
    count = mask.sum(0)
    safe = np.maximum(count, 1)
    mean = np.where(mask, values, 0.0).sum(0) / safe
    var = np.where(mask, (values - mean) ** 2, 0.0).sum(0) / safe
    return np.where(count > 0, np.sqrt(var), np.nan)


def _distances(part_positions, landmarks, image_size):
    h, w = image_size
    diag = np.sqrt(float(h) ** 2 + float(w) ** 2)
    pos = _as_float(part_positions)[:, :, None, :]  # [N, F, 1, 2]
    lm = _as_float(landmarks)[:, None, :, :]  # [N, 1, P, 2]
    return np.sqrt(((pos - lm) ** 2).sum(-1)) / diag  # [N, F, P], NaN where landmark absent


def _check_instability_inputs(part_positions, landmarks, scores, image_size, top_k):
    pos, lm, sc = np.asarray(part_positions), np.asarray(landmarks), np.asarray(scores)
    if pos.ndim != 3 or pos.shape[-1] != 2 or pos.shape[0] < 1:
        raise ValueError("`part_positions` must be [N, F, 2] with N >= 1 images. "
                         f"Received: shape={pos.shape}")
    if lm.ndim != 3 or lm.shape[-1] != 2 or lm.shape[0] != pos.shape[0]:
        raise ValueError(f"`landmarks` must be [N, P, 2] with N={pos.shape[0]}. "
                         f"Received: shape={lm.shape}")
    if sc.shape != pos.shape[:2]:
        raise ValueError(f"`scores` must be [N, F] = {pos.shape[:2]}. Received: shape={sc.shape}")
    validation.finite_array(pos, "part_positions")
    validation.finite_array(sc, "scores")
    if not np.isfinite(_as_float(lm)[..., 0]).any():
        raise ValueError("`landmarks` must show at least one landmark (NaN marks a hidden one). "
                         f"Received: all {lm.shape[0] * lm.shape[1]} landmarks hidden")
    size = tuple(np.atleast_1d(image_size))
    if len(size) != 2 or min(size) <= 0:
        raise ValueError(f"`image_size` must be (H, W), both > 0. Received: image_size={image_size}")
    validation.positive_int(top_k, "top_k")


def location_instability(part_positions, landmarks, image_size, scores, top_k=100):
    """Location instability of filters (ICNN §5.2.2), single-category form.

    For each filter f and landmark k, among images that show k take the
    ``top_k`` by the filter's peak score; ``d = ||landmark - position|| /
    sqrt(H^2 + W^2)``; ``D[f, k]`` is the population standard deviation of d.

    Args:
        part_positions: [N, F, 2] image-plane (x, y) of each filter's peak.
        landmarks: [N, P, 2] (x, y), NaN where absent.
        image_size: (H, W).
        scores: [N, F] peak activations.
        top_k: images per filter and landmark (100 in the paper).

    Returns:
        ``(mean over f and k of D, D [F, P])``; pairs without images are NaN
        in ``D`` and left out of the mean.
    """
    _check_instability_inputs(part_positions, landmarks, scores, image_size, top_k)
    d = _distances(part_positions, landmarks, image_size)  # [N, F, P]
    valid = np.broadcast_to(np.isfinite(_as_float(landmarks)[..., 0])[:, None, :], d.shape)
    sc = np.broadcast_to(_as_float(scores)[:, :, None], d.shape)
    selected = _select_top_k(sc, valid, top_k)
    deviation = _masked_std(np.nan_to_num(d), selected)  # [F, P]
    return float(np.nanmean(deviation)), deviation


def location_instability_multi(part_positions, landmarks, labels, image_size, scores,
                               num_classes, top_k=100, rule="lowest_deviation"):
    """Multi-category location instability (SPEC §7).

    ``D_c[f, k]`` is computed as in :func:`location_instability` over images
    of class c. A filter's category is the class with the lowest
    ``mean_k D_c[f, k]`` (``rule="lowest_deviation"``, ICNN's text) or the
    class whose images activate it most (``rule="most_activated"``, the
    explainer paper).

    Returns:
        ``(mean over f of mean_k D_{c_f}[f, k], D [F, P], filter_classes [F])``.
    """
    _check_instability_inputs(part_positions, landmarks, scores, image_size, top_k)
    if rule not in ("lowest_deviation", "most_activated"):
        raise ValueError("`rule` must be 'lowest_deviation' or 'most_activated'. "
                         f"Received: rule={rule!r}")
    num_classes = validation.positive_int(num_classes, "num_classes")
    labels = validation.labels_np(labels, num_classes, count=len(np.asarray(scores)))
    d = _distances(part_positions, landmarks, image_size)[:, :, None, :]  # [N, F, 1, P]
    onehot = labels[:, None] == np.arange(num_classes)[None, :]  # [N, C]
    shown = np.isfinite(_as_float(landmarks)[..., 0])  # [N, P]
    valid = onehot[:, None, :, None] & shown[:, None, None, :]  # [N, 1, C, P]
    shape = (d.shape[0], d.shape[1], num_classes, d.shape[3])
    valid = np.broadcast_to(valid, shape)
    sc = np.broadcast_to(_as_float(scores)[:, :, None, None], shape)
    selected = _select_top_k(sc, valid, top_k)
    dev = _masked_std(np.broadcast_to(np.nan_to_num(d), shape), selected)  # [F, C, P]
    with np.errstate(invalid="ignore"):
        per_class = np.nanmean(np.where(np.isnan(dev), np.nan, dev), axis=-1)  # [F, C]
    if rule == "lowest_deviation":
        classes = np.argmin(np.where(np.isnan(per_class), np.inf, per_class), axis=1)
    else:
        counts = np.maximum(onehot.sum(0), 1)
        mean_score = (_as_float(scores).T @ onehot) / counts  # [F, C]
        classes = np.argmax(mean_score, axis=1)
    chosen = dev[np.arange(dev.shape[0]), classes]  # [F, P]
    return float(np.nanmean(np.nanmean(chosen, axis=1))), chosen, classes


def filter_thresholds(activation_maps, top_quantile=0.005):
    """Per-filter threshold ``T_f`` with ``P(x > T_f) = top_quantile`` over all units. [F]"""
    maps = validation.array_of_rank(activation_maps, "activation_maps", 4, "[N, h, w, F]")
    validation.number_in(top_quantile, "top_quantile", 0, 1, low_open=True, high_open=True)
    validation.finite_array(maps, "activation_maps", maps.dtype if maps.dtype.kind == "f" else None)
    flat = maps.reshape(-1, maps.shape[-1])
    return np.quantile(flat, 1.0 - top_quantile, axis=0, method="linear")


def upsample_maps(maps, size):
    """Bilinear upsampling [N, h, w, F] -> [N, H, W, F] (identity when already that size)."""
    maps = validation.array_of_rank(maps, "maps", 4, "[N, h, w, F]").astype(np.float32)
    size = tuple(np.atleast_1d(size).tolist())
    if len(size) != 2 or min(size) < 1:
        raise ValueError(f"`size` must be (H, W), both >= 1. Received: size={size}")
    if tuple(maps.shape[1:3]) == size:
        return maps
    return tf.image.resize(maps, size, method="bilinear").numpy()


@tf.function(reduce_retracing=True)
def _region_counts(maps, masks, thresholds):
    up = tf.image.resize(tf.cast(maps, tf.float32), tf.shape(masks)[1:3], method="bilinear")
    n = tf.shape(masks)[0]
    above = up > thresholds
    region = tf.reshape(tf.cast(above, tf.float32), [n, -1, tf.shape(maps)[-1]])
    m = tf.reshape(tf.cast(masks, tf.float32), [n, -1, tf.shape(masks)[-1]])
    inter = tf.matmul(region, m, transpose_a=True)  # [n, F, P]; exact (0/1 sums < 2**24)
    union = tf.reduce_sum(region, 1)[:, :, None] + tf.reduce_sum(m, 1)[:, None, :] - inter
    return inter, union


def region_counts(activation_maps, masks, thresholds, chunk=64):
    """Intersection and union [N, F, P] (pixel counts, float32) of each filter's
    above-threshold region with each mask.

    Maps [N, h, w, F] are upsampled bilinearly to the masks' size [N, H, W, P]
    (the identity when already that size) and thresholded with ``thresholds``
    [F] (strictly ``> T``: a constant map, dead or saturated, has no unit above its
    threshold and so an empty region). One
    TensorFlow function per chunk of images (bounds memory).
    """
    masks = np.asarray(masks, bool)
    thresholds = tf.constant(np.asarray(thresholds, np.float32))
    inter, union = [], []
    for a in range(0, len(masks), chunk):
        i, u = _region_counts(tf.constant(np.asarray(activation_maps[a:a + chunk], np.float32)),
                              tf.constant(masks[a:a + chunk]), thresholds)
        inter.append(i.numpy())
        union.append(u.numpy())
    if not inter:
        empty = np.zeros((0, np.shape(activation_maps)[-1], masks.shape[-1]), np.float32)
        return empty, empty
    return np.concatenate(inter), np.concatenate(union)


def part_ious(activation_maps, part_masks, thresholds, chunk=64):
    """IoU [N, F, P] of each filter's above-threshold region with each part mask.

    Maps are upsampled bilinearly to the mask size and thresholded with
    ``thresholds`` [F] (:func:`region_counts`). Streams over chunks of images
    to bound memory.
    """
    inter, union = region_counts(activation_maps, part_masks, thresholds, chunk)
    return np.where(union > 0, inter / np.maximum(union, 1.0), 0.0)


def part_interpretability(activation_maps, part_masks, top_quantile=0.005, iou_threshold=0.2,
                          labels=None, filter_classes=None):
    """Part interpretability of filters (ICNN §5.2.1, after Bau et al.).

    Args:
        activation_maps: [N, h, w, F] filter maps (after ReLU / mask).
        part_masks: [N, H, W, P] bool ground-truth part masks.
        top_quantile: fraction of all units of a filter above its threshold.
        iou_threshold: IoU above which an image associates a filter with a part.
        labels, filter_classes: optional [N] and [F]; when given, filter f is
            evaluated only on images of its class (the multi-category form).

    Returns:
        ``(mean P_f, P_f [F], P [F, P])`` where ``P[f, k]`` is the fraction of
        images showing part k with IoU > threshold and ``P_f = max_k P[f, k]``.
    """
    maps = np.asarray(activation_maps)
    masks = np.asarray(part_masks, bool)
    if maps.ndim != 4 or masks.ndim != 4 or len(maps) != len(masks) or len(maps) < 1:
        raise ValueError("`activation_maps` must be [N, h, w, F] and `part_masks` [N, H, W, P] "
                         f"with the same N >= 1. Received: {maps.shape}, {masks.shape}")
    if np.issubdtype(maps.dtype, np.floating) and not np.isfinite(maps).all():
        raise ValueError(f"`activation_maps` must be finite. Received: "
                         f"{int((~np.isfinite(maps)).sum())} NaN/Inf value(s)")
    validation.number_in(top_quantile, "top_quantile", 0, 1, low_open=True, high_open=True)
    validation.number_in(iou_threshold, "iou_threshold", 0, 1)
    if (labels is None) != (filter_classes is None):
        raise ValueError("`labels` and `filter_classes` go together (the multi-category form). "
                         f"Received: labels={'set' if labels is not None else None}, "
                         f"filter_classes={'set' if filter_classes is not None else None}")
    if labels is not None:
        labels = validation.labels_np(labels, count=len(maps))
        filter_classes = np.asarray(filter_classes)
        if filter_classes.shape != (maps.shape[-1],):
            raise ValueError(f"`filter_classes` must be [F] = [{maps.shape[-1]}]. "
                             f"Received: shape={filter_classes.shape}")
    thresholds = filter_thresholds(maps, top_quantile)
    iou = part_ious(maps, masks, thresholds)  # [N, F, P]
    present = masks.any(axis=(1, 2))[:, None, :]  # [N, 1, P]
    use = np.broadcast_to(present, iou.shape)
    if labels is not None and filter_classes is not None:
        own = np.asarray(labels)[:, None] == np.asarray(filter_classes)[None, :]  # [N, F]
        use = use & own[:, :, None]
    hits = ((iou > iou_threshold) & use).sum(0)
    count = use.sum(0)
    p = np.where(count > 0, hits / np.maximum(count, 1), 0.0)
    p_f = p.max(axis=1)
    return float(p_f.mean()), p_f, p


def mutual_information_matrix(features, labels, num_classes, random_state=0):
    """``M[k, c] = MI(a_k; 1[y = c])``, the estimate of sklearn's ``mutual_info_classif``. [K, C]

    The same numbers as ``mutual_info_classif(features, labels == c, random_state=...)``
    for each class (same scaling, jitter and 3-neighbour estimator), computed for all
    filters at once by sorting instead of one KD-tree per filter and class (much faster).

    Args:
        features: [N, K] (e.g. global-average-pooled filter responses).
        labels: [N] ints in [0, num_classes).
    """
    features = validation.finite_array(features, "features")
    if features.ndim != 2 or len(features) < 2:
        raise ValueError("`features` must be [N, K] with N >= 2 examples. "
                         f"Received: shape={features.shape}")
    num_classes = validation.positive_int(num_classes, "num_classes")
    labels = validation.labels_np(labels, num_classes, count=len(features))
    noisy = _mi_noisy_features(features, random_state)
    return np.stack([_ksg_mi_columns(noisy, labels == c) for c in range(num_classes)], axis=1)


def _mi_noisy_features(features, random_state, noise=1e-10):
    """The features as sklearn's ``mutual_info_classif`` sees them: scaled to unit variance
    and jittered by ``1e-10 * max(1, mean |x|)`` Gaussian noise from ``random_state``."""
    from sklearn.preprocessing import scale

    x = scale(np.asarray(features, np.float64), with_mean=False, copy=True)
    means = np.maximum(1, np.mean(np.abs(x), axis=0))
    rng = np.random.RandomState(random_state)
    return x + noise * means * rng.standard_normal(size=x.shape)


def _kth_neighbour_distance(x, k):
    """Distance [n, K] from each value of each column of ``x`` [n, K] to its k-th nearest
    other value (1-D neighbours: the k-th smallest of the 2k around it in sorted order)."""
    n = len(x)
    order = np.argsort(x, axis=0, kind="stable")
    ordered = np.take_along_axis(x, order, axis=0)
    pad = np.full((k, x.shape[1]), np.inf)
    padded = np.concatenate([pad, ordered, pad])
    near = np.stack([np.abs(ordered - padded[k + o:k + o + n])
                     for o in list(range(-k, 0)) + list(range(1, k + 1))], axis=-1)
    kth = np.partition(near, k - 1, axis=-1)[..., k - 1]
    out = np.empty_like(kth)
    np.put_along_axis(out, order, kth, axis=0)
    return out


def _count_within(x, radius):
    """Number of values of each column of ``x`` [n, K] within ``radius`` [n, K] of each value
    (``|x_j - x_i| <= r_i``, itself included), by binary search and an exact edge check."""
    counts = np.empty(x.shape, np.int64)
    for k in range(x.shape[1]):  # one sorted column at a time; vectorised over the values
        col, r = x[:, k], radius[:, k]
        ordered = np.sort(col)
        n = len(ordered)
        hi = np.searchsorted(ordered, col + r, side="right")
        lo = np.searchsorted(ordered, col - r, side="left")
        # col +- r is rounded; move each bound until the exact test |x_j - x_i| <= r_i holds.
        while True:
            down = (hi > 0) & (ordered[np.maximum(hi - 1, 0)] - col > r)
            up = (hi < n) & (ordered[np.minimum(hi, n - 1)] - col <= r)
            right = (lo < n) & (col - ordered[np.minimum(lo, n - 1)] > r)
            left = (lo > 0) & (col - ordered[np.maximum(lo - 1, 0)] <= r)
            if not (down.any() or up.any() or right.any() or left.any()):
                break
            hi = hi - down + up
            lo = lo + right - left
        counts[:, k] = hi - lo
    return counts


def _ksg_mi_columns(x, target, n_neighbors=3):
    """MI (nats) of each continuous column of ``x`` [N, K] with the binary ``target`` [N]:
    Ross's (2014) nearest-neighbour estimator exactly as sklearn's ``_compute_mi_cd``
    computes it, for all columns at once (its KD-trees replaced by sorting, which is exact
    in one dimension). Negative estimates become 0."""
    from scipy.special import digamma

    n = len(x)
    radius = np.zeros(x.shape)
    k_all = np.zeros(n)
    label_counts = np.zeros(n)
    for label in np.unique(target):
        mask = target == label
        count = int(mask.sum())
        label_counts[mask] = count
        if count > 1:
            k = min(n_neighbors, count - 1)
            radius[mask] = np.nextafter(_kth_neighbour_distance(x[mask], k), 0)
            k_all[mask] = k
    keep = label_counts > 1  # points alone in their class are left out
    x, radius = x[keep], radius[keep]
    m_all = _count_within(x, radius)
    mi = (digamma(int(keep.sum())) + np.mean(digamma(k_all[keep]))
          - np.mean(digamma(label_counts[keep])) - np.mean(digamma(m_all), axis=0))
    return np.maximum(0.0, mi)


def mutual_information_score(features, labels, num_classes, random_state=0):
    """MIS = mean over filters of the max over classes of ``M[k, c]`` (CSG §4.3)."""
    return float(mutual_information_matrix(features, labels, num_classes, random_state)
                 .max(axis=1).mean())


def mutual_information_ceiling(labels, num_classes):
    """The largest MIS any features can reach on ``labels``: ``max_c H(1[y = c])`` (nats).

    ``MI(a; 1[y=c]) <= H(1[y=c])``, so MIS <= this. With C balanced classes it
    is ``H_b(1/C)``: 0.451 for 6 classes, 0.325 for 10 (CIFAR-10). A ratio
    MIS(CSG) / MIS(STD) can therefore never exceed ceiling / MIS(STD).

    Example:
        >>> mutual_information_ceiling(np.repeat(np.arange(6), 100), 6)  # H_b(1/6)
        0.4505...
    """
    labels = validation.labels_np(labels, validation.positive_int(num_classes, "num_classes"))
    q = np.bincount(labels, minlength=num_classes) / max(len(labels), 1)
    with np.errstate(divide="ignore", invalid="ignore"):
        h = -(np.where(q > 0, q * np.log(q), 0.0) + np.where(q < 1, (1 - q) * np.log(1 - q), 0.0))
    return float(h.max())


def l1_density(gate):
    """``||G||_1 / (C * K)`` of a gate matrix [C, K]."""
    g = np.asarray(gate, np.float64)
    if g.ndim != 2 or g.size == 0:
        raise ValueError("`gate` must be a non-empty [C, K] matrix. "
                         f"Received: shape={g.shape}")
    return float(np.abs(validation.finite_array(g, "gate")).sum() / g.size)
