import keras
import numpy as np
import pytest

from keras_icnn import metrics


def _iou(a, b):
    union = np.sum(a | b)
    return np.sum(a & b) / union if union else 0.0


def test_activation_map_localization_matches_reference():
    rng = np.random.RandomState(0)
    n, k, c = 18, 3, 3
    maps = rng.uniform(size=(n, 8, 8, k)) ** 3
    masks = np.zeros((n, 8, 8), bool)
    for i in range(n):
        y, x = rng.randint(0, 5, 2)
        masks[i, y:y + 4, x:x + 3] = True
    labels = np.arange(n) % c
    out = metrics.activation_map_localization(maps, masks, labels, c)
    t = np.quantile(maps.reshape(-1, k), 0.7, axis=0)
    iou = np.array([[_iou(maps[i, :, :, f] > t[f], masks[i]) for f in range(k)] for i in range(n)])
    ious, ap20, ap30 = [], [], []
    for f in range(k):
        ap20_c = [np.mean([iou[i, f] >= 0.2 for i in range(n) if labels[i] == cc]) for cc in range(c)]
        ap30_c = [np.mean([iou[i, f] >= 0.3 for i in range(n) if labels[i] == cc]) for cc in range(c)]
        best = int(np.argmax(ap20_c))
        ious.append(np.mean([iou[i, f] for i in range(n) if labels[i] == best]))
        ap20.append(max(ap20_c))
        ap30.append(max(ap30_c))
    assert out["avg_iou"] == pytest.approx(np.mean(ious))
    assert out["ap20"] == pytest.approx(np.mean(ap20))
    assert out["ap30"] == pytest.approx(np.mean(ap30))


def test_cam_perfect_localization():
    masks = np.zeros((4, 10, 10), bool)
    masks[:, 0:5, 0:6] = True  # 30% of the image
    maps = np.zeros((4, 10, 10, 2))
    maps[..., 0] = masks * 2.0  # filter 0 covers the object
    maps[..., 1] = 1.0 - masks
    kernel = np.array([[1.0, 0.0], [0.0, 1.0]])  # class 0 <- filter 0, class 1 <- filter 1
    out = metrics.cam_localization(maps, kernel, masks, np.zeros(4, int))
    assert out["avg_iou"] == 1.0 and out["ap30"] == 1.0
    wrong = metrics.cam_localization(maps, kernel, masks, np.ones(4, int))
    assert wrong["avg_iou"] == 0.0


def test_filter_correlation_redundancy_and_cic():
    kernel = np.zeros((1, 1, 2, 4))
    kernel[0, 0, :, 0] = [1, 0]
    kernel[0, 0, :, 1] = [2, 0]
    kernel[0, 0, :, 2] = [0, 1]
    kernel[0, 0, :, 3] = [1, 1]
    corr = metrics.filter_correlation(kernel)
    s = 1 / np.sqrt(2)
    expected = np.array([[1, 1, 0, s], [1, 1, 0, s], [0, 0, 1, s], [s, s, s, 1]])
    np.testing.assert_allclose(corr, expected, atol=1e-12)
    assert metrics.redundancy_ratio(corr, 0.1) == pytest.approx(8 / 12)
    act = np.array([[5.0, 4.0, 0.0, 0.0], [0.0, 0.0, 3.0, 1.0]])  # A_0 = {0,1}, A_1 = {2,3}
    # pairs between groups: (0,2)=0,(0,3)=s,(1,2)=0,(1,3)=s, both directions
    assert metrics.inter_class_correlation(corr, act, 2) == pytest.approx(2 * 2 * s / (2 * 1 * 4))
