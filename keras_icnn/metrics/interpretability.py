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


def _presence(present, shape):
    """[N, F] bool: where a detector is present (all, when ``present`` is None)."""
    if present is None:
        return np.ones(shape, bool)
    present = np.asarray(present)
    if present.shape != shape or present.dtype != bool:
        raise ValueError(f"`present` must be a bool array [N, F] = {shape}. "
                         f"Received: shape={present.shape}, dtype={present.dtype}")
    return present


def location_instability(part_positions, landmarks, image_size, scores, top_k=100, present=None):
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
        present: optional bool [N, F]: only images where the detector is present count (a
            node of an explanatory graph that is absent from an image has no position there).

    Returns:
        ``(mean over f and k of D, D [F, P])``; pairs without images are NaN
        in ``D`` and left out of the mean.
    """
    _check_instability_inputs(part_positions, landmarks, scores, image_size, top_k)
    present = _presence(present, np.shape(scores))
    d = _distances(part_positions, landmarks, image_size)  # [N, F, P]
    valid = np.isfinite(_as_float(landmarks)[..., 0])[:, None, :] & present[:, :, None]
    sc = np.broadcast_to(_as_float(scores)[:, :, None], d.shape)
    selected = _select_top_k(sc, valid, top_k)
    deviation = _masked_std(np.nan_to_num(d), selected)  # [F, P]
    return float(np.nanmean(deviation)), deviation


def location_instability_multi(part_positions, landmarks, labels, image_size, scores,
                               num_classes, top_k=100, rule="lowest_deviation", present=None):
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
    present = _presence(present, np.shape(scores))
    d = _distances(part_positions, landmarks, image_size)[:, :, None, :]  # [N, F, 1, P]
    onehot = labels[:, None] == np.arange(num_classes)[None, :]  # [N, C]
    shown = np.isfinite(_as_float(landmarks)[..., 0])  # [N, P]
    valid = (onehot[:, None, :, None] & shown[:, None, None, :]
             & present[:, :, None, None])  # [N, F, C, P]
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
        classes = filter_categories(_as_float(scores), labels, num_classes)
    chosen = dev[np.arange(dev.shape[0]), classes]  # [F, P]
    return float(np.nanmean(np.nanmean(chosen, axis=1))), chosen, classes


def filter_categories(responses, labels, num_classes):
    """Each filter's category, ICNN's rule: the class whose images activate it most on average,
    ``argmax_c mean_{I in c} r_I`` of per-image responses ``responses`` [N, F] (a map's sum or
    mean, or its peak). The one place a model's filter categories are computed. [F] int"""
    r = validation.array_of_rank(responses, "responses", 2, "[N, F]").astype(np.float64)
    labels = validation.labels_np(labels, num_classes, count=len(r))
    onehot = (labels[:, None] == np.arange(num_classes)).astype(np.float64)
    return (onehot.T @ r / np.maximum(onehot.sum(0), 1)[:, None]).argmax(0)


def is_single_category(num_classes, part_masks, labels):
    """Single-category data (ICNN's one-category-vs-rest task): two classes and no part on
    any label-0 image; then only the positives (label 1) carry parts. The one place the
    single- vs multi-category choice is made."""
    if num_classes != 2 or part_masks is None:
        return False
    return not np.asarray(part_masks)[np.asarray(labels) == 0].any()


def location_instability_of(positions, landmarks, labels, image_size, scores, num_classes,
                            top_k=100, single=False, present=None):
    """Location instability in the form the data call for: over the positives with
    ``single`` (:func:`location_instability`), else :func:`location_instability_multi`."""
    if single:
        pos = np.asarray(labels) == 1
        return location_instability(np.asarray(positions)[pos], np.asarray(landmarks)[pos],
                                    image_size, np.asarray(scores)[pos], top_k,
                                    None if present is None else np.asarray(present)[pos])[0]
    return location_instability_multi(positions, landmarks, labels, image_size, scores,
                                      num_classes, top_k, present=present)[0]


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
    # thresholds [T, F]: the maps are upsampled once, thresholded T times; each set is one
    # [U, F]^T x [U, P + 1] matmul per image (the ones column counts the region's units). A
    # 5-D [T, n, U, F] einsum instead was 2.5x slower (issue 49).
    up = tf.image.resize(tf.cast(maps, tf.float32), tf.shape(masks)[1:3], method="bilinear")
    n = tf.shape(masks)[0]
    up = tf.reshape(up, [n, -1, tf.shape(maps)[-1]])  # [n, U, F]
    m = tf.reshape(tf.cast(masks, tf.float32), [n, -1, tf.shape(masks)[-1]])  # [n, U, P]
    m1 = tf.concat([m, tf.ones_like(m[..., :1])], axis=-1)

    def counts(threshold):  # exact: 0/1 sums < 2**24
        return tf.matmul(tf.cast(up > threshold, tf.float32), m1, transpose_a=True)

    c = tf.map_fn(counts, thresholds, fn_output_signature=tf.float32)  # [T, n, F, P + 1]
    inter = c[..., :-1]
    union = c[..., -1:] + tf.reduce_sum(m, 1)[None, :, None, :] - inter
    return inter, union


def region_counts(activation_maps, masks, thresholds, chunk=64):
    """Intersection and union [N, F, P] (pixel counts, float32) of each filter's
    above-threshold region with each mask.

    Maps [N, h, w, F] are upsampled bilinearly to the masks' size [N, H, W, P]
    (the identity when already that size) and thresholded with ``thresholds``
    [F] (strictly ``> T``: a constant map, dead or saturated, has no unit above its
    threshold and so an empty region). ``thresholds`` [T, F] gives T sets at once
    ([T, N, F, P] counts; the maps are upsampled once). One TensorFlow function per chunk
    of images (bounds memory).
    """
    masks = np.asarray(masks, bool)
    thr = np.asarray(thresholds, np.float32)
    if thr.ndim not in (1, 2) or thr.shape[-1] != np.shape(activation_maps)[-1]:
        raise ValueError(f"`thresholds` must be [F] or [T, F] with F = "
                         f"{np.shape(activation_maps)[-1]} (the maps' filters). Received: "
                         f"shape={thr.shape}")
    sets = tf.constant(thr.reshape(-1, thr.shape[-1]))
    inter, union = [], []
    for a in range(0, len(masks), chunk):
        i, u = _region_counts(tf.constant(np.asarray(activation_maps[a:a + chunk], np.float32)),
                              tf.constant(masks[a:a + chunk]), sets)
        inter.append(i.numpy())
        union.append(u.numpy())
    if not inter:
        empty = np.zeros((len(sets), 0, np.shape(activation_maps)[-1], masks.shape[-1]),
                         np.float32)
        inter, union = [empty], [empty]
    inter, union = np.concatenate(inter, axis=1), np.concatenate(union, axis=1)
    return (inter, union) if thr.ndim == 2 else (inter[0], union[0])


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


def l1_density(gate):
    """``||G||_1 / (C * K)`` of a gate matrix [C, K]."""
    g = np.asarray(gate, np.float64)
    if g.ndim != 2 or g.size == 0:
        raise ValueError("`gate` must be a non-empty [C, K] matrix. "
                         f"Received: shape={g.shape}")
    return float(np.abs(validation.finite_array(g, "gate")).sum() / g.size)
