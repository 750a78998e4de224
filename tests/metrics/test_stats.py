import math

import numpy as np
import pytest

from keras_icnn.metrics import stats


def test_t_interval_by_hand_with_two_degrees_of_freedom():
    values = [0.012, 0.004, 0.009]
    r = stats.t_interval(values)
    mean = sum(values) / 3
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / 2)
    t975_2 = 4.302652729911275  # Student t, 97.5% quantile, 2 degrees of freedom (tables)
    assert r["mean"] == pytest.approx(mean) and r["dof"] == 2
    assert r["half_width"] == pytest.approx(t975_2 * sd / math.sqrt(3), rel=1e-9)
    with pytest.raises(ValueError, match="at least 2 units"):
        stats.t_interval([0.1])


def test_wilson_interval_by_hand():
    k, n, z = 12, 300, 1.959963984540054
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    r = stats.wilson_interval(k, n)
    assert r["low"] == pytest.approx(centre - half, rel=1e-9)
    assert r["high"] == pytest.approx(centre + half, rel=1e-9)
    assert stats.wilson_interval(0, 50)["low"] == pytest.approx(0.0, abs=1e-12)
    with pytest.raises(ValueError, match="`successes` must be <= n"):
        stats.wilson_interval(5, 4)


def test_mcnemar_exact_by_hand():
    # 8 images fooled on A only, 2 on B only, 20 on both, 70 on neither.
    a = np.array([1] * 8 + [0] * 2 + [1] * 20 + [0] * 70, bool)
    b = np.array([0] * 8 + [1] * 2 + [1] * 20 + [0] * 70, bool)
    r = stats.mcnemar_exact(a, b)
    p = 2 * sum(math.comb(10, i) for i in range(0, 3)) / 2 ** 10  # two-sided, min(8, 2) = 2
    assert (r["a_only"], r["b_only"], r["both"], r["neither"]) == (8, 2, 20, 70)
    assert r["p_value"] == pytest.approx(p, rel=1e-9)
    assert stats.mcnemar_exact(a, a)["p_value"] == 1.0


def test_bootstrap_interval_covers_a_paired_mean_difference():
    rng = np.random.default_rng(0)
    x = rng.normal(1.0, 1.0, 400)
    r = stats.bootstrap_interval(lambda i: x[i].mean(), len(x), repeats=500, seed=1)
    assert r["estimate"] == pytest.approx(x.mean())
    se = x.std(ddof=1) / math.sqrt(len(x))  # the normal approximation, by hand
    assert r["low"] == pytest.approx(x.mean() - 1.96 * se, abs=0.3 * se)
    assert r["high"] == pytest.approx(x.mean() + 1.96 * se, abs=0.3 * se)
