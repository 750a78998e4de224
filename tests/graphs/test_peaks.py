"""Local peaks of several layers' maps, and the default graph layers."""
import numpy as np

from keras_icnn.graphs import default_graph_layers, local_peaks
from keras_icnn.graphs.peaks import LayerPeaks
from tests.graphs.conftest import channel_model


def test_local_peaks_equal_numpy():
    rng = np.random.default_rng(3)
    maps = rng.random((2, 6, 5, 3)).astype(np.float32) - 0.3
    model = channel_model([0], [[0]])  # any model: only its receptive field of "top" is used
    field = LayerPeaks(model, ["top"], 1).fields[0]
    pos, val = local_peaks(maps, field, 4)
    pad = np.pad(maps, ((0, 0), (1, 1), (1, 1), (0, 0)), constant_values=-np.inf)
    windows = np.stack([pad[:, i:i + 6, j:j + 5] for i in range(3) for j in range(3)])
    keep = (maps >= windows.max(0)) & (maps > 0)
    for img in range(2):  # the reference reads each map by hand
        for f in range(3):
            vals = np.where(keep[img, ..., f], maps[img, ..., f], 0).ravel()
            top = np.argsort(-vals, kind="stable")[:4]
            np.testing.assert_allclose(val[img, f].numpy(), vals[top])
            real = vals[top] > 0
            np.testing.assert_allclose(pos[img, f].numpy()[real],
                                       np.stack([top % 5 + 0.5, top // 5 + 0.5], -1)[real])


def test_default_layers_of_the_demo_vgg():
    from keras_icnn.models import vgg_backbone

    assert default_graph_layers(vgg_backbone()) == ["top_conv", "block3_relu2", "block2_relu2"]
