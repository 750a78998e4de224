import numpy as np
import pytest

from keras_icnn import metrics


def test_mutual_information_matrix_is_sklearns_estimate():
    # Same numbers as sklearn's mutual_info_classif per class: continuous and tied
    # (discrete-valued) columns, a constant column, a class with a single image.
    from sklearn.feature_selection import mutual_info_classif

    rng = np.random.RandomState(9)
    x = rng.gamma(2.0, size=(300, 6)) * [1, 10, 0.1, 1, 1, 1]
    x[:, 3] = 0.0
    x[:, 4] = np.round(x[:, 4])
    labels = rng.randint(0, 4, 300)
    labels[7] = 4  # the only image of class 4
    got = metrics.mutual_information_matrix(x, labels, 5, random_state=11)
    want = np.stack([mutual_info_classif(x, (labels == c).astype(int), random_state=11)
                     for c in range(5)], axis=1)
    np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12)


def test_mis_of_one_hot_features_is_binary_entropy_and_noise_near_zero():
    rng = np.random.RandomState(6)
    labels = rng.choice(3, size=600, p=[0.5, 0.3, 0.2])
    onehot = np.eye(3)[labels]
    freq = np.bincount(labels, minlength=3) / len(labels)
    entropy = -(freq * np.log(freq) + (1 - freq) * np.log(1 - freq))
    m = metrics.mutual_information_matrix(onehot, labels, 3)
    np.testing.assert_allclose(m.max(1), entropy, atol=0.03)
    assert metrics.mutual_information_score(onehot, labels, 3) == pytest.approx(entropy.mean(), abs=0.03)
    noise = rng.normal(size=(600, 4))
    assert metrics.mutual_information_score(noise, labels, 3) < 0.03
    # The ceiling is the largest class entropy, here that of the 0.5 class: ln 2.
    assert metrics.mutual_information_ceiling(labels, 3) == pytest.approx(entropy.max(), rel=1e-12)
    assert metrics.mutual_information_ceiling(np.repeat(np.arange(6), 10), 6) == pytest.approx(
        -(np.log(1 / 6) / 6 + 5 / 6 * np.log(5 / 6)), rel=1e-12)
