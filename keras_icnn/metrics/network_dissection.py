"""Network Dissection's dataset-wide IoU and unique detectors (Bau et al. 2017; the survey's
§2.2, eqs. 3-4).

For filter k with threshold ``T_k`` (``P(a_k > T_k) = top_quantile`` over every unit of its
maps in the dataset) and concept c:

    M_k(x) = upsample_bilinear(S_k(x)) > T_k
    IoU_{k,c} = sum_x |M_k(x) & L_c(x)| / sum_x |M_k(x) | L_c(x)|

The comparison is strict, as the threshold's definition ``P(a_k > T_k)`` is: a filter whose
maps are constant (dead, all zero, or saturated) has no unit above its threshold, so its
region is empty and it is never a detector; a filter whose top ``top_quantile`` of units
includes zeros (``T_k = 0``) keeps only its positive units (with ``>=`` its region would be the
whole image, and a dead filter would "detect" the largest concept).

A filter *detects* c when ``IoU_{k,c} > iou_threshold`` (0.04); a layer is summed up by its
number of **unique detectors**, the distinct concepts that at least one filter detects.
``metrics.part_interpretability`` is ICNN's per-image variant (IoU > 0.2 per image, averaged).

Concepts on the part data: the parts are present in nearly every image and cover far more
pixels than 0.5% of a map, which caps a part's IoU near the exceedance rate over its area; a
(category, part) pair (:func:`category_part_concepts`) is the concept a class-specific filter
can detect. :func:`iou_ceiling` gives each concept's ceiling, the best IoU any map with that
exceedance rate could reach, to read a figure against.

Example:
    >>> concepts, names = category_part_concepts(part_masks, labels, num_classes=6)
    >>> d = dissection(maps, concepts)             # maps [N, h, w, K]
    >>> d["unique_detectors"], [names[c] for c in d["best_concept"][:3]]
"""
import numpy as np

from keras_icnn import validation
from keras_icnn.metrics.interpretability import filter_thresholds, region_counts


def category_part_concepts(part_masks, labels, num_classes, part_names=None,
                           class_names=None):
    """(category, part) concept masks ``[N, H, W, C * P]`` (concept ``c * P + p`` is part p of
    the images of class c, empty on the others) and their names ``"class/part"``."""
    masks = validation.array_of_rank(np.asarray(part_masks, bool), "part_masks", 4,
                                     "[N, H, W, P]")
    labels = validation.labels_np(labels, num_classes, count=len(masks))
    num_parts = masks.shape[-1]
    own = labels[:, None] == np.arange(num_classes)[None, :]  # [N, C]
    concepts = own[:, None, None, :, None] & masks[:, :, :, None, :]  # [N, H, W, C, P]
    class_names = list(class_names or [str(c) for c in range(num_classes)])
    part_names = list(part_names or [str(p) for p in range(num_parts)])
    names = [f"{c}/{p}" for c in class_names for p in part_names]
    return concepts.reshape(masks.shape[:3] + (num_classes * num_parts,)), names


def iou_ceiling(concept_masks, top_quantile=0.005):
    """Per concept [C], the best dataset-wide IoU of a region covering ``top_quantile`` of all
    pixels: ``min(R, A_c) / max(R, A_c)`` with ``A_c`` the concept's total area and ``R`` the
    region's (what a filter thresholded at its top quantile covers)."""
    masks = np.asarray(concept_masks, bool)
    area = masks.reshape(-1, masks.shape[-1]).sum(0).astype(np.float64)
    return iou_ceiling_from_areas(area, np.prod(masks.shape[:3]), top_quantile)


def iou_ceiling_from_areas(areas, total_pixels, top_quantile=0.005):
    """:func:`iou_ceiling` from each concept's total area [C] and the number of pixels of all
    images (the streaming driver sums both)."""
    area = np.asarray(areas, np.float64)
    region = float(top_quantile) * float(total_pixels)
    return np.where(area > 0, np.minimum(region, area) / np.maximum(region, area), 0.0)


def dissection_counts(activation_maps, concept_masks, thresholds, chunk=64):
    """Dataset-wide intersection and union ``[K, C]`` of each filter's region
    ``upsample(S_k) > T_k`` with each concept, summed over the images."""
    inter, union = region_counts(activation_maps, concept_masks, thresholds, chunk)
    return inter.sum(0, dtype=np.float64), union.sum(0, dtype=np.float64)


def dissection_counts_from_parts(inter, union, part_areas, labels, num_classes):
    """:func:`dissection_counts` of the (category, part) concepts
    (:func:`category_part_concepts`), derived from the per-image counts of the part masks
    themselves, without building the concept masks: concept ``c * P + p`` is part p on the
    images of class c and empty elsewhere, so its intersection is the part's on class-c
    images and 0 elsewhere, and its union is the part's on class-c images and the filter's
    region alone elsewhere.

    Args:
        inter, union: [N, F, P] per image (:func:`~keras_icnn.metrics.region_counts` of the
            part masks).
        part_areas: [N, P] pixels of each part mask.
        labels: [N] class of each image.

    Returns:
        ``(inter [F, C * P], union [F, C * P], concept_areas [C * P])``, summed over the
        images (float64).
    """
    inter, union = np.asarray(inter, np.float64), np.asarray(union, np.float64)
    areas = np.asarray(part_areas, np.float64)
    if (inter.ndim != 3 or union.shape != inter.shape or inter.shape[2] < 1
            or areas.shape != (len(inter), inter.shape[2])):
        raise ValueError("`inter` and `union` must be [N, F, P] (P >= 1) and `part_areas` "
                         "[N, P]. "
                         f"Received: {inter.shape}, {union.shape}, {areas.shape}")
    onehot = (validation.labels_np(labels, num_classes, count=len(inter))[:, None]
              == np.arange(num_classes)).astype(np.float64)  # [N, C]
    region = union[:, :, 0] + inter[:, :, 0] - areas[:, None, 0]  # [N, F]: the filter's region
    f = inter.shape[1]
    own_inter = np.einsum("nc,nfp->fcp", onehot, inter).reshape(f, -1)
    own_extra = np.einsum("nc,nfp->fcp", onehot, union - region[:, :, None]).reshape(f, -1)
    return (own_inter, region.sum(0)[:, None] + own_extra,
            np.einsum("nc,np->cp", onehot, areas).reshape(-1))


def dissection_from_counts(inter, union, iou_threshold=0.04):
    """The figures of :func:`dissection` from summed counts ``[K, C]`` (the streaming driver's
    second pass ends here)."""
    validation.number_in(iou_threshold, "iou_threshold", 0, 1)
    inter, union = np.asarray(inter, np.float64), np.asarray(union, np.float64)
    if inter.ndim != 2 or inter.shape != union.shape or inter.shape[1] < 1:
        raise ValueError("Network Dissection needs at least one concept: `inter` and `union` "
                         "must be [K, C] with C >= 1. Received: shapes "
                         f"{inter.shape} and {union.shape}")
    iou = np.where(union > 0, inter / np.maximum(union, 1.0), 0.0)
    best = iou.argmax(1)
    best_iou = iou[np.arange(len(iou)), best]
    detectors = best_iou > iou_threshold
    return {"iou": iou, "best_concept": best, "best_iou": best_iou, "detectors": detectors,
            "unique_detectors": int(len(np.unique(best[detectors]))),
            "detector_count": int(detectors.sum()), "mean_best_iou": float(best_iou.mean())}


def dissection(activation_maps, concept_masks, top_quantile=0.005, iou_threshold=0.04,
               chunk=64):
    """Network Dissection of one layer (module docstring): ``activation_maps`` [N, h, w, K],
    ``concept_masks`` [N, H, W, C] bool.

    Returns a dict: ``iou`` [K, C]; per filter ``best_concept`` [K], ``best_iou`` [K] and
    ``detectors`` [K] (best IoU > ``iou_threshold``); ``unique_detectors`` (distinct concepts
    of the detectors: each detector counts for its best concept, as NetDissect does),
    ``detector_count``, ``mean_best_iou``, ``thresholds`` [K] and ``ceiling`` [C]
    (:func:`iou_ceiling`).
    """
    maps = validation.array_of_rank(activation_maps, "activation_maps", 4, "[N, h, w, K]")
    masks = validation.array_of_rank(np.asarray(concept_masks, bool), "concept_masks", 4,
                                     "[N, H, W, C]")
    if masks.shape[-1] < 1:
        raise ValueError("`concept_masks` must hold at least one concept (its last axis, C, "
                         f"must be >= 1). Received: concept_masks of shape {masks.shape}")
    if len(maps) != len(masks) or len(maps) < 1:
        raise ValueError("`activation_maps` and `concept_masks` must hold the same N >= 1 "
                         f"images. Received: {len(maps)} and {len(masks)}")
    if masks.shape[1] < maps.shape[1] or masks.shape[2] < maps.shape[2]:
        raise ValueError("`concept_masks` must be at least the maps' size (maps are upsampled "
                         f"to the masks). Received: maps {maps.shape[1:3]}, masks "
                         f"{masks.shape[1:3]}")
    thresholds = filter_thresholds(maps, top_quantile)
    inter, union = dissection_counts(maps, masks, thresholds, chunk)
    out = dissection_from_counts(inter, union, iou_threshold)
    out.update(thresholds=thresholds, ceiling=iou_ceiling(masks, top_quantile))
    return out
