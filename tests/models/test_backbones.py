"""keras.applications backbones through the three methods, preprocessing, weights (issue 13)."""
import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_icnn.layers import ImagenetPreprocess, InterpretableConv, InterpretableMask
from keras_icnn.models import (backbones, build_explainer, default_layer, get_backbone,
                               make_csg, make_interpretable)

SHAPE = (64, 64, 3)


def _batch(n=4, classes=3, seed=0):
    rng = np.random.default_rng(seed)
    return (rng.uniform(0, 255, (n,) + SHAPE).astype("float32"),
            np.arange(n) % classes)


def test_preprocess_matches_keras_preprocess_input():
    x = np.random.default_rng(0).uniform(0, 255, (2, 8, 8, 3)).astype("float32")
    cases = {"caffe": keras.applications.vgg16.preprocess_input,
             "tf": keras.applications.mobilenet_v2.preprocess_input,
             "torch": lambda a: keras.applications.imagenet_utils.preprocess_input(a, mode="torch")}
    for mode, reference in cases.items():
        np.testing.assert_allclose(ImagenetPreprocess(mode)(x), reference(x.copy()), rtol=1e-5,
                                   atol=1e-4)


def test_vgg16_through_all_three_methods():
    base = get_backbone("vgg16", SHAPE, 3, weights="none")
    assert isinstance(base.get_layer("preprocess"), ImagenetPreprocess)
    x, y = _batch()
    icnn = make_interpretable(base, default_layer("vgg16"))
    assert isinstance(icnn.get_layer("block5_conv3"), InterpretableConv)
    icnn.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                 jit_compile=False)
    logs = icnn.fit(x, y, batch_size=4, epochs=1, verbose=0).history
    assert np.isfinite(logs["loss"][0]) and logs["filter_loss"][0] != 0.0
    csg = make_csg(base, default_layer("vgg16"), 3, density=0.5)
    csg.compile(keras.optimizers.Adam(1e-4), csg_optimizer=keras.optimizers.Adam(1e-4),
                gate_optimizer=keras.optimizers.Adam(0.05), jit_compile=False)
    csg.fit(x, y, batch_size=4, epochs=2, schedule=dict(period=1, csg_epochs=1, warmup=1),
            verbose=0)
    assert np.asarray(csg.gate_layer.gate).shape == (3, 512)
    explainer, distiller = build_explainer(base, default_layer("vgg16", "explainer"))
    distiller.compile(keras.optimizers.Adam(1e-4), jit_compile=False)
    history = distiller.fit(tf.data.Dataset.from_tensor_slices((x, y)).batch(4), epochs=1,
                            verbose=0).history
    assert all(np.isfinite(v[0]) for v in history.values())


def test_resnet50_through_icnn_and_csg():
    base = get_backbone("resnet50", SHAPE, 3, weights="none")
    x, y = _batch()
    layer = default_layer("resnet50")
    icnn = make_interpretable(base, layer)
    assert isinstance(icnn.get_layer(f"{layer}_interp1"), InterpretableConv)
    icnn.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                 run_eagerly=True)
    assert np.isfinite(icnn.fit(x, y, batch_size=4, epochs=1, verbose=0).history["loss"][0])
    csg = make_csg(base, layer, 3, density=0.5)
    csg.compile(keras.optimizers.Adam(1e-4), csg_optimizer=keras.optimizers.Adam(1e-4),
                gate_optimizer=keras.optimizers.Adam(0.05), run_eagerly=True)
    csg.fit(x, y, batch_size=4, epochs=1, schedule=dict(period=1, csg_epochs=1, warmup=0),
            verbose=0)
    # The explainer reads the last residual block's input (issue 48).
    assert default_layer("resnet50", "explainer") == "conv5_block2_out"


def _conv_bn_relu_model():
    inputs = keras.Input((16, 16, 3))
    x = keras.layers.Conv2D(8, 3, padding="same", use_bias=False, name="conv")(inputs)
    x = keras.layers.BatchNormalization(name="bn")(x)
    x = keras.layers.ReLU(name="relu")(x)
    outputs = keras.layers.Dense(3, name="logits")(keras.layers.GlobalAveragePooling2D()(x))
    return keras.Model(inputs, outputs)


def test_conv_bn_relu_block_keeps_its_semantics():
    model = _conv_bn_relu_model()
    icnn = make_interpretable(model, "conv")
    # The block is unchanged: a plain conv, its BatchNorm, its ReLU, then loss and mask.
    assert type(icnn.get_layer("conv")) is keras.layers.Conv2D
    mask = icnn.get_layer("conv_mask")
    assert isinstance(mask, InterpretableMask) and mask.filters == 8
    assert mask.input is icnn.get_layer("relu").output
    assert icnn.get_layer("conv_interp").input is mask.output
    # Up to the ReLU the new model computes exactly what the old one did.
    x = np.random.default_rng(1).normal(size=(2, 16, 16, 3)).astype("float32")
    before = keras.Model(model.inputs, model.get_layer("relu").output)(x)
    after = keras.Model(icnn.inputs, icnn.get_layer("relu").output)(x)
    np.testing.assert_allclose(after, before, rtol=1e-6)
    # The mask layer applies the part mask of its filters to the ReLU's maps.
    masked = keras.Model(icnn.inputs, mask.output)(x)
    np.testing.assert_allclose(masked, mask.part_mask(before), rtol=1e-6)
    icnn.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                 jit_compile=False)
    logs = icnn.fit(x, np.array([0, 1]), epochs=1, verbose=0).history
    assert logs["filter_loss"][0] != 0.0
    # MobileNetV2's last block (conv -> BN -> ReLU6) takes the same route.
    mobile = make_interpretable(get_backbone("mobilenet_v2", SHAPE, 3), "Conv_1")
    assert mobile.get_layer("Conv_1_mask").input is mobile.get_layer("out_relu").output


def test_linear_conv_without_bn_relu_is_refused():
    inputs = keras.Input((16, 16, 3))
    a = keras.layers.Conv2D(8, 3, padding="same", name="a")(inputs)
    b = keras.layers.Conv2D(8, 1, name="b")(inputs)
    x = keras.layers.Add(name="add")([a, b])
    outputs = keras.layers.Dense(3)(keras.layers.GlobalAveragePooling2D()(x))
    model = keras.Model(inputs, outputs)
    with pytest.raises(ValueError, match="linear activation and is not followed by "
                                         "BatchNormalization -> ReLU"):
        make_interpretable(model, "a")
    swish = keras.Model(inputs, keras.layers.Dense(3)(keras.layers.GlobalAveragePooling2D()(
        keras.layers.Conv2D(8, 3, activation="swish", name="s")(inputs))))
    with pytest.raises(ValueError, match="activation 'silu'"):
        make_interpretable(swish, "s")


def test_weights_from_a_file_and_the_imagenet_route(tmp_path, monkeypatch):
    base = keras.applications.VGG16(include_top=False, weights=None, input_shape=SHAPE)
    path = str(tmp_path / "vgg16_base.weights.h5")
    base.save_weights(path)
    model = get_backbone("vgg16", SHAPE, 3, weights=path)
    np.testing.assert_array_equal(model.get_layer("block3_conv2").kernel,
                                  base.get_layer("block3_conv2").kernel)
    # What keras-icnn-pretrain writes for an application: its own include_top=False format.
    from keras_icnn.models.backbones import save_base_weights

    again = save_base_weights(model, "vgg16", str(tmp_path / "again.weights.h5"))
    reread = keras.applications.VGG16(include_top=False, weights=again, input_shape=SHAPE)
    np.testing.assert_array_equal(reread.get_layer("block5_conv3").kernel,
                                  base.get_layer("block5_conv3").kernel)
    with pytest.raises(FileNotFoundError, match="no such file"):
        get_backbone("vgg16", SHAPE, 3, weights=str(tmp_path / "missing.h5"))
    with pytest.raises(ValueError, match="no ImageNet weights"):
        get_backbone("vgg", SHAPE, 3, weights="imagenet")
    seen = {}
    real = keras.applications.VGG16

    def spy(**kwargs):
        seen.update(kwargs)
        return real(**dict(kwargs, weights=None))

    monkeypatch.setattr(keras.applications, "VGG16", spy)
    get_backbone("vgg16", SHAPE, 3, weights="imagenet")
    assert seen["weights"] == "imagenet" and seen["include_top"] is False


def test_application_model_round_trips_through_keras_file(tmp_path):
    model = get_backbone("mobilenet_v2", SHAPE, 3)
    path = str(tmp_path / "m.keras")
    model.save(path)
    x, _ = _batch(2)
    np.testing.assert_allclose(keras.models.load_model(path)(x), model(x), rtol=1e-5, atol=1e-5)



def test_preprocessing_inside_the_model_survives_export(tmp_path):
    from keras_icnn import export

    inputs = keras.Input(SHAPE, name="images")
    x = ImagenetPreprocess("caffe")(inputs)
    x = keras.layers.Conv2D(4, 3, activation="relu", name="top_conv")(x)
    outputs = keras.layers.Dense(3)(keras.layers.GlobalAveragePooling2D()(x))
    model = keras.Model(inputs, outputs)
    path = export.export_model(model, str(tmp_path), "tiny", version=1, serving_warmup=False)
    served = tf.saved_model.load(str(path)).signatures["serving_default"]
    x, _ = _batch(2)
    name = list(served.structured_input_signature[1])[0]
    probabilities = served(**{name: tf.constant(x)})["probabilities"].numpy()
    # Raw pixels in, the model's own preprocessing applied: Keras' softmax exactly.
    np.testing.assert_allclose(probabilities, tf.nn.softmax(model(x)).numpy(), rtol=1e-5,
                               atol=1e-6)


@pytest.mark.parametrize("name", ["vgg", "alexnet", "resnet20"])
def test_built_in_backbone_weights_round_trip(tmp_path, name):
    """save_base_weights writes the conv base; --weights=PATH (get_backbone) loads it into a
    backbone with another classifier: every conv/BN weight equal, the head left alone."""
    from keras_icnn.models.backbones import conv_base, save_base_weights

    kwargs = {"width": 4} | ({"blocks_per_stage": 1} if name == "resnet20" else {})
    trained = get_backbone(name, SHAPE, 7, **kwargs)
    path = save_base_weights(trained, name, tmp_path / f"{name}.weights.h5")
    fine = get_backbone(name, SHAPE, 3, weights=path, **kwargs)
    base = conv_base(trained)
    for layer in base.layers:
        for a, b in zip(layer.weights, fine.get_layer(layer.name).weights):
            np.testing.assert_array_equal(a.numpy(), b.numpy())
    assert fine.get_layer("logits").kernel.shape[-1] == 3
    with pytest.raises(ValueError, match="does not fit the"):
        get_backbone(name, SHAPE, 3, weights=path, **dict(kwargs, width=8))
    with pytest.raises(ValueError, match=r"must end in \.weights\.h5"):
        save_base_weights(trained, name, tmp_path / "x.h5")
