"""Models and images whose part patterns are known by construction (the graph tests).

Channel c of an image is what filter c of a 1x1 identity conv sees, so each layer's maps are
drawn directly: Gaussian blobs at chosen positions (pixel centres at i + 0.5, as the package's
receptive fields put them).
"""
import keras
import numpy as np
import pytest

SIDE = 32
OFFSETS = np.array([[5.0, 0.0], [-3.0, 4.0]])  # the two sub-patterns, from the part


def blobs(centres, sigma=1.2):
    """[n, SIDE, SIDE] sum of Gaussian blobs; ``centres`` a list of [n, 2] (x, y) arrays."""
    yy, xx = np.mgrid[0:SIDE, 0:SIDE] + 0.5
    out = np.zeros((len(centres[0]), SIDE, SIDE), np.float32)
    for c in centres:
        out += np.exp(-((xx[None] - c[:, 0, None, None]) ** 2
                        + (yy[None] - c[:, 1, None, None]) ** 2) / (2 * sigma ** 2))
    return out


def channel_model(top_channels, low_channels):
    """Input [SIDE, SIDE, C] -> layer "top" (the channels ``top_channels``) and layer "low"
    (``low_channels``, summed into one filter each list), both 1x1 convs of the input."""
    c = 1 + max(max(top_channels), max(max(g) for g in low_channels))
    inputs = keras.Input((SIDE, SIDE, c))
    top_w = np.zeros((1, 1, c, len(top_channels)), np.float32)
    top_w[0, 0, top_channels, np.arange(len(top_channels))] = 1.0
    low_w = np.zeros((1, 1, c, len(low_channels)), np.float32)
    for j, group in enumerate(low_channels):
        low_w[0, 0, group, j] = 1.0
    top = keras.layers.Conv2D(len(top_channels), 1, use_bias=False, name="top")
    low = keras.layers.Conv2D(len(low_channels), 1, use_bias=False, name="low")
    t, l = top(inputs), low(inputs)
    pooled = keras.layers.GlobalAveragePooling2D()(keras.layers.Concatenate()([t, l]))
    model = keras.Model(inputs, keras.layers.Dense(2, name="head")(pooled))
    top.set_weights([top_w])
    low.set_weights([low_w])
    return model


@pytest.fixture(scope="module")
def two_level():
    """A part (channel 0, layer "top" filter 0) anywhere in the image; its two sub-patterns at
    fixed OFFSETS from it (channel 1, layer "low" filter 0, one filter firing on both); a
    distractor blob elsewhere (channel 2, "top" filter 1) so that the top layer's centroid is
    not the part."""
    rng = np.random.default_rng(0)
    n = 240
    part = rng.uniform(9, 23, (n, 2))
    other = rng.uniform(3, 29, (n, 2))
    images = np.stack([blobs([part]), blobs([part + OFFSETS[0], part + OFFSETS[1]]),
                       0.7 * blobs([other])], -1)
    return channel_model([0, 2], [[1]]), images, part
