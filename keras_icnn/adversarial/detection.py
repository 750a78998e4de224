"""The features of CSG's adversarial-sample detector (CSG §5.2, App. I): each block's pooled
feature maps, and the detector's error on a class-balanced split (a random forest, as the
paper)."""
import keras
import numpy as np
import tensorflow as tf

from keras_icnn import validation
from keras_icnn.adversarial.attacks import batched
from keras_icnn.models import graph

FEATURE_SITES = ("block", "raw_conv")
_ACTIVATION_LAYERS = ("ReLU", "Activation", "LeakyReLU", "ELU", "PReLU")


def feature_layers(model, where="block"):
    """The layers whose global-average-pooled outputs :func:`conv_features` concatenates.

    ``where="block"``: the post-activation output of every conv block — each 4D
    activation layer (ReLU, Activation, LeakyReLU, ELU, PReLU), each conv layer with a
    non-linear ``activation`` of its own, each interpretable conv — and the gated layer
    (``ClassSpecificGate``) in place of the activation it gates: after BatchNorm and the
    residual add, what the network passes on and CSG changes. ``where="raw_conv"``: every
    ``Conv2D`` output (before BatchNorm and the residual add, 1x1 shortcuts included) and
    interpretable conv. CSG §5.2 says "after each convolution layer"; both readings are kept.
    """

    from keras_icnn.layers.class_specific_gate import ClassSpecificGate

    if where not in FEATURE_SITES:
        raise ValueError(f"`where` must be one of {FEATURE_SITES}. Received: where={where!r}")
    model = graph.flatten(model, "feature_layers")  # nested sub-models: their layers

    def four_d(layer):
        shape = getattr(layer, "output", None)
        return shape is not None and len(layer.output.shape) == 4

    if where == "raw_conv":
        return [layer for layer in model.layers
                if isinstance(layer, keras.layers.Conv2D) or hasattr(layer, "part_mask")]
    gated_inputs = set()
    for layer in model.layers:
        if isinstance(layer, ClassSpecificGate):
            for node in layer._inbound_nodes:
                for tensor in node.input_tensors:
                    gated_inputs.add(id(tensor))
    chosen = []
    for layer in model.layers:
        if not four_d(layer):
            continue
        if isinstance(layer, ClassSpecificGate) or hasattr(layer, "part_mask"):
            chosen.append(layer)
        elif id(layer.output) in gated_inputs:
            continue  # the gate's output stands for it
        elif type(layer).__name__ in _ACTIVATION_LAYERS:
            chosen.append(layer)
        elif isinstance(layer, keras.layers.Conv2D) and \
                getattr(layer.activation, "__name__", "linear") != "linear":
            chosen.append(layer)
    return chosen


def conv_features(model, images, batch_size=128, where="block"):
    """The detector's features (CSG §5.2): the global-average-pooled outputs of
    :func:`feature_layers` ``(model, where)``, concatenated: [N, sum of their channels]
    float32. The model runs in inference mode, where a CSG model's gate is the identity.

    Example:
        >>> feats = conv_features(csg_model, images)                  # block outputs + gate
        >>> raw = conv_features(csg_model, images, where="raw_conv")  # every Conv2D
    """


    flat = graph.flatten(model, "conv_features")
    layers = feature_layers(flat, where)
    if not layers:
        raise ValueError(f"Model {model.name!r} has no {where} layer to take features from")
    pooled = [keras.layers.GlobalAveragePooling2D()(graph.layer_output(flat, layer.name))
              for layer in layers]
    probe = keras.Model(flat.inputs[0], keras.layers.Concatenate()(pooled) if len(pooled) > 1
                        else pooled[0])

    images = np.asarray(images, np.float32)

    # One trace whatever the batch sizes (the last batch is usually smaller).
    @tf.function(autograph=False,
                 input_signature=[tf.TensorSpec((None,) + images.shape[1:], tf.float32)])
    def step(x):
        return tf.cast(probe(x, training=False), tf.float32)

    return batched(step, [images], batch_size)


def per_class_split(labels, train_per_class, test_per_class, seed=0):
    """Disjoint ``(train, test)`` indices with ``train_per_class`` / ``test_per_class`` images
    of every class, drawn at random; a class with too few images raises a ValueError."""
    labels = validation.labels_np(labels)
    validation.positive_int(train_per_class, "train_per_class")
    validation.positive_int(test_per_class, "test_per_class")
    rng = np.random.default_rng(seed)
    train, test = [], []
    for c in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == c))
        if len(idx) < train_per_class + test_per_class:
            raise ValueError(f"class {c} has {len(idx)} images; the protocol needs "
                             f"{train_per_class} + {test_per_class} per class")
        train.append(idx[:train_per_class])
        test.append(idx[train_per_class:train_per_class + test_per_class])
    return np.concatenate(train), np.concatenate(test)


def detection_error(clean_features, adversarial_features, labels, train_per_class,
                    test_per_class=100, repeats=5, seed=0, n_estimators=100, per_image=False):
    """CSG Table 3's protocol: a random forest tells normal from adversarial samples.

    For each repeat, ``train_per_class`` images of every class (with their adversarial
    samples) train a scikit-learn ``RandomForestClassifier`` on normal (0) vs adversarial
    (1) features, and ``test_per_class`` other images of every class (both versions) test it.

    Returns:
        dict: ``mean`` and ``std`` of the error rate over the repeats, and ``errors``; with
        ``per_image``, also ``per_image``: per repeat, the test indices and whether the
        detector got each clean / adversarial version wrong (for a bootstrap over images).
    """
    from sklearn.ensemble import RandomForestClassifier

    clean = np.asarray(clean_features, np.float32)
    adv = np.asarray(adversarial_features, np.float32)
    if clean.shape != adv.shape:
        raise ValueError(f"clean and adversarial features must match: {clean.shape} vs {adv.shape}")
    validation.positive_int(repeats, "repeats")
    validation.positive_int(n_estimators, "n_estimators")
    errors, images = [], []
    for r in range(int(repeats)):
        train, test = per_class_split(labels, train_per_class, test_per_class, seed + r)
        x = np.concatenate([clean[train], adv[train]])
        y = np.concatenate([np.zeros(len(train)), np.ones(len(train))])
        forest = RandomForestClassifier(n_estimators=n_estimators, random_state=seed + r,
                                        n_jobs=-1).fit(x, y)
        xt = np.concatenate([clean[test], adv[test]])
        yt = np.concatenate([np.zeros(len(test)), np.ones(len(test))])
        wrong = forest.predict(xt) != yt
        errors.append(float(np.mean(wrong)))
        if per_image:
            images.append({"index": test.tolist(), "clean_wrong": wrong[:len(test)].tolist(),
                           "adversarial_wrong": wrong[len(test):].tolist()})
    out = {"mean": float(np.mean(errors)), "std": float(np.std(errors)), "errors": errors}
    if per_image:
        out["per_image"] = images
    return out
