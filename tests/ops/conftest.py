"""Shared by the ops tests and tests/test_losses.py: numpy references of the filter loss, a
hand-written guided ReLU."""
import numpy as np
import tensorflow as tf

from keras_icnn import templates


def _logsumexp(a, axis):
    m = a.max(axis=axis, keepdims=True)
    return m + np.log(np.exp(a - m).sum(axis=axis, keepdims=True))


@tf.custom_gradient
def guided_relu(x):
    y = tf.maximum(x, tf.zeros_like(x))  # not tf.nn.relu: the test patches it with this

    def grad(dy):
        return dy * tf.cast(dy > 0, dy.dtype) * tf.cast(x > 0, dy.dtype)

    return y, grad


def numpy_terms(x):
    """Float64 reference of the mini-batch estimator, written from SPEC §3."""
    x = np.asarray(x, np.float64)
    b, h, w, k = x.shape
    t = np.float64(templates.template_matrix(h, w))
    n_t = t.shape[1]
    log_prior = np.log(np.full(n_t, 1.0 / n_t))
    s = np.zeros((b, k, n_t))
    for bi in range(b):
        for ki in range(k):
            for ti in range(n_t):
                s[bi, ki, ti] = np.sum(x[bi, :, :, ki].reshape(-1) * t[:, ti])
    log_pxt = s - _logsumexp(s, 0)
    log_px = _logsumexp(log_pxt + log_prior, -1)[..., 0]
    return t, log_prior, log_pxt, log_px


def numpy_negative_mi(x):
    _, log_prior, log_pxt, log_px = numpy_terms(x)
    mi = np.zeros(log_pxt.shape[1])
    for ti in range(log_pxt.shape[2]):
        p = np.exp(log_pxt[:, :, ti])
        mi += np.exp(log_prior[ti]) * np.sum(p * (log_pxt[:, :, ti] - log_px), axis=0)
    return -mi
