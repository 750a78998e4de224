import keras
import numpy as np
import pytest

from keras_icnn import metrics


def ref_instability(pos, lm, size, scores, top_k):
    n, f, _ = pos.shape
    p = lm.shape[1]
    diag = np.sqrt(size[0] ** 2 + size[1] ** 2)
    d = np.full((f, p), np.nan)
    for fi in range(f):
        for k in range(p):
            imgs = [i for i in range(n) if np.isfinite(lm[i, k, 0])]
            imgs = sorted(imgs, key=lambda i: -scores[i, fi])[:top_k]
            if imgs:
                dist = [np.linalg.norm(lm[i, k] - pos[i, fi]) / diag for i in imgs]
                d[fi, k] = np.std(dist)
    return np.nanmean(d), d


def _random_case(seed, n=40, f=5, p=3):
    rng = np.random.RandomState(seed)
    pos = rng.uniform(0, 64, (n, f, 2))
    lm = rng.uniform(0, 64, (n, p, 2))
    lm[rng.uniform(size=(n, p)) < 0.3] = np.nan
    scores = rng.uniform(size=(n, f))
    return pos, lm, scores


def test_location_instability_matches_reference():
    pos, lm, scores = _random_case(0)
    for top_k in (100, 10, 1):
        got, d = metrics.location_instability(pos, lm, (64, 48), scores, top_k=top_k)
        want, dref = ref_instability(pos, lm, (64, 48), scores, top_k)
        np.testing.assert_allclose(d, dref, rtol=1e-10, atol=1e-12)
        assert got == pytest.approx(want)


def test_filter_on_landmark_has_zero_instability():
    _, lm, scores = _random_case(1, f=1, p=2)
    lm[:, 1] = np.nan
    lm[0, 1] = [3.0, 4.0]
    pos = lm[:, :1, :].copy()
    pos[~np.isfinite(pos)] = 0.0
    got, d = metrics.location_instability(np.nan_to_num(lm[:, :1]), lm, (64, 64), scores)
    assert d[0, 0] == 0.0
    assert d[0, 1] == 0.0  # a single image: no spread


def test_multi_category_instability_matches_reference():
    pos, lm, scores = _random_case(2, n=60)
    labels = np.arange(60) % 3
    got, chosen, classes = metrics.location_instability_multi(pos, lm, labels, (64, 64), scores, 3,
                                                              top_k=7)
    per_class = np.stack([ref_instability(pos[labels == c], lm[labels == c], (64, 64),
                                          scores[labels == c], 7)[1] for c in range(3)], 1)
    want_classes = np.nanmean(per_class, axis=2).argmin(1)
    np.testing.assert_array_equal(classes, want_classes)
    np.testing.assert_allclose(chosen, per_class[np.arange(5), want_classes], rtol=1e-10)
    assert got == pytest.approx(np.mean(np.nanmean(per_class[np.arange(5), want_classes], 1)))
    _, _, act = metrics.location_instability_multi(pos, lm, labels, (64, 64), scores, 3,
                                                   rule="most_activated")
    mean_scores = np.stack([scores[labels == c].mean(0) for c in range(3)], 1)
    np.testing.assert_array_equal(act, mean_scores.argmax(1))


def ref_part_interpretability(maps, masks, q, thr):
    n, h, w, f = maps.shape
    p = masks.shape[-1]
    t = np.quantile(maps.reshape(-1, f), 1 - q, axis=0)
    pk = np.zeros((f, p))
    for fi in range(f):
        for k in range(p):
            hits, count = 0, 0
            for i in range(n):
                if not masks[i, :, :, k].any():
                    continue
                region = maps[i, :, :, fi] > t[fi]
                inter = np.sum(region & masks[i, :, :, k])
                union = np.sum(region | masks[i, :, :, k])
                count += 1
                hits += (inter / union if union else 0.0) > thr
            pk[fi, k] = hits / count if count else 0.0
    return pk.max(1).mean(), pk


def test_part_interpretability_matches_reference():
    rng = np.random.RandomState(3)
    maps = rng.uniform(size=(12, 10, 10, 4)) ** 4
    masks = rng.uniform(size=(12, 10, 10, 3)) < 0.15
    masks[0, ..., 2] = False
    for q in (0.005, 0.1):
        got, p_f, p = metrics.part_interpretability(maps, masks, top_quantile=q, iou_threshold=0.05)
        want, pref = ref_part_interpretability(maps, masks, q, 0.05)
        np.testing.assert_allclose(p, pref)
        assert got == pytest.approx(want)


def test_region_counts_match_numpy_with_upsampling():
    # 5x5 maps against 10x10 masks: bilinear upsampling (upsample_maps), threshold, counts.
    rng = np.random.RandomState(8)
    maps = (rng.uniform(size=(70, 5, 5, 4)) ** 3).astype(np.float32)
    masks = rng.uniform(size=(70, 10, 10, 3)) < 0.2
    thr = np.array([0.2, 0.5, 0.05, 2.0], np.float32)  # the last: an empty region
    inter, union = metrics.region_counts(maps, masks, thr, chunk=32)
    region = metrics.upsample_maps(maps, (10, 10)) > thr
    want_i = np.einsum("nhwf,nhwp->nfp", region.astype(np.int64), masks.astype(np.int64))
    want_u = np.logical_or(region[..., :, None], masks[..., None, :]).sum((1, 2))
    np.testing.assert_array_equal(inter, want_i)
    np.testing.assert_array_equal(union, want_u)
    iou = metrics.part_ious(maps, masks, thr)
    np.testing.assert_allclose(iou, np.where(want_u > 0, want_i / np.maximum(want_u, 1), 0),
                               rtol=1e-6)
    # T threshold sets at once: each set's counts as if asked alone.
    sets = np.stack([thr, thr[::-1], np.full(4, 0.1, np.float32)])
    inter_t, union_t = metrics.region_counts(maps, masks, sets, chunk=32)
    assert inter_t.shape == (3, 70, 4, 3)
    for t in range(3):
        region = metrics.upsample_maps(maps, (10, 10)) > sets[t]
        np.testing.assert_array_equal(inter_t[t], np.einsum(
            "nhwf,nhwp->nfp", region.astype(np.int64), masks.astype(np.int64)))
        np.testing.assert_array_equal(union_t[t], np.logical_or(
            region[..., :, None], masks[..., None, :]).sum((1, 2)))
    with pytest.raises(ValueError, match=r"`thresholds` must be \[F\] or \[T, F\] with F = 4"):
        metrics.region_counts(maps, masks, thr[:3])


def test_perfect_part_detector_scores_one():
    rng = np.random.RandomState(4)
    masks = np.zeros((20, 16, 16, 2), bool)
    for i in range(20):
        y, x = rng.randint(0, 12, 2)
        masks[i, y:y + 4, x:x + 4, 0] = True
    maps = masks[..., :1].astype(np.float32) * rng.uniform(1, 2, (20, 1, 1, 1))
    # Threshold at the quantile that leaves exactly the part pixels above it.
    frac = masks[..., 0].mean()
    got, p_f, p = metrics.part_interpretability(maps, masks, top_quantile=frac * 0.999)
    assert got == 1.0 and p[0, 0] == 1.0


def test_bilinear_upsampling_matches_numpy():
    rng = np.random.RandomState(5)
    small = rng.uniform(size=(1, 2, 3, 1)).astype(np.float32)
    up = metrics.upsample_maps(small, (4, 6))[0, :, :, 0]

    def coords(n_out, n_in):
        src = (np.arange(n_out) + 0.5) * n_in / n_out - 0.5
        src = np.clip(src, 0, n_in - 1)
        lo = np.floor(src).astype(int)
        hi = np.minimum(lo + 1, n_in - 1)
        return lo, hi, src - lo

    ylo, yhi, wy = coords(4, 2)
    xlo, xhi, wx = coords(6, 3)
    s = small[0, :, :, 0]
    ref = ((1 - wy)[:, None] * ((1 - wx) * s[ylo][:, xlo] + wx * s[ylo][:, xhi])
           + wy[:, None] * ((1 - wx) * s[yhi][:, xlo] + wx * s[yhi][:, xhi]))
    np.testing.assert_allclose(up, ref, rtol=1e-5)
    np.testing.assert_array_equal(metrics.upsample_maps(small, (2, 3)), small)


def test_l1_density():
    g = np.array([[1.0, 0.0, 0.5], [0.25, 1.0, 0.0]])
    assert metrics.l1_density(g) == pytest.approx(2.75 / 6)


def test_bad_metric_inputs():
    with pytest.raises(ValueError, match=r"`part_positions` must be \[N, F, 2\]"):
        metrics.location_instability(np.zeros((3, 2)), np.zeros((3, 1, 2)), (8, 8), np.zeros((3, 2)))
    with pytest.raises(ValueError, match=r"`scores` must be \[N, F\]"):
        metrics.location_instability(np.zeros((3, 2, 2)), np.zeros((3, 1, 2)), (8, 8), np.zeros(3))
    with pytest.raises(ValueError, match=r"labels` must lie in \[0, 2\)"):
        metrics.mutual_information_matrix(np.zeros((3, 2)), [0, 1, 2], 2)
