"""Few-shot part localisation and its baseline on parts placed by construction; the presence
mask of location instability."""
import numpy as np
import pytest

from keras_icnn.graphs import ExplanatoryGraph
from keras_icnn.graphs.localize import (
    FilterDetectors, NearestNeighbourParts, localize_parts, normalised_distance)
from keras_icnn.metrics import location_instability

SHIFT = np.array([2.0, -1.0])  # the annotated point, from the part


@pytest.fixture(scope="module")
def graph(two_level):
    model, images, _ = two_level
    return ExplanatoryGraph.fit(model, images[:160], layers=["top", "low"],
                                nodes_per_filter=[1, 2], parents_per_node=1, verbose=0)


def test_graph_nodes_localise_a_part_from_three_examples(graph, two_level):
    _, images, part = two_level
    landmarks = (part + SHIFT)[:, None]  # one part [N, 1, 2]
    found = localize_parts(graph, images[:3], landmarks[:3], images[160:], count=3)
    # every node sits on its pattern's unit: rounding a position to its unit's centre is the
    # only error left, at most a unit's half-diagonal in the node's position and as much in
    # its mean offset from the annotated images
    err = np.linalg.norm(found - landmarks[160:], axis=-1)
    assert err.max() < 2 * np.sqrt(0.5) + 1e-5 and err.mean() < 0.5
    mean, per_part = normalised_distance(found, landmarks[160:], images.shape[1:3])
    np.testing.assert_allclose(mean, err.mean() / np.hypot(32, 32))
    np.testing.assert_allclose(per_part, [mean])


def _unit_features(images):
    """The two layers' features of the channel model, by hand: "top" reads channels 0 and 2,
    "low" channel 1 (1x1 convs of the pixels), each L2-normalised. [N, 32*32, 3]"""
    def norm(x):  # tf.math.l2_normalize: x / sqrt(max(Σx², 1e-12))
        x = x.astype(np.float64)
        return x / np.sqrt(np.maximum((x ** 2).sum(-1, keepdims=True), 1e-12))
    return np.concatenate([norm(images[..., [0, 2]]), norm(images[..., [1]])],
                          -1).reshape(len(images), -1, 3)


def test_nearest_neighbour_baseline_equals_numpy(two_level):
    model, images, part = two_level
    landmarks = (part + SHIFT)[:, None]
    nn = NearestNeighbourParts(model, ["top", "low"]).fit(images[:2], landmarks[:2])
    found = nn.predict(images[200:])
    units = np.floor(landmarks[:2, 0, 1]).astype(int) * 32 + np.floor(landmarks[:2, 0, 0]).astype(int)
    protos = _unit_features(images[:2])[np.arange(2), units]  # [2, 3]
    sim = (_unit_features(images[200:]) @ protos.T).max(-1)  # [N, units]
    # the found unit is a most similar one (cosine ties are common on 3 features)
    at = np.floor(found[:, 0, 1]).astype(int) * 32 + np.floor(found[:, 0, 0]).astype(int)
    np.testing.assert_allclose(sim[np.arange(len(sim)), at], sim.max(-1), atol=1e-5)


def test_filter_detectors_are_the_maps_peaks(two_level):
    model, images, part = two_level
    inf = FilterDetectors(model, ["top"]).infer(images[:10])
    np.testing.assert_allclose(inf.positions[:, 0], np.floor(part[:10]) + 0.5)
    assert inf.present.all()


def test_hidden_part_on_every_annotated_image_is_refused(graph, two_level):
    _, images, _ = two_level
    with pytest.raises(ValueError, match="Parts never shown: \\[0\\]"):
        localize_parts(graph, images[:2], np.full((2, 1, 2), np.nan), images[2:4])


def test_normalised_distance_by_hand():
    pred = np.array([[[3.0, 4.0], [0.0, 0.0]], [[0.0, 0.0], [6.0, 8.0]]])
    truth = np.array([[[0.0, 0.0], [np.nan, np.nan]], [[0.0, 0.0], [0.0, 0.0]]])
    mean, per_part = normalised_distance(pred, truth, (6, 8))  # diagonal 10
    np.testing.assert_allclose(per_part, [0.25, 1.0])
    assert mean == pytest.approx(0.625)


def test_location_instability_counts_only_present_images():
    positions = np.array([[[0.0, 0.0]], [[3.0, 4.0]], [[30.0, 40.0]]])  # [N=3, F=1, 2]
    landmarks = np.zeros((3, 1, 2))
    scores = np.ones((3, 1))
    present = np.array([[True], [True], [False]])
    mean, dev = location_instability(positions, landmarks, (6, 8), scores, present=present)
    np.testing.assert_allclose(dev, [[np.std([0.0, 0.5])]])  # d = 0, 5/10; image 3 absent
    _, all_images = location_instability(positions, landmarks, (6, 8), scores)
    np.testing.assert_allclose(all_images, [[np.std([0.0, 0.5, 5.0])]])
    with pytest.raises(ValueError, match="`present` must be a bool array"):
        location_instability(positions, landmarks, (6, 8), scores, present=np.ones((3, 1)))


def _unit_centres():
    jj, ii = np.meshgrid(np.arange(32), np.arange(32))
    return np.stack([jj.ravel() + 0.5, ii.ravel() + 0.5], -1)  # [units, 2] (x, y), row-major


def _prior_scores(images, annotated, landmarks, prior, weight):
    """The appearance match minus the prior's penalty, by hand: [N, units]."""
    units = (np.floor(landmarks[:, 0, 1]).astype(int) * 32
             + np.floor(landmarks[:, 0, 0]).astype(int))
    protos = _unit_features(annotated)[np.arange(len(annotated)), units]
    sim = (_unit_features(images) @ protos.T).max(-1)
    d2 = ((_unit_centres()[None] - prior[:, 0][:, None]) ** 2).sum(-1)
    return sim - weight * d2 / (32.0 ** 2 + 32.0 ** 2)


def _at(found):
    return np.floor(found[:, 0, 1]).astype(int) * 32 + np.floor(found[:, 0, 0]).astype(int)


def test_prior_weighs_the_appearance_match_as_numpy(two_level):
    model, images, part = two_level
    landmarks = (part + SHIFT)[:, None]
    nn = NearestNeighbourParts(model, ["top", "low"]).fit(images[:2], landmarks[:2])
    prior = landmarks[200:] + np.array([4.0, 3.0])  # 5 px off the truth
    found = nn.predict(images[200:], prior=prior, prior_weight=20.0)
    score = _prior_scores(images[200:], images[:2], landmarks[:2], prior, 20.0)
    np.testing.assert_allclose(score[np.arange(len(score)), _at(found)], score.max(-1),
                               atol=1e-5)
    # a huge weight puts the part on the prior's unit; none gives the plain match
    np.testing.assert_allclose(nn.predict(images[200:], prior=prior, prior_weight=1e6),
                               np.floor(prior) + 0.5)
    np.testing.assert_allclose(nn.predict(images[200:], prior=prior, prior_weight=0.0),
                               nn.predict(images[200:]))
    with pytest.raises(ValueError, match=r"`prior` must be a finite \[N, 1, 2\] array"):
        nn.predict(images[200:], prior=prior[:, :, :1])
    with pytest.raises(ValueError, match="it has 39 rows, fewer than the images"):
        nn.predict(images[200:], prior=prior[1:])
    with pytest.raises(ValueError, match="it has 40 rows, more than the 39 images"):
        nn.predict(images[201:], prior=prior)


def test_refine_puts_the_nodes_prediction_under_the_appearance_match(graph, two_level):
    _, images, part = two_level
    landmarks = (part + SHIFT)[:, None]
    nodes = localize_parts(graph, images[:3], landmarks[:3], images[160:], count=3)
    found = localize_parts(graph, images[:3], landmarks[:3], images[160:], count=3, refine=5.0)
    score = _prior_scores(images[160:], images[:3], landmarks[:3], nodes, 5.0)
    np.testing.assert_allclose(score[np.arange(len(score)), _at(found)], score.max(-1),
                               atol=1e-5)
    with pytest.raises(ValueError, match="`refine`"):
        localize_parts(graph, images[:3], landmarks[:3], images[160:], refine=-1.0)
