"""Part consistency and stability of a model's filters (SPEC §12), streamed over a dataset:
two traced passes per batch (the images, and the images plus seeded Gaussian noise), counts
accumulated (:class:`keras_icnn.metrics.parts.PartCounts`), nothing kept per image."""
import keras
import numpy as np

from keras_icnn import validation
from keras_icnn.evaluation.model_eval import iter_batches
from keras_icnn.evaluation.streaming import peak_responses
from keras_icnn.metrics.parts import HALF_SIDE, NOISE_STD, PartCounts
from keras_icnn.models.backbones import default_layer


def part_consistency_and_stability(model, examples, layer=None, noise_std=NOISE_STD,
                                   half_side=HALF_SIDE, threshold=0.8, filter_classes=None,
                                   batch_size=64, seed=0, verbose=0):
    """Consistency and stability scores of ``layer``'s filters (default: the top conv layer).

    Args:
        model: a Keras classifier taking images.
        examples: a dict of arrays with ``image``, ``label`` and ``landmarks`` [N, P, 2] (NaN:
            hidden), or a ``tf.data.Dataset`` of such dicts, streamed batch by batch.
        noise_std: the stability's Gaussian noise, in the model's input units (default: the
            paper's σ on 0-255 pixels, :data:`NOISE_STD`).
        filter_classes: [F] each filter's category; default ICNN's rule (the class whose images
            give it the largest mean peak).
        seed: seeds the noise.

    Returns:
        dict: ``consistency``, ``stability`` (scores), ``o`` [F, P], ``consistent`` [F],
        ``stable`` [F] (per filter), ``filter_classes`` [F].

    Example:
        >>> r = part_consistency_and_stability(model, {"image": x, "label": y, "landmarks": lm})
        >>> r["consistency"], r["stability"]
    """
    noise_std = validation.number_in(noise_std, "noise_std", low=0.0)
    layer = layer or default_layer(model)
    peaks = peak_responses(model, layer)
    rng = np.random.default_rng(validation.non_negative_int(seed, "seed"))
    counts, sums, per_class = None, None, None
    bar = keras.utils.Progbar(None, unit_name="image", verbose=verbose)
    seen = 0
    for batch in iter_batches(examples, batch_size):
        for key in ("image", "label", "landmarks"):
            if key not in batch:
                raise ValueError(f"part consistency needs examples with '{key}'. Received "
                                 f"keys: {sorted(batch)}")
        x = np.asarray(batch["image"], np.float32)
        positions, scores = peaks(x)
        noisy, _ = peaks(x + rng.normal(0.0, noise_std, x.shape).astype(np.float32))
        labels = np.asarray(batch["label"])
        if counts is None:
            classes = int(model.outputs[0].shape[-1])
            classes = 2 if classes == 1 else classes
            counts = PartCounts(positions.shape[1], batch["landmarks"].shape[1], classes,
                                x.shape[1:3], half_side)
            sums = np.zeros((classes, positions.shape[1]))
            per_class = np.zeros(classes)
        counts.update(positions, batch["landmarks"], labels, noisy)
        onehot = labels[:, None] == np.arange(len(per_class))
        sums += onehot.T @ scores
        per_class += onehot.sum(0)
        seen += len(x)
        bar.update(seen)
    if counts is None:
        raise ValueError("`examples` holds no image")
    if filter_classes is None:  # ICNN's rule on the streamed class means of the peaks
        filter_classes = (sums / np.maximum(per_class, 1)[:, None]).argmax(0)
    consistency, o, consistent = counts.consistency(filter_classes, threshold)
    stability, stable = counts.stability(filter_classes)
    return {"consistency": consistency, "stability": stability, "o": o,
            "consistent": consistent, "stable": stable,
            "filter_classes": np.asarray(filter_classes)}
