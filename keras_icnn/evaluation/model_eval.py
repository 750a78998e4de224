"""Model-level wrappers: stream a dataset through a model, then apply the metrics."""

import keras
import numpy as np
import tensorflow as tf

from keras_icnn import validation
from keras_icnn.explain import check_images, default_layer, explain
from keras_icnn.metrics import interpretability
from keras_icnn.models import heads
from keras_icnn.models.receptive_field import peak_locations, receptive_field

def iter_batches(examples, batch_size):
    """Batches (dicts of numpy arrays) of ``examples``: a dict of arrays or a ``tf.data``
    dataset of feature dicts (batched or not)."""
    return _batches(examples, batch_size)[0]


def _batches(examples, batch_size):
    """(batch dict, number of images or None) from a dict of arrays or a tf.data.Dataset."""
    if isinstance(examples, tf.data.Dataset):
        spec = examples.element_spec
        if not isinstance(spec, dict) or "image" not in spec:
            raise ValueError("collect_responses needs a dataset of feature dicts with an 'image' "
                             f"key (use make_dataset(..., as_supervised=False)). Received: {spec}")
        if spec["image"].shape.rank == 3:  # unbatched examples
            examples = examples.batch(batch_size)
        return ({k: v.numpy() for k, v in batch.items()} for batch in examples), None
    n = len(examples["image"])
    return ({k: np.asarray(v)[a:a + batch_size] for k, v in examples.items()}
            for a in range(0, n, batch_size)), n


def collect_responses(model, layer_name, examples, batch_size=64, verbose=1):
    """Run images through ``model`` and collect what the metrics need.

    Args:
        model: a Keras model taking images.
        layer_name: layer whose maps are evaluated.
        examples: a dict of arrays with ``image`` (+ ``label``, ``landmarks``,
            ``part_masks``, ``object_mask`` when present), or a
            ``tf.data.Dataset`` of such dicts (batched or not), streamed
            batch by batch.
        batch_size: images per step (for arrays and unbatched datasets).
        verbose: show a progress bar.

    Returns:
        dict: ``maps`` [N,h,w,F], ``positions`` [N,F,2] image-plane (x, y) of
        each filter's peak (receptive-field centres), ``scores`` [N,F] peak
        values, ``logits`` [N,C], plus the examples' labels, landmarks,
        part masks and object masks.
    """
    validation.positive_int(batch_size, "batch_size")
    rf = receptive_field(model, layer_name)
    # The maps and the pre-softmax logits (nested models and softmax heads: graph.py).
    probe = heads.Classifier(model, layer_name, caller="collect_responses").probe
    batches, n = _batches(examples, batch_size)
    bar = keras.utils.Progbar(n, unit_name="image", verbose=verbose)

    @tf.function(autograph=False)  # straight-line code: nothing to convert
    def step(x):
        maps, logits = probe(x, training=False)
        maps = tf.cast(maps, tf.float32)
        locations, scores = peak_locations(maps, rf)
        return maps, scores, locations, logits

    keys = ("maps", "scores", "positions", "logits")
    carried = ("label", "landmarks", "part_masks", "object_mask")
    out = {k: [] for k in keys + carried}
    seen = 0
    for batch in batches:
        values = step(tf.convert_to_tensor(batch["image"]))
        for key, value in zip(keys, values):
            out[key].append(value.numpy())
        for key in carried:
            if key in batch:
                out[key].append(np.asarray(batch[key]))
        seen += len(batch["image"])
        bar.update(seen)
    return {key: np.concatenate(value) for key, value in out.items() if value}


def filter_classes_by_activation(maps, labels, num_classes):
    """ICNN's filter category: ``argmax_c mean_{I in c} sum_ij x_ij``
    (:func:`keras_icnn.metrics.interpretability.filter_categories` of the maps' sums). [F]"""
    return interpretability.filter_categories(np.asarray(maps, np.float64).sum(axis=(1, 2)),
                                              labels, num_classes)


def evaluate_interpretability(model, examples, layer_name=None, num_classes=None, top_k=100,
                              batch_size=64, verbose=1):
    """Accuracy, location instability and part interpretability of one model.

    Multi-category data use the multi-category forms: location instability
    with ICNN's lowest-deviation category rule, part interpretability on the
    images of each filter's most-activating category. Single-category data
    (labels 0/1) use the positive images only.

    Returns:
        dict of floats: ``accuracy``, ``location_instability``,
        ``part_interpretability`` (and the layer name).
    """
    layer_name = layer_name or default_layer(model)
    r = collect_responses(model, layer_name, examples, batch_size, verbose)
    labels = r["label"]
    num_classes = num_classes or int(r["logits"].shape[-1])
    size = np.asarray(examples["image"]).shape[1:3]
    result = {"layer": layer_name,
              "accuracy": float(np.mean(np.argmax(r["logits"], -1) == labels))}
    single = interpretability.is_single_category(num_classes, r.get("part_masks"), labels)
    if "landmarks" in r:
        result["location_instability"] = interpretability.location_instability_of(
            r["positions"], r["landmarks"], labels, size, r["scores"], num_classes, top_k,
            single)
    if "part_masks" in r:
        if single:
            pos = labels == 1  # single-category: positives carry the parts
            pi, _, _ = interpretability.part_interpretability(r["maps"][pos], r["part_masks"][pos])
        else:
            classes = filter_classes_by_activation(r["maps"], labels, num_classes)
            pi, _, _ = interpretability.part_interpretability(
                r["maps"], r["part_masks"], labels=labels, filter_classes=classes)
        result["part_interpretability"] = pi
    return result


def part_contributions(model, layer_name, images, filter_parts, num_parts):
    """Share of each prediction's class score carried by each part's filters.

    ``contribution_f = sum_ij (d logit_c / d A_f) * A_f`` (gradient x
    activation at ``layer_name``, ``c`` the predicted class; computed by
    :func:`keras_icnn.explain.explain`), summed over the filters associated
    with each part and divided by the logit.

    Args:
        images: [N, H, W, 3].
        filter_parts: [F] part index of each filter, -1 for filters with no part.
        num_parts: P.

    Returns:
        ``(shares [N, P + 1] (last column: filters with no part), classes [N], logits [N])``.
    """
    images = check_images(model, images, "part_contributions")
    e = explain(model, images, layer=layer_name, heatmaps=None)
    return e.part_shares(filter_parts, num_parts), e.classes, e.target_logit.astype(np.float64)
