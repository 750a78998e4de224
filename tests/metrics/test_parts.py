"""Part consistency and stability (SPEC §12) against hand-counted cases and a loop reference."""
import numpy as np
import pytest

from keras_icnn.metrics.parts import PartCounts, part_consistency, part_coverage, part_stability


def test_coverage_is_the_square_around_the_peak():
    positions = np.array([[[10.0, 10.0]]])  # one image, one filter
    landmarks = np.array([[[14.0, 6.0], [15.0, 10.0], [np.nan, np.nan]]])
    # image 32 x 32, half-side 4/32: the square [6, 14] x [6, 14]
    cover = part_coverage(positions, landmarks, (32, 32), half_side=4 / 32)
    np.testing.assert_array_equal(cover, [[[True, False, False]]])


def _reference(positions, landmarks, labels, classes, size, half, noisy):
    """Loops over filters, images and landmarks, as the paper's evaluation code does."""
    n, f = positions.shape[:2]
    p = landmarks.shape[1]
    o = np.zeros((f, p))
    stable = np.zeros(f)
    for j in range(f):
        mine = [i for i in range(n) if labels[i] == classes[j]]
        for k in range(p):
            shown = [i for i in mine if np.isfinite(landmarks[i, k, 0])]
            inside = [i for i in shown
                      if abs(landmarks[i, k, 0] - positions[i, j, 0]) <= half * size[1]
                      and abs(landmarks[i, k, 1] - positions[i, j, 1]) <= half * size[0]]
            o[j, k] = len(inside) / max(len(shown), 1)
        same = 0
        for i in mine:
            def covered(pos):
                return {k for k in range(p) if np.isfinite(landmarks[i, k, 0])
                        and abs(landmarks[i, k, 0] - pos[0]) <= half * size[1]
                        and abs(landmarks[i, k, 1] - pos[1]) <= half * size[0]}
            same += covered(positions[i, j]) == covered(noisy[i, j])
        stable[j] = same / max(len(mine), 1)
    return o, stable


def test_scores_equal_the_loop_reference_and_stream_in_batches():
    rng = np.random.default_rng(0)
    n, f, p, c, size = 40, 5, 4, 3, (48, 64)
    labels = rng.integers(0, c, n)
    landmarks = rng.uniform(0, 48, (n, p, 2))
    landmarks[rng.random((n, p)) < 0.2] = np.nan
    # filters 0 and 1 sit on landmark 0 and 2 of their images; the rest anywhere
    positions = rng.uniform(0, 48, (n, f, 2))
    positions[:, 0] = np.nan_to_num(landmarks[:, 0], nan=5.0) + rng.normal(0, 1, (n, 2))
    positions[:, 1] = np.nan_to_num(landmarks[:, 2], nan=5.0) + rng.normal(0, 1, (n, 2))
    noisy = positions + rng.normal(0, 3, positions.shape) * (rng.random((n, f, 1)) < 0.5)
    classes = np.array([0, 1, 2, 0, 1])
    half = 0.1
    o_ref, stable_ref = _reference(positions, landmarks, labels, classes, size, half, noisy)
    score, o, consistent = part_consistency(positions, landmarks, labels, classes, size, half)
    np.testing.assert_allclose(o, o_ref)
    np.testing.assert_array_equal(consistent, o_ref.max(1) >= 0.8)
    assert consistent[0] and consistent[1] and score == pytest.approx(consistent.mean())
    s, per_filter = part_stability(positions, noisy, landmarks, labels, classes, size, half)
    np.testing.assert_allclose(per_filter, stable_ref)
    assert s == pytest.approx(stable_ref.mean())
    # streamed in three batches: the same counts
    counts = PartCounts(f, p, c, size, half)
    for a, b in ((0, 7), (7, 30), (30, 40)):
        counts.update(positions[a:b], landmarks[a:b], labels[a:b], noisy[a:b])
    np.testing.assert_allclose(counts.consistency(classes)[1], o_ref)
    np.testing.assert_allclose(counts.stability(classes)[1], stable_ref)


def test_bad_input_is_named():
    with pytest.raises(ValueError, match="one class per filter"):
        part_consistency(np.zeros((2, 3, 2)), np.zeros((2, 1, 2)), [0, 1], [0, 1], (8, 8))
    with pytest.raises(ValueError, match="must match"):
        part_stability(np.zeros((2, 3, 2)), np.zeros((2, 2, 2)), np.zeros((2, 1, 2)), [0, 1],
                       [0, 0, 1], (8, 8))
