"""GradMaps (evaluation/gradient_maps.py) of a linear probe, by hand."""
import keras
import numpy as np

from keras_icnn import metrics


def test_gradient_map_of_linear_probe():
    # A 1x1 conv on the image: d mean(A_k)/d image is constant per pixel.
    inputs = keras.Input((12, 12, 3))
    conv = keras.layers.Conv2D(2, 1, use_bias=False, name="c")
    model = keras.Model(inputs, conv(inputs))
    conv.set_weights([np.array([[[[1.0, 0.0], [0.0, -2.0], [0.0, 0.0]]]])])
    g = metrics.gradient_maps(model, "c", np.zeros((1, 12, 12, 3)), sigma=1.0)
    assert g.shape == (1, 12, 12, 2)
    # Uniform gradient normalised by its second moment is 1 inside; the blur keeps the centre.
    np.testing.assert_allclose(g[0, 4:8, 4:8], 1.0, rtol=1e-4)
    loc = metrics.gradient_map_localization(g, np.ones((1, 12, 12), bool), [0], 1, threshold=0.2)
    assert loc["avg_iou"] == 1.0
