"""ImagenetPreprocess (layers/preprocess.py) equals keras.applications' preprocessing."""
import keras
import numpy as np
import pytest

from keras_icnn.layers.preprocess import ImagenetPreprocess


@pytest.mark.parametrize("mode", ["caffe", "tf", "torch"])
def test_each_mode_equals_keras_imagenet_utils(mode):
    x = np.random.default_rng(0).uniform(0, 255, (2, 4, 4, 3)).astype("float32")
    want = keras.applications.imagenet_utils.preprocess_input(x.copy(), mode=mode)
    np.testing.assert_allclose(ImagenetPreprocess(mode)(x).numpy(), want, rtol=1e-5, atol=1e-4)
    layer = ImagenetPreprocess.from_config(ImagenetPreprocess(mode).get_config())
    assert layer.mode == mode and layer.compute_output_shape((None, 4, 4, 3)) == (None, 4, 4, 3)


def test_unknown_mode_is_refused():
    with pytest.raises(ValueError, match=r"`mode` must be one of .* Received: mode='bgr'"):
        ImagenetPreprocess("bgr")
