"""One rule for a classifier's head (issue 44; keras_icnn.models.heads), checked against logits
computed by hand with numpy for each head kind, through every reader: explain, the
faithfulness metrics, the attacks' probabilities and both exported signatures."""
import numpy as np
import keras
import pytest
import tensorflow as tf

from keras_icnn import adversarial, metrics
from keras_icnn.explain import explain
from keras_icnn.models import graph, heads

X = np.random.RandomState(0).uniform(0, 1, (6, 8, 8, 3)).astype(np.float32)


def _sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def _softmax(z):
    e = np.exp(z - z.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def _model(head, after=None):
    """Conv -> GAP -> ``head`` (-> ``after``), and a function giving the head's
    pre-activation logits by hand from the pooled features."""
    keras.utils.set_random_seed(3)
    inputs = keras.Input((8, 8, 3))
    maps = keras.layers.Conv2D(4, 3, activation="relu", name="conv")(inputs)
    pooled = keras.layers.GlobalAveragePooling2D(name="gap")(maps)
    out = head(pooled)
    if after is not None:
        out = after(out)
    model = keras.Model(inputs, out)
    features = keras.Model(inputs, pooled)
    # Biases that spread the classes: for one unit, half the images on each side of 0.
    if head.units == 1:
        raw = features(X).numpy() @ head.kernel.numpy()
        head.bias.assign([-np.median(raw) + 1e-3])
    else:
        head.bias.assign(np.linspace(-0.7, 0.9, head.units).astype(np.float32))

    def logits(x):
        return features(x).numpy().astype(np.float64) @ head.kernel.numpy() + head.bias.numpy()

    return model, logits


# (name, head layer, layer after it, kind, scores from logits z, probabilities from scores)
CASES = [
    ("linear 3", lambda: keras.layers.Dense(3), None, "logits", lambda z: z, _softmax),
    ("softmax 3", lambda: keras.layers.Dense(3, activation="softmax"), None, "softmax",
     lambda z: z, _softmax),
    ("Softmax layer", lambda: keras.layers.Dense(3), keras.layers.Softmax, "softmax",
     lambda z: z, _softmax),
    ("sigmoid 3", lambda: keras.layers.Dense(3, activation="sigmoid"), None, "sigmoid",
     lambda z: z, _sigmoid),
    ("Activation(sigmoid)", lambda: keras.layers.Dense(3),
     lambda: keras.layers.Activation("sigmoid"), "sigmoid", lambda z: z, _sigmoid),
    ("sigmoid 1", lambda: keras.layers.Dense(1, activation="sigmoid"), None, "binary",
     lambda z: np.concatenate([-z, z], -1), _sigmoid),
    ("linear 1", lambda: keras.layers.Dense(1), None, "binary",
     lambda z: np.concatenate([-z, z], -1), _sigmoid),
]


@pytest.mark.parametrize("name,head,after,kind,scores_of,probs_of", CASES,
                         ids=[c[0] for c in CASES])
def test_each_head_kind_against_hand_computed_logits(name, head, after, kind, scores_of,
                                                     probs_of):
    model, logits = _model(head(), after() if after is not None else None)
    assert heads.head_kind(graph.flatten(model))[0] == kind
    z = logits(X)
    scores = scores_of(z)
    probs = probs_of(scores)
    classes = scores.argmax(-1)
    if kind == "binary":  # class 1 exactly when the logit is > 0; probabilities sum to 1
        np.testing.assert_array_equal(classes, (z[:, 0] > 0).astype(int))
        np.testing.assert_allclose(probs.sum(-1), 1.0, rtol=1e-6)
        assert 0 < classes.sum() < len(classes)  # both classes occur: the test can tell
    e = explain(model, X)
    np.testing.assert_allclose(e.logits, scores, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(e.probabilities, probs, rtol=1e-4, atol=1e-6)
    np.testing.assert_array_equal(e.classes, classes)
    np.testing.assert_allclose(e.target_logit, scores[np.arange(len(X)), classes], rtol=1e-4,
                               atol=1e-5)
    # Explaining the other class differentiates its own score (-z for class 0 of a binary head).
    other = (classes + 1) % scores.shape[-1]
    e2 = explain(model, X, target=other)
    np.testing.assert_allclose(e2.target_logit, scores[np.arange(len(X)), other], rtol=1e-4,
                               atol=1e-5)
    np.testing.assert_allclose(adversarial.probabilities(model, X), probs, rtol=1e-4,
                               atol=1e-6)
    # Deletion with one step: the mean of the target's probability on the image and on black.
    black = probs_of(scores_of(logits(np.zeros_like(X))))
    got = metrics.deletion(model, X, np.random.RandomState(1).rand(*X.shape[:3]), steps=1)
    want = (probs[np.arange(len(X)), classes] + black[np.arange(len(X)), classes]) / 2
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("head", ["linear 1", "sigmoid 3"])
def test_exported_signatures_follow_the_head(head, tmp_path):
    from keras_icnn.export import export_model

    _, make, after, _, scores_of, probs_of = next(c for c in CASES if c[0] == head)
    model, logits = _model(make(), after)
    scores = scores_of(logits(X))
    probs = probs_of(scores)
    served = tf.saved_model.load(export_model(model, str(tmp_path), "m", serving_warmup=False))
    for signature in ("serving_default", "explain"):
        out = served.signatures[signature](images=tf.constant(X))
        np.testing.assert_allclose(out["probabilities"], probs, rtol=1e-4, atol=1e-6)
        np.testing.assert_array_equal(out["class_ids"], scores.argmax(-1))


def test_attacks_move_a_binary_logit_toward_the_target():
    model, logits = _model(keras.layers.Dense(1))
    z = logits(X)[:, 0]
    target = (z <= 0).astype(np.int32)  # the other class
    adv = adversarial.fgsm(model, X, 1 - target, eps=0.05, targets=target,
                           pixel_range=(0.0, 1.0))
    moved = logits(adv)[:, 0] - z
    assert np.all(np.where(target == 1, moved > 0, moved < 0))


@pytest.mark.parametrize("make", [lambda: keras.layers.Dense(3, activation="relu"),
                                  lambda: keras.layers.Dense(2, activation="tanh")])
def test_a_head_that_is_not_a_classifier_asks_for_logits_layer(make):
    model, _ = _model(make())
    with pytest.raises(ValueError, match="not a classifier head.*logits_layer="):
        explain(model, X)
    with pytest.raises(ValueError, match="logits_layer="):
        adversarial.probabilities(model, X)
    with pytest.raises(ValueError, match="not a classifier head"):
        metrics.deletion(model, X, np.ones(X.shape[:3]), steps=1)


def test_a_model_without_a_class_axis_is_refused():
    inputs = keras.Input((8, 8, 3))
    model = keras.Model(inputs, keras.layers.Conv2D(2, 3, name="conv")(inputs))
    with pytest.raises(ValueError, match=r"not \[batch, classes\].*logits_layer="):
        heads.logits_model(model)
