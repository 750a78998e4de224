"""Object localization with filters (CSG appendices G/H) and filter correlations (CSG §4.3).

Shapes: ``N`` images of ``H x W``, ``K`` filters with ``h x w`` maps, ``C`` classes.
"""

import numpy as np

from keras_icnn import validation
from keras_icnn.metrics.interpretability import upsample_maps


def _iou(pred, truth):
    """IoU of boolean masks [N, H, W, ...] vs [N, H, W] -> [N, ...]."""
    truth = truth.reshape(truth.shape + (1,) * (pred.ndim - truth.ndim))
    inter = np.logical_and(pred, truth).sum((1, 2))
    union = np.logical_or(pred, truth).sum((1, 2))
    return np.where(union > 0, inter / np.maximum(union, 1), 0.0)


def per_filter_scores(iou, labels, num_classes, ns):
    """Appendix H.1: per-class Avg-IoU / APn per filter, each filter's best class."""
    onehot = (np.asarray(labels)[:, None] == np.arange(num_classes)).astype(np.float64)  # [N, C]
    counts = np.maximum(onehot.sum(0), 1)[:, None]  # [C, 1]
    iou_c = onehot.T @ iou / counts  # [C, K]
    ap_c = {n: onehot.T @ (iou >= n / 100.0).astype(np.float64) / counts for n in ns}
    best = ap_c[ns[0]].argmax(0)  # c* of each filter, by the first APn
    k = np.arange(iou.shape[1])
    out = {"avg_iou": float(iou_c[best, k].mean()), "filter_iou": iou_c[best, k],
           "filter_class": best}
    for n in ns:
        per_filter = ap_c[n].max(0)
        out[f"ap{n}"] = float(per_filter.mean())
        out[f"filter_ap{n}"] = per_filter
    return out


def activation_map_localization(activation_maps, object_masks, labels, num_classes,
                                top_fraction=0.3, ns=(20, 30), chunk=64):
    """ActivMap localization with one filter (CSG App. G/H.1).

    Each filter's map is upsampled bilinearly to the image size and segmented
    above the filter's top-``top_fraction`` activation over the whole dataset
    (all units of all maps). ``IoU^k`` / ``APn^k`` are taken on the class
    ``c*`` that maximises the filter's AP at ``ns[0]``; the results are the
    means over filters.

    Args:
        activation_maps: [N, h, w, K].
        object_masks: [N, H, W] bool.
        labels: [N] ints.

    Returns:
        dict: ``avg_iou``, ``ap20``, ``ap30`` (floats) and per-filter arrays.
    """
    maps = np.asarray(activation_maps)
    masks = np.asarray(object_masks, bool)
    thresholds = np.quantile(maps.reshape(-1, maps.shape[-1]), 1.0 - top_fraction, axis=0)
    iou = np.concatenate([
        _iou(upsample_maps(maps[a:a + chunk], masks.shape[1:3]) > thresholds, masks[a:a + chunk])
        for a in range(0, len(maps), chunk)])  # [N, K]
    return per_filter_scores(iou, labels, num_classes, ns)


def gradient_map_localization(grad_maps, object_masks, labels, num_classes, threshold=1.0,
                              ns=(20, 30)):
    """GradMap localization with one filter: segment ``grad_maps > threshold``, then H.1."""
    iou = _iou(np.asarray(grad_maps) > threshold, np.asarray(object_masks, bool))
    return per_filter_scores(iou, labels, num_classes, ns)


def class_activation_maps(activation_maps, dense_kernel, labels):
    """CAM of each image's class: ``sum_k W[k, y] A_k`` -> [N, h, w]."""
    maps = validation.array_of_rank(activation_maps, "activation_maps", 4, "[N, h, w, K]")
    kernel = validation.array_of_rank(dense_kernel, "dense_kernel", 2, "[K, C]")
    if kernel.shape[0] != maps.shape[-1]:
        raise ValueError(f"`dense_kernel` must be [K, C] with K = {maps.shape[-1]} (the maps' "
                         f"filters). Received: dense_kernel of shape {kernel.shape}")
    labels = validation.labels_np(labels, kernel.shape[1], len(maps))
    w = kernel[:, labels]  # [K, N]
    return np.einsum("nhwk,kn->nhw", np.asarray(activation_maps, np.float64), w)


def cam_localization(activation_maps, dense_kernel, object_masks, labels, top_fraction=0.3,
                     ns=(20, 30)):
    """CAM localization with all filters (CSG App. H.2).

    The CAM of the labelled class is upsampled bilinearly and segmented at its
    own top ``top_fraction`` values; IoU with the object mask per image.

    Args:
        activation_maps: [N, h, w, K] maps feeding a global-average-pool + dense head.
        dense_kernel: [K, C] weights of that dense layer.

    Returns:
        dict: ``avg_iou``, ``ap20``, ``ap30`` over all images, and ``iou`` [N].
    """
    masks = np.asarray(object_masks, bool)
    cams = class_activation_maps(activation_maps, dense_kernel, labels)[..., None]
    up = upsample_maps(cams, masks.shape[1:3])[..., 0]
    cut = np.quantile(up.reshape(len(up), -1), 1.0 - top_fraction, axis=1)
    iou = _iou(up >= cut[:, None, None], masks)
    out = {"avg_iou": float(iou.mean()), "iou": iou}
    for n in ns:
        out[f"ap{n}"] = float((iou >= n / 100.0).mean())
    return out


def filter_correlation(kernel):
    """Cosine between filters' weights: kernel [..., K] -> [K, K]."""
    w = np.asarray(kernel, np.float64)
    if w.ndim < 3:
        raise ValueError("`kernel` must be a conv kernel [..., C_in, K] (at least 3D). "
                         f"Received: kernel of shape {w.shape}")
    w = w.reshape(-1, w.shape[-1])
    w = w / np.maximum(np.linalg.norm(w, axis=0, keepdims=True), 1e-12)
    return w.T @ w


def redundancy_ratio(correlation, s=0.1):
    """``r_s``: fraction of off-diagonal filter pairs with correlation >= s."""
    c = np.asarray(correlation)
    validation.number_in(s, "s", -1, 1)
    off = ~np.eye(len(c), dtype=bool)
    return float((c[off] >= s).mean())


def inter_class_correlation(correlation, class_activation, m):
    """``C_IC`` (CSG §4.3): mean correlation between the top-``m`` filters of different classes.

    Args:
        correlation: [K, K] filter correlation matrix.
        class_activation: [C, K] mean activation of each filter on each class.
        m: filters per class group ``A_c`` (the ``m`` most activated by c).
    """
    c = np.asarray(correlation)
    act = np.asarray(class_activation)
    groups = np.argsort(-act, axis=1, kind="stable")[:, :m]  # [C, m]
    block = c[groups[:, None, :, None], groups[None, :, None, :]]  # [C, C, m, m]
    num = act.shape[0]
    off = ~np.eye(num, dtype=bool)
    return float(block[off].sum() / (num * (num - 1) * m * m))
