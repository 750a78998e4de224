"""The models users bring (issue 29): keras.applications bases nested in a Sequential or a
functional model, and softmax heads. 64x64 inputs, weights=None (nothing is downloaded)."""
import json

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_icnn import adversarial
from keras_icnn.explain import explain
from keras_icnn.models import backbones, graph, heads, make_csg, make_interpretable

SHAPE = (64, 64, 3)
APPS = {"vgg16": keras.applications.VGG16, "resnet50": keras.applications.ResNet50,
        "mobilenet_v2": keras.applications.MobileNetV2}


def random_images(n=2, seed=0):
    return np.random.RandomState(seed).uniform(0, 255, (n,) + SHAPE).astype(np.float32)


def _base(name):
    kwargs = dict(alpha=0.35) if name == "mobilenet_v2" else {}
    return APPS[name](include_top=False, weights=None, input_shape=SHAPE, **kwargs)


def _nested(name, kind="sequential", seed=0):
    keras.utils.set_random_seed(seed)
    base = _base(name)
    if kind == "sequential":
        return keras.Sequential([keras.Input(SHAPE), base, keras.layers.GlobalAveragePooling2D(),
                                 keras.layers.Dense(5)], name=f"user_{name}")
    inputs = keras.Input(SHAPE)
    x = keras.layers.GlobalAveragePooling2D()(base(inputs))
    return keras.Model(inputs, keras.layers.Dense(5)(x), name=f"user_{name}_functional")


@pytest.fixture(scope="module")
def nested_vgg():
    return _nested("vgg16")


def test_find_layer_by_unique_name_and_by_path(nested_vgg):
    inner = nested_vgg.get_layer("vgg16").get_layer("block5_conv3")
    assert graph.find_layer(nested_vgg, "block5_conv3") is inner
    assert graph.find_layer(nested_vgg, "vgg16/block5_conv3") is inner
    assert graph.flat_layer_name(nested_vgg, "vgg16") == "block5_pool"  # a sub-model's output
    with pytest.raises(ValueError, match=r"no layer named 'block9_conv1'.*vgg16/block5_conv3"):
        graph.find_layer(nested_vgg, "block9_conv1")
    # The same name in two sub-models: only the path names it.
    def small(tag):
        i = keras.Input((8, 8, 3))
        return keras.Model(i, keras.layers.Conv2D(2, 3, name="conv")(i), name=tag)

    inputs = keras.Input((8, 8, 3))
    twin = keras.Model(inputs, keras.layers.Add()([small("a")(inputs), small("b")(inputs)]))
    with pytest.raises(ValueError, match=r"'conv' is used 2 times.*\['a/conv', 'b/conv'\]"):
        graph.find_layer(twin, "conv")
    assert graph.find_layer(twin, "b/conv") is twin.get_layer("b").get_layer("conv")
    with pytest.raises(ValueError, match="two layers named 'conv'"):
        graph.flatten(twin)


@pytest.mark.parametrize("name", sorted(APPS))
@pytest.mark.parametrize("kind", ["sequential", "functional"])
def test_flatten_computes_the_same_function_on_the_same_variables(name, kind):
    model = _nested(name, kind)
    flat = graph.flatten(model)
    assert not graph.has_sub_models(flat) and flat.get_layer(
        backbones.default_layer(name, "icnn")) is graph.find_layer(
            model, backbones.default_layer(name, "icnn"))
    x = random_images()
    np.testing.assert_allclose(flat(x), model(x), rtol=1e-5, atol=1e-5)
    assert {id(v) for v in flat.weights} == {id(v) for v in model.weights}


def test_flat_model_saves_and_loads(tmp_path):
    model = _nested("mobilenet_v2")
    flat = graph.flatten(model)
    flat.save(tmp_path / "flat.keras")
    loaded = keras.models.load_model(tmp_path / "flat.keras")
    np.testing.assert_allclose(loaded(random_images()), model(random_images()), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", sorted(APPS))
def test_make_interpretable_and_make_csg_on_nested_models(name):
    model = _nested(name, "sequential" if name != "resnet50" else "functional")
    layer = backbones.default_layer(name, "icnn")
    icnn = make_interpretable(model, layer)
    flat = graph.flatten(model)
    # Below the converted layer the interpretable model is the user's network.
    anchor = flat.get_layer(layer)
    below = anchor if name != "vgg16" else None  # vgg16: the conv itself is replaced
    if below is None:
        node = anchor._inbound_nodes[-1]
        below_name = node.input_tensors[0]._keras_history.operation.name
    else:
        below_name = layer
    x = random_images()
    ours = keras.Model(icnn.inputs, icnn.get_layer(below_name).output)(x)
    theirs = keras.Model(flat.inputs, graph.layer_output(flat, below_name))(x)
    np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-5)
    assert any(hasattr(l, "part_mask") for l in icnn.layers)
    sub = next(l.name for l in model.layers if isinstance(l, keras.Model))
    csg = make_csg(model, f"{sub}/{layer}", num_classes=5)  # by path
    # The STD path is the user's model (the gate is the identity in inference).
    np.testing.assert_allclose(csg(x), model(x), rtol=1e-4, atol=1e-4)


def test_nested_vgg16_full_chain(tmp_path, nested_vgg):
    """make_interpretable(path) -> fit one epoch -> explain -> evaluate.py -> export_model ->
    plain tf.saved_model.load, on the user's nested Sequential."""
    from keras_icnn.export import export_model
    from keras_icnn.report import EvalConfig, evaluate_models

    icnn = make_interpretable(nested_vgg, "vgg16/block5_conv3")
    icnn.compile(keras.optimizers.Adam(1e-4),
                 keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    x, y = random_images(8, seed=1), np.arange(8) % 5
    icnn.fit(x, y, batch_size=4, epochs=1, verbose=0)
    e = explain(icnn, x[:2])
    assert e.kind == "interpretable" and e.layer == "block5_conv3_interp"
    np.testing.assert_allclose(e.logits, icnn.predict(x[:2], verbose=0), rtol=1e-4, atol=1e-4)
    # evaluate.py's code path on the user's own nested model, a layer inside it by path.
    nested_vgg.save(tmp_path / "user.keras")
    config = EvalConfig(models=(str(tmp_path / "user.keras"),), layer="vgg16/block5_conv3",
                        num_classes=5, image_size=64, num_examples=10, top_k=5,
                        gradmap_examples=0, atlas_filters=4, atlas_images=2,
                        explained_predictions=1, ascent_steps=4,
                        output_dir=str(tmp_path / "eval"), verbose=0).validate()
    result, _ = evaluate_models(config)
    report = json.loads((tmp_path / "eval" / "report.json").read_text())
    assert report["models"]["user"]["layer"] == "block5_conv3", report["models"]["user"]
    path = export_model(icnn, str(tmp_path / "serving"), "icnn", serving_warmup=False)
    served = tf.saved_model.load(path)
    out = served.signatures["explain"](images=tf.constant(x[:2]))
    np.testing.assert_allclose(out["contributions"], e.contributions, rtol=1e-3, atol=1e-3)
    np.testing.assert_allclose(out["probabilities"], e.probabilities, rtol=1e-4, atol=1e-5)


def _confident_mobilenet():
    keras.utils.set_random_seed(0)
    model = keras.applications.MobileNetV2(include_top=True, weights=None, classes=5,
                                           input_shape=SHAPE, alpha=0.35)
    head = model.layers[-1]
    assert head.get_config()["activation"] == "softmax"
    head.bias.assign(np.array([6.0, 0.0, -1.0, 0.5, 0.0], np.float32))
    return model, head


def test_softmax_head_is_read_through_by_hand(tmp_path):
    from keras_icnn.export import export_model

    model, head = _confident_mobilenet()
    x = random_images(3, seed=2)
    feats = keras.Model(model.inputs, head.input)(x).numpy()  # what the head reads
    logits = feats @ head.kernel.numpy() + head.bias.numpy()
    probs = np.exp(logits - logits.max(1, keepdims=True))
    probs /= probs.sum(1, keepdims=True)
    np.testing.assert_allclose(model(x), probs, rtol=1e-4, atol=1e-6)  # the model: softmax
    assert probs[:, 0].min() > 0.99
    e = explain(model, x)
    np.testing.assert_allclose(e.logits, logits, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(e.probabilities, probs, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(e.target_logit, logits[np.arange(3), e.classes], rtol=1e-4,
                               atol=1e-4)
    assert head.activation is keras.activations.softmax  # the user's model is untouched
    np.testing.assert_allclose(adversarial.probabilities(model, x), probs, rtol=1e-4, atol=1e-6)
    served = tf.saved_model.load(export_model(model, str(tmp_path), "mobile", serving_warmup=False))
    out = served.signatures["explain"](images=tf.constant(x))
    np.testing.assert_allclose(out["probabilities"], probs, rtol=1e-4, atol=1e-6)
    served_probs = served.signatures["serving_default"](images=tf.constant(x))["probabilities"]
    np.testing.assert_allclose(served_probs, probs, rtol=1e-4, atol=1e-6)


def test_a_softmax_layer_head_and_an_untraceable_one():
    keras.utils.set_random_seed(0)
    inputs = keras.Input((16, 16, 3))
    maps = keras.layers.Conv2D(4, 3, activation="relu", name="conv")(inputs)
    logits = keras.layers.Dense(3, name="logits")(keras.layers.GlobalAveragePooling2D()(maps))
    with_layer = keras.Model(inputs, keras.layers.Softmax()(logits))
    x = np.random.RandomState(0).uniform(0, 255, (2, 16, 16, 3)).astype(np.float32)
    want = keras.Model(inputs, logits)(x).numpy()
    lm, how = heads.logits_model(with_layer)
    assert how == "layer"
    np.testing.assert_allclose(lm(x), want, rtol=1e-5, atol=1e-6)
    # A softmax the graph does not show (inside a Lambda): a clear error, or logits_layer=.
    hidden = keras.Model(inputs, keras.layers.Lambda(lambda t: keras.ops.softmax(t))(logits))
    with pytest.raises(ValueError, match="look like probabilities.*logits_layer"):
        explain(hidden, x)
    e = explain(hidden, x, logits_layer="logits")
    np.testing.assert_allclose(e.logits, want, rtol=1e-5, atol=1e-6)


def test_detection_features_and_attacks_on_a_nested_softmax_model():
    """detect_adversarial's pieces on a Sequential nesting a functional base, softmax head."""
    keras.utils.set_random_seed(0)
    i = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(4, 3, padding="same", name="c1")(i)
    base = keras.Model(i, keras.layers.ReLU(name="r1")(x), name="base")
    model = keras.Sequential([keras.Input((8, 8, 3)), base, keras.layers.GlobalAveragePooling2D(),
                              keras.layers.Dense(3, activation="softmax", name="head")])
    images = np.random.RandomState(0).uniform(0, 255, (4, 8, 8, 3)).astype(np.float32)
    assert [l.name for l in adversarial.feature_layers(model, "block")] == ["r1"]
    maps = np.asarray(base(images))
    np.testing.assert_allclose(adversarial.conv_features(model, images), maps.mean((1, 2)),
                               rtol=1e-5, atol=1e-6)
    # FGSM on the logits: the step follows the sign of d CE(logits) / d x, by a tape.
    y = np.array([0, 1, 2, 0])
    lm = heads.as_logits(model)
    xt = tf.constant(images)
    with tf.GradientTape() as tape:
        tape.watch(xt)
        ce = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=y, logits=lm(xt))
    want = np.clip(images + 0.031 * 255 * np.sign(tape.gradient(ce, xt).numpy()), 0, 255)
    np.testing.assert_allclose(adversarial.fgsm(model, images, y, eps=0.031), want, atol=1e-3)


def test_build_explainer_on_a_nested_performer():
    from keras_icnn.models import build_explainer

    keras.utils.set_random_seed(0)
    i = keras.Input((16, 16, 3))
    a = keras.layers.Conv2D(8, 3, padding="same", activation="relu", name="c1")(i)
    b = keras.layers.Conv2D(8, 3, padding="same", activation="relu", name="c2")(a)
    performer = keras.Sequential([keras.Input((16, 16, 3)), keras.Model(i, b, name="base"),
                                  keras.layers.GlobalAveragePooling2D(),
                                  keras.layers.Dense(16, activation="relu"),
                                  keras.layers.Dense(3)])
    _, distiller = build_explainer(performer, "base/c1")
    x = np.random.RandomState(0).uniform(0, 255, (4, 16, 16, 3)).astype(np.float32)
    # The distiller's (flat, copied) performer computes the user's function.
    np.testing.assert_allclose(distiller.performer(x), performer(x), rtol=1e-5, atol=1e-5)
    distiller.compile(keras.optimizers.Adam(1e-3))
    distiller.fit(x, epochs=1, batch_size=4, verbose=0)
    e = explain(distiller, x[:2])
    assert e.kind == "explainer" and e.contributions.shape == (2, 8)
