"""Running a CSG model (or its STD baseline) over an evaluation stream: both paths' logits
and the layer's pooled maps, for accuracies and MIS."""
import numpy as np
import tensorflow as tf

from keras_icnn.models import heads


def csg_pass(model, layer, batches, csg=True):
    """One pass over the eval stream: STD-path logits, CSG-path logits (``csg``), pooled
    maps of ``layer`` and labels."""
    probe = heads.Classifier(model, layer, caller="csg_pass").probe  # maps and logits

    @tf.function(autograph=False)
    def step(x):
        maps, logits = probe(x, training=False)
        return tf.reduce_mean(tf.cast(maps, tf.float32), axis=[1, 2]), logits

    out = {"pooled": [], "std": [], "csg": [], "label": []}
    for batch in batches():
        x, y = batch["image"], batch["label"]
        pooled, logits = step(x)
        out["pooled"].append(pooled.numpy())
        out["std"].append(logits.numpy())
        if csg:
            out["csg"].append(np.asarray(model.csg_logits(x, y)))
        out["label"].append(np.asarray(y))
    return {k: np.concatenate(v) for k, v in out.items() if v}
