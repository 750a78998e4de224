"""Gaussian blur (ops/imaging.py) against a numpy normalised convolution."""
import math

import numpy as np
import pytest

from keras_icnn.ops.imaging import gaussian_blur


def _numpy_blur(images, sigma):
    radius = max(1, int(math.ceil(3 * sigma)))
    t = np.arange(-radius, radius + 1)
    k = np.exp(-0.5 * (t / sigma) ** 2)
    k /= k.sum()
    n, h, w, c = images.shape
    out = np.zeros_like(images, dtype=np.float64)
    for i in range(h):  # the reference, written plainly
        for j in range(w):
            wsum, acc = 0.0, np.zeros((n, c))
            for di in t:
                for dj in t:
                    y, x = i + di, j + dj
                    if 0 <= y < h and 0 <= x < w:
                        weight = k[di + radius] * k[dj + radius]
                        wsum += weight
                        acc += weight * images[:, y, x, :]
            out[:, i, j, :] = acc / wsum
    return out


def test_blur_is_a_normalised_convolution_without_a_dark_rim():
    images = np.random.default_rng(0).uniform(0, 255, (2, 7, 9, 3)).astype("float32")
    np.testing.assert_allclose(gaussian_blur(images, 1.2).numpy(), _numpy_blur(images, 1.2),
                               rtol=1e-4, atol=1e-3)
    flat = np.full((1, 8, 8, 1), 100.0, np.float32)  # a constant image stays constant
    np.testing.assert_allclose(gaussian_blur(flat, 2.0).numpy(), flat, rtol=1e-5)
    with pytest.raises(ValueError, match="sigma"):
        gaussian_blur(flat, 0.0)
