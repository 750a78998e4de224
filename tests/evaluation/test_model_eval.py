import keras
import numpy as np

from keras_icnn import metrics
from keras_icnn.data import synthetic_parts
from keras_icnn.models import make_interpretable, vgg_backbone


def test_collect_responses_and_evaluate():
    keras.utils.set_random_seed(0)
    model = make_interpretable(vgg_backbone((32, 32, 3), 3, width=4), "top_conv")
    ex = synthetic_parts.make_examples(24, image_size=32, num_classes=3)
    assert metrics.default_layer(model) == "top_conv_interp"
    r = metrics.collect_responses(model, "top_conv_interp", ex, batch_size=10, verbose=0)
    probe = keras.Model(model.inputs, model.get_layer("top_conv_interp").output)
    maps = probe.predict(ex["image"], verbose=0)
    np.testing.assert_allclose(r["maps"], maps, rtol=1e-5, atol=1e-6)
    flat = maps.reshape(24, -1, maps.shape[-1])
    np.testing.assert_allclose(r["scores"], flat.max(1), rtol=1e-6)
    i, j = np.divmod(flat.argmax(1), maps.shape[2])
    # VGG top maps of a 32px image: 4x4 units, 8 px apart, unit 0 centred at pixel 4.
    np.testing.assert_allclose(r["positions"][..., 0], 4.0 + 8.0 * j)
    np.testing.assert_allclose(r["positions"][..., 1], 4.0 + 8.0 * i)
    result = metrics.evaluate_interpretability(model, ex, verbose=0)
    assert result["layer"] == "top_conv_interp"
    want_acc = np.mean(model.predict(ex["image"], verbose=0).argmax(-1) == ex["label"])
    assert result["accuracy"] == want_acc
    assert 0.0 <= result["part_interpretability"] <= 1.0
    assert 0.0 <= result["location_instability"] < 1.0


def test_filter_classes_by_activation():
    maps = np.zeros((4, 2, 2, 2))
    maps[0, ..., 0] = 1.0  # class 0 activates filter 0
    maps[3, ..., 1] = 2.0  # class 1 activates filter 1
    np.testing.assert_array_equal(
        metrics.filter_classes_by_activation(maps, np.array([0, 0, 1, 1]), 2), [0, 1])


def test_collect_responses_streams_a_tf_data_dataset():
    import tensorflow as tf

    from keras_icnn.data import pipeline

    keras.utils.set_random_seed(0)
    model = make_interpretable(vgg_backbone((32, 32, 3), 3, width=4), "top_conv")
    ex = synthetic_parts.make_examples(20, image_size=32, num_classes=3)
    from_arrays = metrics.collect_responses(model, "top_conv_interp", ex, batch_size=8, verbose=0)
    ds = pipeline.make_dataset(ex, batch_size=6, as_supervised=False)
    from_dataset = metrics.collect_responses(model, "top_conv_interp", ds, verbose=0)
    unbatched = tf.data.Dataset.from_tensor_slices(ex)
    from_unbatched = metrics.collect_responses(model, "top_conv_interp", unbatched, verbose=0)
    for got in (from_dataset, from_unbatched):
        for key in ("maps", "scores", "positions", "label", "landmarks", "part_masks"):
            np.testing.assert_allclose(got[key], from_arrays[key], rtol=1e-5, atol=1e-6)
