"""Attribution maths (ops/attribution.py) against numpy."""
import numpy as np
import pytest

from keras_icnn.ops import attribution


def test_gradient_x_activation_grad_cam_and_pixel_maps_by_numpy():
    rng = np.random.default_rng(0)
    maps = rng.uniform(0, 2, (2, 3, 4, 5)).astype("float32")
    grads = rng.normal(size=(2, 3, 4, 5)).astype("float32")
    np.testing.assert_allclose(attribution.gradient_x_activation(maps, grads).numpy(),
                               (maps * grads).sum(axis=(1, 2)), rtol=1e-5)
    weights = grads.mean(axis=(1, 2))  # Grad-CAM: ReLU(Σ_f mean_ij(g_f) · maps_f)
    want = np.maximum(np.einsum("bhwf,bf->bhw", maps, weights), 0)
    np.testing.assert_allclose(attribution.grad_cam(maps, grads).numpy(), want, rtol=1e-5,
                               atol=1e-6)
    images = rng.uniform(0, 255, (2, 6, 6, 3)).astype("float32")
    g = rng.normal(size=(2, 6, 6, 3)).astype("float32")
    swapped = rng.normal(size=(2, 6, 6, 3)).astype("float32")
    out = attribution.pixel_maps(images, g, {"deconvnet": swapped})
    np.testing.assert_allclose(out["saliency"].numpy(), np.abs(g).max(-1), rtol=1e-6)
    np.testing.assert_allclose(out["gradient_x_input"].numpy(), (images * g).sum(-1), rtol=1e-5)
    np.testing.assert_allclose(out["deconvnet"].numpy(), np.abs(swapped).max(-1), rtol=1e-6)
    assert set(attribution.pixel_maps(images, g)) == {"saliency", "gradient_x_input"}
    with pytest.raises(ValueError, match=r"`maps` must be \[batch, h, w, filters\]"):
        attribution.grad_cam(maps[0], grads)
