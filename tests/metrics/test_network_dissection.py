"""Network Dissection's dataset-wide IoU and unique detectors (issue 33) against numpy."""
import numpy as np
import pytest

from keras_icnn.metrics import network_dissection as nd


def _reference(maps, masks, q, thr):
    """Straight numpy: quantile threshold per filter, >, sums over images, IoU, detectors."""
    k = maps.shape[-1]
    t = np.quantile(maps.reshape(-1, k), 1 - q, axis=0)
    region = maps > t  # same size as the masks here: no upsampling
    inter = np.einsum("nhwk,nhwc->kc", region.astype(float), masks.astype(float))
    union = region.reshape(-1, k).sum(0)[:, None] + masks.reshape(-1, masks.shape[-1]).sum(0)[None] - inter
    iou = np.where(union > 0, inter / np.maximum(union, 1), 0)
    best = iou.argmax(1)
    det = iou.max(1) > thr
    return t, iou, best, det, len(set(best[det]))


def test_dissection_matches_numpy_with_ties_at_the_threshold():
    rng = np.random.default_rng(0)
    maps = rng.integers(0, 4, size=(5, 6, 6, 3)).astype(np.float32)  # many ties
    maps[..., 2] = 0.0
    maps[0, :2, :2, 2] = 1.0  # filter 2: 4 units of 180 above 0, all tied at 1
    masks = rng.random((5, 6, 6, 4)) < 0.3
    masks[0, :2, :2, 3] = True  # concept 3 contains filter 2's region
    q = 0.05
    got = nd.dissection(maps, masks, top_quantile=q, iou_threshold=0.04)
    t, iou, best, det, unique = _reference(maps, masks, q, 0.04)
    np.testing.assert_allclose(got["thresholds"], t)
    np.testing.assert_allclose(got["iou"], iou, rtol=1e-6)
    np.testing.assert_array_equal(got["best_concept"], best)
    np.testing.assert_array_equal(got["detectors"], det)
    assert got["unique_detectors"] == unique
    # Ties at the threshold are outside M_k (> T, as P(a > T) defines T): filter 2 has 176
    # zeros and 4 ones, its 95% quantile is 0, and its region is its 4 ones, all inside
    # concept 3.
    t2 = np.quantile(maps[..., 2], 1 - q)
    assert t2 == 0.0
    area3 = masks[..., 3].sum()
    assert got["iou"][2, 3] == pytest.approx(4 / area3)


def test_hand_computed_iou_and_unique_detectors():
    # Two images of 2x2; one filter fires on the top-left unit of both images.
    maps = np.zeros((2, 2, 2, 2), np.float32)
    maps[:, 0, 0, 0] = 5.0
    maps[0, 1, 1, 1] = 5.0  # filter 1: one unit
    masks = np.zeros((2, 2, 2, 2), bool)
    masks[0, 0, :, 0] = True  # concept 0: top row of image 0 (2 px)
    masks[1, 0, 0, 0] = True  # ... and the top-left pixel of image 1 (1 px)
    masks[:, 1, 1, 1] = True  # concept 1: bottom-right of both images (2 px)
    got = nd.dissection(maps, masks, top_quantile=0.2, iou_threshold=0.4)
    # Filter 0: region = top-left of both (2 px); with concept 0: inter 2, union 3 -> 2/3.
    assert got["iou"][0, 0] == pytest.approx(2 / 3)
    assert got["iou"][0, 1] == 0.0
    # Filter 1: seven zeros and one 5; the 80% quantile interpolates between two zeros: 0,
    # so its region (> 0) is its one unit: IoU with concept 1 (2 px) is 1/2.
    assert got["thresholds"][1] == 0.0
    assert got["iou"][1, 1] == pytest.approx(1 / 2)
    assert got["unique_detectors"] == len(set(got["best_concept"][got["detectors"]]))
    assert got["detectors"][0] and got["best_concept"][0] == 0


def test_upsampled_maps_are_thresholded_after_bilinear_upsampling():
    import tensorflow as tf

    rng = np.random.default_rng(1)
    maps = rng.random((3, 4, 4, 2)).astype(np.float32)
    masks = rng.random((3, 8, 8, 3)) < 0.2
    got = nd.dissection(maps, masks, top_quantile=0.1)
    t = np.quantile(maps.reshape(-1, 2), 0.9, axis=0)
    up = tf.image.resize(maps, (8, 8), method="bilinear").numpy() > t
    inter = np.einsum("nhwk,nhwc->kc", up.astype(float), masks.astype(float))
    union = up.reshape(-1, 2).sum(0)[:, None] + masks.reshape(-1, 3).sum(0)[None] - inter
    np.testing.assert_allclose(got["iou"], inter / union, rtol=1e-6)


@pytest.mark.parametrize("value", [0.0, 3.0])
def test_a_constant_filter_is_never_a_detector(value):
    # Issue 44: a dead (all-zero) or saturated (constant) filter's threshold is its value;
    # with >= its region was every pixel, a "detector" of the largest concept (IoU 0.5 here).
    rng = np.random.default_rng(2)
    maps = rng.random((4, 4, 4, 2)).astype(np.float32)
    maps[..., 1] = value
    masks = np.zeros((4, 4, 4, 1), bool)
    masks[:, :2] = True  # half of every image
    got = nd.dissection(maps, masks, top_quantile=0.1, iou_threshold=0.04)
    assert got["thresholds"][1] == value
    assert got["iou"][1, 0] == 0.0 and not got["detectors"][1]
    assert got["detector_count"] == int(got["detectors"][0])
    assert got["unique_detectors"] == int(got["detectors"][0])


def test_no_concept_is_a_clear_error():
    maps = np.ones((2, 4, 4, 3), np.float32)
    masks = np.zeros((2, 4, 4, 2), bool)
    with pytest.raises(ValueError, match="at least one concept"):
        nd.dissection(maps, masks[..., :0])
    with pytest.raises(ValueError, match="at least one concept"):
        nd.dissection_from_counts(np.zeros((3, 0)), np.zeros((3, 0)))


def test_category_part_concepts_and_ceiling():
    masks = np.zeros((3, 2, 2, 2), bool)
    masks[:, 0, 0, 0] = True
    masks[:, 1, 1, 1] = True
    concepts, names = nd.category_part_concepts(masks, [0, 1, 1], 2, ["head", "tail"],
                                                ["bird", "cat"])
    assert names == ["bird/head", "bird/tail", "cat/head", "cat/tail"]
    assert concepts.shape == (3, 2, 2, 4)
    np.testing.assert_array_equal(concepts.reshape(-1, 4).sum(0), [1, 1, 2, 2])
    assert not concepts[0, ..., 2:].any() and not concepts[1:, ..., :2].any()
    # 12 pixels, region 0.25 * 12 = 3 px: areas 1, 1, 2, 2 -> 1/3, 1/3, 2/3, 2/3.
    np.testing.assert_allclose(nd.iou_ceiling(concepts, 0.25), [1 / 3, 1 / 3, 2 / 3, 2 / 3])


def test_bad_input_is_named():
    with pytest.raises(ValueError, match="activation_maps"):
        nd.dissection(np.zeros((2, 3, 3)), np.zeros((2, 3, 3, 1), bool))
    with pytest.raises(ValueError, match="at least the maps' size"):
        nd.dissection(np.zeros((2, 8, 8, 1)), np.zeros((2, 4, 4, 1), bool))
    with pytest.raises(ValueError, match="same N"):
        nd.dissection(np.zeros((2, 4, 4, 1)), np.zeros((3, 4, 4, 1), bool))


def test_dissection_counts_from_parts_equal_the_concept_masks_counts():
    # The streaming evaluation derives the (category, part) counts from the part masks' own
    # counts; they must equal the counts of the concept masks built explicitly.
    rng = np.random.RandomState(3)
    maps = (rng.uniform(size=(40, 4, 4, 5)) ** 2).astype(np.float32)
    masks = rng.uniform(size=(40, 8, 8, 3)) < 0.3
    masks[:5] = False  # images without any part
    labels = rng.randint(0, 4, 40)
    thr = np.array([0.3, 0.6, 0.1, 5.0, 0.45], np.float32)  # filter 3: an empty region
    from keras_icnn import metrics

    concepts, _ = metrics.category_part_concepts(masks, labels, 4)
    want_i, want_u = metrics.dissection_counts(maps, concepts, thr)
    inter, union = metrics.region_counts(maps, masks, thr)
    got_i, got_u, areas = metrics.dissection_counts_from_parts(
        inter, union, masks.sum((1, 2)), labels, 4)
    np.testing.assert_array_equal(got_i, want_i)
    np.testing.assert_array_equal(got_u, want_u)
    np.testing.assert_array_equal(areas, concepts.reshape(-1, 12).sum(0))
    with pytest.raises(ValueError, match=r"`part_areas` \[N, P\]"):
        metrics.dissection_counts_from_parts(inter, union, masks.sum((1, 2))[:3], labels, 4)
