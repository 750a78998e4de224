import numpy as np
import pytest

from keras_icnn.ops import templates


def test_template_matrix_hand_computed_3x3():
    m = templates.template_matrix(3, 3)
    tau = 0.5 / 9
    assert m.shape == (9, 10) and m.dtype == np.float32
    a = -1.0 / 3.0  # 1 - 4 * 1 / 3
    # mu = (0, 0): L1 distances [[0,1,2],[1,2,3],[2,3,4]] -> 1 - 4d/3 clipped at -1
    np.testing.assert_allclose(m[:, 0], tau * np.array([1, a, -1, a, -1, -1, -1, -1, -1]), rtol=1e-6)
    # mu = (1, 1) is column 4
    np.testing.assert_allclose(m[:, 4], tau * np.array([-1, a, -1, a, 1, a, -1, a, -1]), rtol=1e-6)
    np.testing.assert_allclose(m[:, 9], -tau * np.ones(9), rtol=1e-6)


def test_template_matrix_rectangular_and_custom_beta_tau():
    m = templates.template_matrix(2, 3, beta=1.0, tau=2.0)  # n = 3
    assert m.shape == (6, 7)
    # column m=4 is mu = divmod(4, 3) = (1, 1); row p=0 is (0, 0): distance 2
    assert m[0, 4] == pytest.approx(2.0 * (1 - 2 / 3))
    assert m[4, 4] == pytest.approx(2.0)
    assert m[2, 3] == pytest.approx(2.0 * max(1 - 3 / 3, -1))  # (0,2) vs (1,0): d=3
    assert templates.default_tau(2, 3) == pytest.approx(0.5 / 9)


def test_location_mask_hand_case():
    np.testing.assert_array_equal(
        templates.location_mask(3, 3, (1, 1)), np.diag([0, 1, 0]).astype(np.float32))
    expected = np.array([[1, 2, 1], [2, 3, 2], [1, 2, 1]]) / 3.0
    np.testing.assert_allclose(templates.location_mask(3, 3, (1, 1), beta=1.0), expected, rtol=1e-6)


def test_priors_uniform():
    logp = templates.uniform_log_priors(3, 4)
    np.testing.assert_allclose(np.exp(logp), np.full(13, 1 / 13), rtol=1e-6)


@pytest.mark.parametrize("h,w", [(1, 5), (5, 1)])
def test_too_small_map_is_rejected(h, w):
    with pytest.raises(ValueError, match="at least 2x2"):
        templates.template_matrix(h, w)


def test_mask_location_outside_map():
    with pytest.raises(ValueError, match=r"must lie on the 3x3 map. Received: mu=\(3, 0\)"):
        templates.location_mask(3, 3, (3, 0))
