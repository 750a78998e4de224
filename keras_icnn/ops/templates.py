"""Part templates of Interpretable CNNs (Zhang et al., CVPR 2018, §3).

A feature map of one filter is an ``h x w`` matrix. For every location
``mu = (mu_i, mu_j)`` there is one positive template

    T_mu[i, j] = tau * max(1 - beta * (|i - mu_i| + |j - mu_j|) / n, -1),

with ``n = max(h, w)``, and there is one negative template ``T-[i, j] = -tau``.
All templates are stored once as the columns of a constant matrix so that the
fitness score ``s_T(x) = sum_ij x_ij T_ij`` of every filter, image and
template is a single matmul (see ``keras_icnn.losses``).

Pure functions, numpy in and out; nothing here holds state.
"""

import numpy as np

from keras_icnn import validation

DEFAULT_BETA = 4.0


def _check_map_size(h, w):
    h, w = validation.positive_int(h, "h"), validation.positive_int(w, "w")
    if h < 2 or w < 2:
        raise ValueError(
            "Part templates need a feature map of at least 2x2 (one location "
            f"is not a part location). Received: h={h}, w={w}"
        )
    return h, w


def default_tau(h, w):
    """The paper's template scale ``tau = 0.5 / n**2`` with ``n = max(h, w)``."""
    h, w = validation.positive_int(h, "h"), validation.positive_int(w, "w")
    return 0.5 / float(max(int(h), int(w))) ** 2


def l1_distance_matrix(h, w):
    """L1 grid distances between all pairs of locations of an ``h x w`` map.

    Returns:
        float32 array ``[h*w, h*w]``; entry ``[p, m]`` is
        ``|i_p - i_m| + |j_p - j_m|`` where ``(i, j) = divmod(index, w)``.
    """
    h, w = _check_map_size(h, w)
    ii, jj = np.divmod(np.arange(h * w), w)
    dist = np.abs(ii[:, None] - ii[None, :]) + np.abs(jj[:, None] - jj[None, :])
    return dist.astype(np.float32)


def template_matrix(h, w, beta=DEFAULT_BETA, tau=None):
    """All part templates of an ``h x w`` map as one matrix.

    Args:
        h, w: feature-map height and width (each at least 2).
        beta: template sharpness (the paper's beta, default 4).
        tau: template scale; defaults to ``0.5 / max(h, w)**2``.

    Returns:
        float32 array ``M`` of shape ``[h*w, h*w + 1]``. Column ``m < h*w`` is
        the positive template ``T_mu`` for ``mu = divmod(m, w)``, flattened
        row-major (row ``p`` is location ``divmod(p, w)``); the last column is
        the negative template ``T-``.

    Example:
        >>> M = template_matrix(3, 3)
        >>> M.shape
        (9, 10)
    """
    h, w = _check_map_size(h, w)
    beta = validation.number_in(beta, "beta", low=0, low_open=True)
    if tau is None:
        tau = default_tau(h, w)
    if not tau > 0:
        raise ValueError(f"`tau` must be positive. Received: tau={tau}")
    n = float(max(h, w))
    dist = l1_distance_matrix(h, w).astype(np.float64)
    positive = tau * np.maximum(1.0 - beta * dist / n, -1.0)
    negative = np.full((h * w, 1), -tau)
    return np.concatenate([positive, negative], axis=1).astype(np.float32)


def location_mask(h, w, mu, beta=DEFAULT_BETA):
    """The PartMask for one part location: the template without ``tau``, clipped at 0.

    Args:
        h, w: feature-map size.
        mu: ``(i, j)`` location of the part on the map.
        beta: template sharpness.

    Returns:
        float32 array ``[h, w]`` with ``max(1 - beta * ||(i, j) - mu||_1 / n, 0)``.
    """
    h, w = _check_map_size(h, w)
    mu_i, mu_j = int(mu[0]), int(mu[1])
    if not (0 <= mu_i < h and 0 <= mu_j < w):
        raise ValueError(
            f"`mu` must lie on the {h}x{w} map. Received: mu={tuple(mu)}"
        )
    n = float(max(h, w))
    ii, jj = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
    dist = np.abs(ii - mu_i) + np.abs(jj - mu_j)
    return np.maximum(1.0 - beta * dist / n, 0.0).astype(np.float32)


def uniform_log_priors(h, w, alpha=None):
    """Log prior probabilities of the ``h*w + 1`` templates.

    ``p(T_mu) = alpha / (h*w)`` and ``p(T-) = 1 - alpha``; the default
    ``alpha = hw / (1 + hw)`` makes every template equally likely.

    Returns:
        float32 array ``[h*w + 1]`` of log priors (last entry is ``T-``).
    """
    h, w = _check_map_size(h, w)
    hw = h * w
    if alpha is None:
        alpha = hw / (1.0 + hw)
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"`alpha` must lie in (0, 1). Received: alpha={alpha}")
    logp = np.full((hw + 1,), np.log(alpha / hw))
    logp[-1] = np.log1p(-alpha)
    return logp.astype(np.float32)
