"""Distillation's gradient ratio (ops/distillation.py) against numpy."""
import numpy as np

from keras_icnn.ops.distillation import gradient_ratio


def test_gradient_ratio_vs_numpy():
    rng = np.random.RandomState(5)
    task, filt = rng.normal(size=(2, 6, 3, 3, 4)).astype(np.float32)
    filt[:, :, :, 3] = 0.0  # a filter whose loss has no gradient: lambda 0, not inf
    norms = lambda g: np.sqrt((g.astype(np.float64) ** 2).sum((1, 2)))  # noqa: E731
    want = 0.2 * norms(task).mean(0) / np.where(norms(filt).mean(0) > 0, norms(filt).mean(0), 1)
    want[3] = 0.0
    np.testing.assert_allclose(gradient_ratio(task, filt, 0.2), want, rtol=1e-5)
