"""Intervals and paired tests for comparing two models (CSG's detection and black-box tables).

The unit of a comparison is what was drawn independently: a model pair (seed) for
"is CSG better than STD", a test image within one pair. So:

* :func:`t_interval` — a mean over a few independent units (3 pairs: 2 degrees of freedom);
* :func:`bootstrap_interval` — a statistic of one pair's test images, resampled;
* :func:`wilson_interval` — a success rate (an attack's, out of n images);
* :func:`mcnemar_exact` — two models attacked on the same images: the discordant pairs.

Example:
    >>> lo, hi = t_interval([0.012, 0.004, 0.009])        # STD - CSG error, per pair
    >>> wilson_interval(12, 300)                           # 4% success, its 95% interval
    >>> mcnemar_exact(std_fooled, csg_fooled)["p_value"]  # same images, both models
"""

import math

import numpy as np

from keras_icnn import validation


def _confidence(confidence):
    return validation.number_in(confidence, "confidence", 0.0, 1.0, low_open=True,
                                high_open=True)


def t_interval(values, confidence=0.95):
    """Student-t interval of the mean of ``values`` (independent units).

    Returns:
        dict: ``mean``, ``low``, ``high``, ``half_width``, ``dof`` (``n - 1``) and ``n``.
    """
    from scipy import stats

    v = np.asarray(values, np.float64).ravel()
    if v.size < 2:
        raise ValueError(f"`values` must hold at least 2 units for a t interval. Received: "
                         f"{v.size}")
    if not np.isfinite(v).all():
        raise ValueError("`values` must be finite")
    q = float(stats.t.ppf(0.5 + _confidence(confidence) / 2.0, v.size - 1))
    mean, half = float(v.mean()), q * float(v.std(ddof=1)) / math.sqrt(v.size)
    return {"mean": mean, "low": mean - half, "high": mean + half, "half_width": half,
            "dof": int(v.size - 1), "n": int(v.size)}


def bootstrap_interval(statistic, n, repeats=2000, confidence=0.95, seed=0):
    """Percentile bootstrap interval of ``statistic(indices)`` over ``n`` units.

    Args:
        statistic: a function of an int array of ``n`` indices drawn with replacement
            (e.g. ``lambda i: err_std[i].mean() - err_csg[i].mean()``, paired by image).
        n: number of units (test images).
        repeats: bootstrap resamples.
        confidence: the interval's coverage.
        seed: seed of the resampling.

    Returns:
        dict: ``estimate`` (the statistic on all units), ``low``, ``high``, ``repeats``.
    """
    n = validation.positive_int(n, "n")
    repeats = validation.positive_int(repeats, "repeats")
    c = _confidence(confidence)
    rng = np.random.default_rng(seed)
    draws = np.array([statistic(rng.integers(0, n, n)) for _ in range(repeats)], np.float64)
    low, high = np.quantile(draws, [(1 - c) / 2, 1 - (1 - c) / 2])
    return {"estimate": float(statistic(np.arange(n))), "low": float(low), "high": float(high),
            "repeats": int(repeats)}


def wilson_interval(successes, n, confidence=0.95):
    """Wilson score interval of a success rate ``successes / n``.

    Returns:
        dict: ``rate``, ``low``, ``high``, ``successes``, ``n``.
    """
    from scipy import stats

    n = validation.positive_int(n, "n")
    k = validation.non_negative_int(successes, "successes")
    if k > n:
        raise ValueError(f"`successes` must be <= n = {n}. Received: successes={k}")
    z = float(stats.norm.ppf(0.5 + _confidence(confidence) / 2.0))
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return {"rate": p, "low": centre - half, "high": centre + half, "successes": k, "n": n}


def mcnemar_exact(a, b):
    """Exact McNemar test of two paired binary outcomes (e.g. "the attack fooled model A /
    model B" on the same images): a two-sided binomial test on the discordant pairs.

    Args:
        a, b: bool arrays of the same length (one entry per image).

    Returns:
        dict: ``a_only`` (a true, b false), ``b_only``, ``both``, ``neither``, ``p_value``.
    """
    from scipy import stats

    a, b = np.asarray(a).astype(bool).ravel(), np.asarray(b).astype(bool).ravel()
    if a.shape != b.shape or a.size == 0:
        raise ValueError(f"`a` and `b` must be paired outcomes of the same non-zero length. "
                         f"Received: {a.size} and {b.size}")
    a_only, b_only = int(np.sum(a & ~b)), int(np.sum(~a & b))
    discordant = a_only + b_only
    p = 1.0 if discordant == 0 else float(
        stats.binomtest(a_only, discordant, 0.5, alternative="two-sided").pvalue)
    return {"a_only": a_only, "b_only": b_only, "both": int(np.sum(a & b)),
            "neither": int(np.sum(~a & ~b)), "p_value": p}
