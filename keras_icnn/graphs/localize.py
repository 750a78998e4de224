"""Few-shot part localisation (SPEC §10, second measure) and its baseline.

From ``k`` images with a part's landmark annotated, pick the detectors (graph nodes, or any
filters) whose positions best predict the landmark — near it and at a steady offset from it —
keep each one's mean offset, and localise the part on new images as the score-weighted
prediction ``Σ w_V (p_V + o_V) / Σ w_V`` of the picked detectors present there. The baseline
matches conv features instead: the unit of a new image whose features (the same layers,
L2-normalised per layer) are nearest to those under an annotated landmark. ``refine=λ`` joins
the two: the detectors' prediction ``p̂`` becomes a deformation prior on the appearance match,
the part going to the unit ``u`` that maximises ``cos(f_u, f_annotated) − λ‖c_u − p̂‖²/diag²``.

Example:
    >>> found = localize_parts(graph, images[:3], landmarks[:3], test_images)   # [N, P, 2]
    >>> normalised_distance(found, test_landmarks, (64, 64))                    # mean, per part
    >>> found = localize_parts(graph, images[:3], landmarks[:3], test_images, refine=3.0)
"""
import keras
import numpy as np
import tensorflow as tf

from keras_icnn import validation
from keras_icnn.graphs.graph import GraphInference
from keras_icnn.graphs.peaks import LayerPeaks
from keras_icnn.models import graph as model_graph
from keras_icnn.trees.rationale import image_batches


class FilterDetectors:
    """Raw filters as part detectors, with the graph's :meth:`infer` interface: a filter's
    position is its map's peak (receptive-field centre), its score the peak's value, present
    where that value is > 0. For the raw-filter side of every comparison (and an interpretable
    CNN's filters "used the same way")."""

    def __init__(self, model, layers):
        self.model = model
        self.probe = LayerPeaks(model, layers, 1, caller="FilterDetectors")
        self.image_size = self.probe.image_size
        self.layers, self.filters = self.probe.layers, self.probe.filters
        self.offsets = [int(o) for o in np.cumsum([0] + self.filters)[:-1]]

    def infer(self, images, batch_size=64, verbose=0):
        pos, val = [], []
        for batch in self.probe.batches(images, batch_size, verbose):
            pos.append(np.concatenate([p[:, :, 0] for p, _ in batch], 1))
            val.append(np.concatenate([v[:, :, 0] for _, v in batch], 1))
        if not pos:
            raise ValueError("`images` holds no image")
        pos, val = np.concatenate(pos), np.concatenate(val)
        return GraphInference(pos, val, np.zeros_like(val), val > 0)


def _check_landmarks(landmarks, count):
    lm = validation.array_of_rank(landmarks, "landmarks", 3, "[k, P, 2]").astype(np.float64)
    if lm.shape[0] != count or lm.shape[-1] != 2:
        raise ValueError(f"`landmarks` must be [k, P, 2] with k = {count} annotated images "
                         f"(NaN: a hidden part). Received: shape={lm.shape}")
    if not np.isfinite(lm[..., 0]).any(0).all():
        raise ValueError("every part needs at least one annotated image that shows it. "
                         f"Parts never shown: {np.flatnonzero(~np.isfinite(lm[..., 0]).any(0))}")
    return lm


def select_detectors(annotated, landmarks, image_size, count=10):
    """Pick, per part, the ``count`` detectors that best predict its landmark on the annotated
    images (an inference of ``k`` images, landmarks [k, P, 2]).

    A detector's cost for part p: its mean distance to the landmark plus the spread of its
    offset to it (both / image diagonal), plus the share of p's annotated images it is absent
    from; detectors absent from all of them are never picked.

    Returns:
        ``(chosen int [count, P], offsets [count, P, 2], scale [count, P])``: the detectors,
        their mean offsets to the landmark, and their mean score on the annotated images.
    """
    count = validation.positive_int(count, "count")
    lm = _check_landmarks(landmarks, len(annotated.positions))
    diag = float(np.hypot(*image_size))
    shown = np.isfinite(lm[..., 0])  # [k, P]
    use = annotated.present[:, :, None] & shown[:, None, :]  # [k, K, P]
    offset = np.nan_to_num(lm[:, None] - annotated.positions[:, :, None])  # [k, K, P, 2]
    n = use.sum(0)  # [K, P]
    safe = np.maximum(n, 1)
    mean_off = (use[..., None] * offset).sum(0) / safe[..., None]
    dist = (use * np.linalg.norm(offset, axis=-1)).sum(0) / safe / diag
    spread = np.sqrt((use * ((offset - mean_off) ** 2).sum(-1)).sum(0) / safe) / diag
    cost = dist + spread + (1.0 - n / shown.sum(0)[None])
    cost = np.where(n > 0, cost, np.inf)
    count = min(count, cost.shape[0])
    chosen = np.argsort(cost, axis=0, kind="stable")[:count]  # [T, P]
    offsets = np.take_along_axis(mean_off, chosen[..., None], 0)
    score = np.where(use, annotated.scores[:, :, None], 0.0).sum(0) / safe
    scale = np.take_along_axis(score, chosen, 0)
    return chosen, offsets, np.where(scale > 0, scale, 1.0)


def predict_parts(inference, chosen, offsets, scale, fallback):
    """[N, P, 2]: each part where its picked detectors put it (score-weighted), ``fallback``
    [P, 2] where none of them is present."""
    pos = inference.positions[:, chosen]  # [N, T, P, 2]
    w = np.where(inference.present[:, chosen], inference.scores[:, chosen], 0.0) / scale[None]
    total = w.sum(1)  # [N, P]
    guess = (w[..., None] * (pos + offsets[None])).sum(1) / np.maximum(total, 1e-12)[..., None]
    return np.where(total[..., None] > 0, guess, np.asarray(fallback)[None])


def localize_parts(detector, annotated_images, landmarks, images, count=10, refine=None,
                   batch_size=64):
    """Localise parts on ``images`` from ``k`` annotated images (SPEC §10).

    Args:
        detector: an :class:`~keras_icnn.graphs.ExplanatoryGraph` (with its model) or a
            :class:`FilterDetectors`.
        annotated_images: [k, H, W, C]; ``landmarks``: [k, P, 2] (x, y), NaN where hidden.
        images: [N, H, W, C] array.
        count: detectors picked per part.
        refine: ``None``: each part where the picked detectors put it. A weight ``λ > 0``:
            that prediction ``p̂`` refined on the conv features of the detector's layers
            (:class:`NearestNeighbourParts`): the part goes to the unit ``u`` maximising
            ``cos(f_u, f_annotated) − λ‖c_u − p̂‖²/(H² + W²)`` — the detectors' geometry as a
            deformation prior on the appearance match (larger ``λ``: closer to ``p̂``).

    Returns:
        [N, P, 2] predicted (x, y) of every part.

    Example:
        >>> found = localize_parts(graph, train_x[:3], train_landmarks[:3], test_x)
        >>> found = localize_parts(graph, train_x[:3], train_landmarks[:3], test_x, refine=3.0)
    """
    if refine is not None:
        refine = validation.number_in(refine, "refine", low=0.0)
    annotated = detector.infer(annotated_images, batch_size=batch_size)
    chosen, offsets, scale = select_detectors(annotated, landmarks, detector.image_size, count)
    fallback = np.nanmean(np.asarray(landmarks, np.float64), axis=0)
    found = predict_parts(detector.infer(images, batch_size=batch_size), chosen, offsets, scale,
                          fallback)
    if refine is None:
        return found
    nn = NearestNeighbourParts(detector.model, detector.layers).fit(annotated_images, landmarks)
    return nn.predict(images, batch_size=batch_size, prior=found, prior_weight=refine)


def normalised_distance(predicted, landmarks, image_size):
    """``(mean, per part [P])`` of ``‖p̂ − p‖ / √(H² + W²)`` over the images showing each part."""
    lm = np.asarray(landmarks, np.float64)
    d = np.linalg.norm(np.asarray(predicted, np.float64) - lm, axis=-1) / np.hypot(*image_size)
    shown = np.isfinite(d)
    per_part = np.where(shown, d, 0).sum(0) / np.maximum(shown.sum(0), 1)
    per_part = np.where(shown.any(0), per_part, np.nan)
    return float(np.nanmean(per_part)), per_part


class NearestNeighbourParts:
    """The baseline: a part is where a new image's conv features (the given layers, each
    L2-normalised, sampled at the finest layer's units) are nearest (cosine) to the features
    under its landmark on any annotated image.

    Example:
        >>> nn = NearestNeighbourParts(model, ["top_conv", "block3_relu2"])
        >>> found = nn.fit(train_x[:3], train_landmarks[:3]).predict(test_x)
    """

    def __init__(self, model, layers):
        flat = model_graph.flatten(model, "NearestNeighbourParts")
        probe = LayerPeaks(model, layers, 1, caller="NearestNeighbourParts")
        self.image_size, fields = probe.image_size, probe.fields
        finest = int(np.argmax([h * w for h, w in probe.map_sizes]))
        self._grid = fields[finest]
        xs, ys = self._grid.centers(np.arange(self._grid.rows.length)[:, None],
                                    np.arange(self._grid.cols.length)[None, :])
        self.centres = np.stack(np.broadcast_arrays(xs, ys), -1).reshape(-1, 2)  # [U, 2]
        # each finest unit's nearest unit in every layer (by receptive-field centre)
        self._index = []
        for f in fields:
            i = np.clip(np.rint((self.centres[:, 1] - f.rows.start) / f.rows.jump), 0,
                        f.rows.length - 1).astype(np.int32)
            j = np.clip(np.rint((self.centres[:, 0] - f.cols.start) / f.cols.jump), 0,
                        f.cols.length - 1).astype(np.int32)
            self._index.append(i * f.cols.length + j)
        outputs = [model_graph.layer_output(flat, n) for n in probe.layers]
        self._model = keras.Model(flat.inputs[0], outputs)
        index = [tf.constant(i) for i in self._index]

        @tf.function(autograph=False, reduce_retracing=True)
        def features(x):
            maps = self._model(x, training=False)
            maps = maps if isinstance(maps, (list, tuple)) else [maps]
            out = []
            for m, idx in zip(maps, index):
                m = tf.cast(m, tf.float32)
                flat_m = tf.reshape(m, [tf.shape(m)[0], -1, tf.shape(m)[-1]])
                out.append(tf.math.l2_normalize(tf.gather(flat_m, idx, axis=1), axis=-1))
            return tf.concat(out, -1)  # [B, U, F]

        self._features = features
        self.prototypes = None

    def fit(self, annotated_images, landmarks):
        """Keep the features under each annotated landmark. Returns self."""
        x = np.asarray(annotated_images, np.float32)
        lm = _check_landmarks(landmarks, len(x))
        feats = self._features(tf.constant(x)).numpy()  # [k, U, F]
        d2 = ((lm[:, :, None, :] - self.centres[None, None]) ** 2).sum(-1)  # [k, P, U]
        unit = np.argmin(np.nan_to_num(d2, nan=np.inf), axis=-1)  # [k, P]
        self.prototypes = np.take_along_axis(feats, unit[..., None], 1)  # [k, P, F]
        self.shown = np.isfinite(lm[..., 0])  # [k, P]
        return self

    def predict(self, images, batch_size=64, prior=None, prior_weight=1.0):
        """[N, P, 2]: the centre of each part's best-matching unit.

        Args:
            images: [N, H, W, C] array (or a dataset of images).
            prior: optional [N, P, 2] expected (x, y) of each part on each image (e.g. a
                graph's prediction): a unit's score is then its cosine similarity minus
                ``prior_weight · ‖centre − prior‖² / (H² + W²)``.
        """
        if self.prototypes is None:
            raise ValueError("NearestNeighbourParts.predict needs fit(annotated_images, "
                             "landmarks) first")
        weight = validation.number_in(prior_weight, "prior_weight", low=0.0)
        if prior is not None:
            prior = np.asarray(prior, np.float32)
            parts = self.prototypes.shape[1]
            if prior.ndim != 3 or prior.shape[1:] != (parts, 2) or not np.isfinite(prior).all():
                raise ValueError(f"`prior` must be a finite [N, {parts}, 2] array of (x, y), one "
                                 f"row per image. Received: shape={prior.shape}")
        protos = tf.constant(self.prototypes.astype(np.float32))
        shown = tf.constant(self.shown)
        centres = tf.constant(self.centres.astype(np.float32))
        diag2 = float(self.image_size[0] ** 2 + self.image_size[1] ** 2)
        out, start = [], 0
        for x, _ in image_batches(images, None, batch_size):
            sim = tf.einsum("buf,kpf->bukp", self._features(tf.constant(x)), protos)
            sim = tf.reduce_max(tf.where(shown[None, None], sim, -np.inf), axis=2)  # [B, U, P]
            if prior is not None:
                near = prior[start:start + len(x)]
                if len(near) != len(x):
                    raise ValueError(f"`prior` must have one row per image: it has "
                                     f"{len(prior)} rows, fewer than the images")
                d2 = tf.reduce_sum((centres[None, :, None] - near[:, None]) ** 2, -1)
                sim = sim - weight * d2 / diag2
            start += len(x)
            out.append(self.centres[tf.argmax(sim, axis=1).numpy()])  # [B, P, 2]
        found = np.concatenate(out)
        if prior is not None and len(prior) != len(found):
            raise ValueError(f"`prior` must have one row per image: it has {len(prior)} "
                         f"rows, more than the {len(found)} images")
        return found
