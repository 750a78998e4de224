"""Filter metrics over a stream of batches: memory bounded by N x F plus at most
``maps_budget`` bytes of maps (pass 1's, kept so that pass 2 need not run the model again).

:func:`stream_filter_metrics` runs a model over a dataset that may not fit in
memory, in at most two passes:

1. per image and filter: peak score and position, mean response (for MIS and
   the filter categories); the running top ``top_quantile`` of every filter's
   units (part interpretability's dataset-wide threshold, exact); a seeded
   sample of unit positions per image for ActivMap's top-30% threshold (exact
   whenever ``N x h x w x F`` fits ``sample_budget``, every position then
   being kept); CAM IoU per image; the first ``keep`` examples with their maps
   (pictures, GradMaps).
2. only where the data have part or object masks: each image's IoUs with the
   thresholds of pass 1 (on pass 1's maps when they fit ``maps_budget``, else the model
   runs again), summed into ``P(f, k)`` and ActivMap's per-filter IoU; with
   part masks also Network Dissection's dataset-wide intersections and unions of every
   filter with every (category, part) concept (``[F, C x P]`` counts, the same threshold:
   ``P(a > T) = top_quantile`` over all units).

The numbers equal :func:`~keras_icnn.metrics.part_interpretability`,
:func:`~keras_icnn.metrics.activation_map_localization` and friends on the
same data held in memory (tested).
"""

import keras
import numpy as np
import tensorflow as tf

from keras_icnn.metrics import interpretability, localization, network_dissection
from keras_icnn.metrics.parts import NOISE_STD, PartCounts
from keras_icnn.models import heads
from keras_icnn.models.receptive_field import peak_locations, peak_units, receptive_field


def _quantile_from_top(top_desc, n, q):
    """``np.quantile(values, q, method="linear")`` per column from its top values.

    ``top_desc`` [M, F]: each column's largest values in descending order;
    ``n`` the number of values per column. Needs ``M > n - 1 - floor((n-1) q)``.
    """
    pos = (n - 1) * q
    lo = int(np.floor(pos))
    frac = pos - lo
    a = top_desc[n - 1 - lo]
    b = top_desc[max(n - 2 - lo, 0)]
    return a + frac * (b - a)


class _RunningTop:
    """The ``m`` largest values of every column seen so far (exact)."""

    def __init__(self, m):
        self.m = int(m)
        self.top = None

    def add(self, values):  # values [n, F]
        values = tf.convert_to_tensor(values, tf.float32)
        if self.top is not None:
            values = tf.concat([self.top, values], axis=0)
        k = min(self.m, int(values.shape[0]))
        self.top = tf.transpose(tf.math.top_k(tf.transpose(values), k=k, sorted=True).values)

    def quantile(self, n, q):
        return _quantile_from_top(self.top.numpy().astype(np.float64), n, q)


def _collect_atlas(atlas, images, maps, indices, size):
    """Keep ``images`` (at stream positions ``indices``, with their ``maps`` [n, h, w, F]) where
    they are some filter's top image: each as a ``size``-pixel float16 image, and each
    filter's map at its top images in ``atlas["maps"]``."""
    rank, column = np.nonzero(np.isin(atlas["top"], indices))
    if not len(rank):
        return
    row = np.searchsorted(indices, atlas["top"][rank, column])
    atlas["maps"][rank, column] = maps[row, :, :, column]  # [pairs, h, w]
    keep = np.unique(row)
    small = tf.image.resize(np.asarray(images, np.float32)[keep][..., :3], (size, size),
                            method="area").numpy().astype(np.float16)
    atlas["images"].update(zip(indices[keep].tolist(), small))


def peak_responses(model, layer_name):
    """A function ``images -> (positions [b, F, 2], scores [b, F])`` of ``layer_name``'s
    filters: each peak's receptive-field centre (x, y) and value. Traced once, reused for
    every batch of a stream."""
    rf = receptive_field(model, layer_name)
    probe = heads.Classifier(model, layer_name, caller="peak_responses").probe

    @tf.function(autograph=False)
    def step(x):
        return peak_locations(probe(x, training=False)[0], rf)

    def peaks(images):
        positions, scores = step(tf.convert_to_tensor(images))
        return positions.numpy(), scores.numpy()

    return peaks


def _count_parts(counts, step, rf, batch, i, j, labels, num_classes, rng, noise_std):
    """Add a batch to the part consistency/stability counts (SPEC §12): the peaks' receptive-
    field centres on the images and on the images plus seeded Gaussian noise."""
    x = np.asarray(batch["image"], np.float32)
    noisy = x + rng.normal(0.0, float(noise_std), x.shape).astype(np.float32)
    ni, nj = step(tf.convert_to_tensor(noisy))[3:5]
    centres = [np.stack(rf.centers(a.numpy(), b.numpy()), -1) for a, b in ((i, j), (ni, nj))]
    if counts is None:
        counts = PartCounts(centres[0].shape[1], batch["landmarks"].shape[1],
                            max(int(num_classes), 2), x.shape[1:3])
    return counts.update(centres[0], batch["landmarks"], labels, centres[1])


def _count_error(seen, expected, at_least=""):
    return ValueError(f"stream_filter_metrics: the stream held {at_least}{seen} images, "
                      f"expected num_examples={expected}")


def _pass2_counts(maps, batch, sel, part_thr, activ_thr):
    """Region counts of the selected images' ``maps`` with their part masks (``part_thr``)
    and object masks (``activ_thr``): ``{"parts": (inter, union) [b, F, P], "object":
    (inter, union) [b, F, 1]}`` (those that apply), from one upsampling of the maps."""
    masks, sets, parts = [], [], 0
    if part_thr is not None:
        masks.append(batch["part_masks"][sel].astype(bool))
        sets.append(part_thr)
        parts = masks[0].shape[-1]
    if activ_thr is not None:
        masks.append(batch["object_mask"][sel].astype(bool)[..., None])
        sets.append(activ_thr)
    if not masks:
        return {}
    inter, union = interpretability.region_counts(maps, np.concatenate(masks, -1),
                                                  np.stack(sets))  # [T, b, F, P (+1)]
    out = {}
    if part_thr is not None:
        out["parts"] = (inter[0, ..., :parts], union[0, ..., :parts])
    if activ_thr is not None:
        out["object"] = (inter[-1, ..., parts:], union[-1, ..., parts:])
    return out


def stream_filter_metrics(model, layer_name, batches, num_examples, num_classes, single=None,
                          top_quantile=0.005, iou_threshold=0.2, activ_top_fraction=0.3,
                          top_k=100, dense_kernel=None, keep=48, sample_budget=2 ** 24, seed=0,
                          verbose=1, atlas_images=0, atlas_size=80, part_noise_std=NOISE_STD,
                          maps_budget=2 ** 28):
    """Every filter metric of ``layer_name`` over a stream, in at most two passes.

    Args:
        model: a Keras model taking images.
        layer_name: the layer whose maps are measured.
        batches: a callable returning a fresh iterable of batched feature dicts
            (``image``, ``label`` and, where the data have them, ``landmarks``,
            ``part_masks``, ``object_mask``), the same images in the same order
            on every call (``Source.dataset(split, as_supervised=False)``).
        num_examples: images in the stream.
        num_classes: classes of the model.
        single: single-category data (positives: label 1); default: the
            model has 2 outputs and no label-0 image shows a part.
        top_quantile, iou_threshold: part interpretability's (ICNN §5.2.1).
        activ_top_fraction: ActivMap's segmentation fraction (CSG App. G).
        top_k: images per filter and landmark in location instability.
        dense_kernel: [F, C] of a GAP -> Dense head for CAM (None: no CAM).
        keep: examples (with maps) kept for pictures and GradMaps.
        sample_budget: unit values kept for ActivMap's threshold.
        maps_budget: bytes of float32 maps pass 1 may keep (``N x h x w x F x 4``) so that
            pass 2 reads only the masks and does not run the model again; larger
            streams run it again (0: always).
        seed: seed of that sample.
        verbose: progress bars.
        atlas_images: images kept per filter for a filter atlas (0: none): each filter's
            ``atlas_images`` top-scoring images (pass 1's peaks), collected during the second
            pass (which then runs even without masks) as ``atlas_size``-pixel float16
            images with the filter's map: memory ``min(N, atlas_images x F)`` small images
            and ``atlas_images x F`` maps, whatever the image size.
        part_noise_std: the Gaussian noise of part stability (SPEC §12, in input units; the
            noisy images are seeded by ``seed``); with landmarks, pass 1 also runs the model
            on the noisy images.

    Returns:
        dict with ``accuracy``, ``labels`` [N], ``logits`` [N, C], ``scores``,
        ``positions``, ``pooled`` [N, F] and, where the data allow,
        ``location_instability``, ``part_consistency`` and ``part_stability`` (landmarks;
        :mod:`keras_icnn.metrics.parts`, each filter's category as below),
        ``part_interpretability`` (+ ``p_f``, ``p``),
        ``activmap`` and ``cam`` (dicts), ``dissection`` (the dict of
        :func:`~keras_icnn.metrics.dissection`, concepts ``class * P + part`` of the
        positive images; needs part masks), ``filter_classes``, ``positives`` [N] bool,
        ``kept`` (the first ``keep`` examples with ``maps``) and, with ``atlas_images``,
        ``atlas``: ``top`` [k, F] (each filter's top images, best first), ``images``
        {index: float16 [atlas_size, atlas_size, 3]}, ``maps`` [k, F, h, w] (filter f's map
        on image ``top[r, f]``), ``image_size`` (H, W).

    Reads ``batches()`` at most twice (once without masks and atlas).
    """
    n_total = int(num_examples)
    if n_total < 1:
        raise ValueError(f"stream_filter_metrics needs at least one image. Received: {n_total}")
    rf = receptive_field(model, layer_name)
    # The maps and the pre-softmax logits (a softmax head is read through, graph.py).
    probe = heads.Classifier(model, layer_name, caller="stream_filter_metrics").probe
    h, w, f = (int(d) for d in probe.outputs[0].shape[1:])
    hw = h * w
    rng = np.random.default_rng(seed)
    per_image = max(1, min(hw, sample_budget // max(n_total * f, 1)))

    # reduce_retracing: pass 2 without kept maps runs subsets of every size.
    @tf.function(autograph=False, reduce_retracing=True)
    def step(x):
        maps, logits = probe(x, training=False)
        maps = tf.cast(maps, tf.float32)
        flat = tf.reshape(maps, [tf.shape(maps)[0], hw, f])
        i, j, scores = peak_units(maps)
        return maps, flat, scores, i, j, logits

    units = n_total * hw
    m_needed = units - int(np.floor((units - 1) * (1.0 - top_quantile))) + 1
    tops = {"all": _RunningTop(m_needed), "pos": _RunningTop(m_needed)}
    state = {k: [] for k in ("label", "logits", "scores", "i", "j", "pooled", "landmarks",
                             "sample", "cam_iou")}
    kept, seen, negatives_with_parts = [], 0, False
    has, part_counts = {}, None
    noise_rng = np.random.default_rng([int(seed), 12])  # SPEC §12's noisy images
    # Pass 1's maps, kept for pass 2 when they fit the budget (pass 2 then needs no forward).
    cache = (np.empty((n_total, h, w, f), np.float32) if n_total * hw * f * 4 <= maps_budget
             else None)
    bar = keras.utils.Progbar(n_total, unit_name="image", verbose=verbose)
    for batch in batches():
        batch = {k: np.asarray(v) for k, v in batch.items()}
        has = {k: k in batch for k in ("landmarks", "part_masks", "object_mask")}
        labels = batch["label"].astype(np.int64)
        maps, flat, scores, i, j, logits = step(tf.convert_to_tensor(batch["image"]))
        flat_np = flat.numpy()
        if cache is not None:
            if seen + len(labels) > n_total:
                raise _count_error(seen + len(labels), n_total, "at least ")
            cache[seen:seen + len(labels)] = flat_np.reshape(-1, h, w, f)
        state["label"].append(labels)
        state["logits"].append(logits.numpy())
        state["scores"].append(scores.numpy())
        state["i"].append(i.numpy())
        state["j"].append(j.numpy())
        state["pooled"].append(flat_np.mean(axis=1))
        if has["landmarks"]:
            state["landmarks"].append(batch["landmarks"])
            part_counts = _count_parts(part_counts, step, rf, batch, i, j, labels, num_classes,
                                       noise_rng, part_noise_std)
        if has["part_masks"]:
            negatives_with_parts |= bool(batch["part_masks"][labels == 0].any())
            tops["all"].add(flat_np.reshape(-1, f))
            if np.any(labels == 1):
                tops["pos"].add(flat_np[labels == 1].reshape(-1, f))
        if has["object_mask"]:
            cols = np.stack([np.sort(rng.choice(hw, per_image, replace=False))
                             for _ in range(len(labels))])
            state["sample"].append(np.take_along_axis(flat_np, cols[:, :, None], axis=1))
            if dense_kernel is not None:
                cam = localization.cam_localization(maps.numpy(), dense_kernel,
                                                    batch["object_mask"], labels,
                                                    top_fraction=activ_top_fraction)
                state["cam_iou"].append(cam["iou"])
        if len(kept) < keep:
            for k in range(min(keep - len(kept), len(labels))):
                kept.append(dict({key: v[k] for key, v in batch.items()}, maps=maps[k].numpy()))
        seen += len(labels)
        bar.update(seen)
    if seen != n_total:
        raise _count_error(seen, n_total)
    r = {k: np.concatenate(v) for k, v in state.items() if v}
    labels = r["labels"] = r.pop("label")
    x, y = rf.centers(r.pop("i"), r.pop("j"))
    r["positions"] = np.stack([x, y], -1).astype(np.float32)
    if single is None:  # the rule of metrics.interpretability.is_single_category, streamed
        single = num_classes == 2 and has.get("part_masks", False) and not negatives_with_parts
    pos = labels == 1 if single else np.ones(len(labels), bool)
    r["positives"] = pos
    r["accuracy"] = float(np.mean(r["logits"].argmax(-1) == labels))
    size = tuple(kept[0]["image"].shape[:2])
    if has.get("landmarks") and np.isfinite(r["landmarks"][pos][..., 0]).any():
        r["location_instability"] = interpretability.location_instability_of(
            r["positions"], r["landmarks"], labels, size, r["scores"], num_classes, top_k,
            single)
    r["filter_classes"] = (np.ones(f, int) if single else interpretability.filter_categories(
        r["pooled"], labels, num_classes))
    if part_counts is not None and np.isfinite(r["landmarks"][pos][..., 0]).any():
        r["part_consistency"] = part_counts.consistency(r["filter_classes"])[0]
        r["part_stability"] = part_counts.stability(r["filter_classes"])[0]
    atlas = None
    if atlas_images:
        k = min(int(atlas_images), len(labels))
        top = np.argsort(-r["scores"], axis=0, kind="stable")[:k]  # [k, F]
        atlas = {"top": top, "images": {}, "maps": np.zeros((k, f, h, w), np.float32),
                 "image_size": size}
        wanted = np.zeros(len(labels), bool)
        wanted[top.ravel()] = True
    if not (has.get("part_masks") or has.get("object_mask") or atlas):
        return dict(r, kept=kept)
    # Pass 2: IoUs against the dataset-wide thresholds of pass 1 (and the atlas's images).
    n_pos = int(pos.sum())
    part_thr = None
    if has.get("part_masks") and n_pos:
        part_thr = tops["pos" if single else "all"].quantile(n_pos * hw, 1.0 - top_quantile)
    activ_thr = None
    if has.get("object_mask") and n_pos:
        sample = r.pop("sample")[pos].reshape(-1, f)
        activ_thr = np.quantile(sample, 1.0 - activ_top_fraction, axis=0)
    hits = counts = None
    dis_inter = dis_union = dis_area = None
    activ_iou = []
    start = 0
    for batch in batches():
        batch = {k: np.asarray(v) for k, v in batch.items()}
        n = len(batch["label"])
        masked = bool(has.get("part_masks") or has.get("object_mask"))
        sel = pos[start:start + n] & masked
        run = sel | (wanted[start:start + n] if atlas else False)
        b_labels = batch["label"].astype(np.int64)[sel]
        start += n
        if not run.any():
            continue
        if cache is not None:
            ran = cache[start - n:start][run]
        else:
            ran = step(tf.convert_to_tensor(batch["image"][run]))[0].numpy()
        if atlas:
            _collect_atlas(atlas, batch["image"][run], ran, np.flatnonzero(run) + start - n,
                           atlas_size)
        if not sel.any():
            continue
        maps = ran[sel[run]]
        # One upsampling per batch for the parts and ActivMap's object mask (each with its
        # own thresholds); Network Dissection's (category, part) counts follow from the parts'.
        counted = _pass2_counts(maps, batch, sel, part_thr, activ_thr)
        if part_thr is not None:
            masks = batch["part_masks"][sel].astype(bool)
            inter, union = counted["parts"]
            iou = np.where(union > 0, inter / np.maximum(union, 1.0), 0.0)  # [b, F, P]
            use = np.broadcast_to(masks.any(axis=(1, 2))[:, None, :], iou.shape)
            if not single:
                use = use & (b_labels[:, None] == r["filter_classes"][None, :])[:, :, None]
            b_hits, b_counts = ((iou > iou_threshold) & use).sum(0), use.sum(0)
            hits = b_hits if hits is None else hits + b_hits
            counts = b_counts if counts is None else counts + b_counts
            inter, union, area = network_dissection.dissection_counts_from_parts(
                inter, union, masks.sum((1, 2)), b_labels, num_classes)
            if dis_inter is None:
                dis_inter, dis_union, dis_area = inter, union, area
            else:
                dis_inter, dis_union, dis_area = dis_inter + inter, dis_union + union, \
                    dis_area + area
        if activ_thr is not None:
            inter, union = (c[..., 0].astype(np.float64) for c in counted["object"])
            activ_iou.append(np.where(union > 0, inter / np.maximum(union, 1.0), 0.0))
    if hits is not None:
        p = np.where(counts > 0, hits / np.maximum(counts, 1), 0.0)
        r.update(p=p, p_f=p.max(axis=1), part_interpretability=float(p.max(axis=1).mean()))
    if dis_inter is not None:
        d = network_dissection.dissection_from_counts(dis_inter, dis_union)
        d.update(thresholds=part_thr, ceiling=network_dissection.iou_ceiling_from_areas(
            dis_area, n_pos * size[0] * size[1], top_quantile))
        r["dissection"] = d
    if activ_iou:
        r["activmap"] = localization.per_filter_scores(np.concatenate(activ_iou), labels[pos],
                                                        num_classes, (20, 30))
    if "cam_iou" in r:
        iou = r.pop("cam_iou")[pos]
        r["cam"] = {"avg_iou": float(iou.mean()), "ap20": float((iou >= 0.2).mean()),
                    "ap30": float((iou >= 0.3).mean()), "iou": iou}
    if atlas:
        r["atlas"] = atlas
    return dict(r, kept=kept)
