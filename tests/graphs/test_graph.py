"""ExplanatoryGraph: what it learns on patterns built to be learned, its maths against numpy,
save/load."""
import numpy as np
import pytest

from keras_icnn.graphs import ExplanatoryGraph
from tests.graphs.conftest import OFFSETS, SIDE, blobs, channel_model


@pytest.fixture(scope="module")
def fitted(two_level):
    model, images, _ = two_level
    return ExplanatoryGraph.fit(model, images, layers=["top", "low"], nodes_per_filter=[1, 2],
                                parents_per_node=1, verbose=0)


def test_two_sub_patterns_hang_from_their_part_at_the_built_offsets(fitted):
    low = fitted.params[1]
    assert np.all(low.parents[0, :, 0] == 0)  # both nodes' parent: the part (top filter 0)
    got = low.delta[0, :, 0]
    got = got[np.argsort(got[:, 0])]
    np.testing.assert_allclose(got, OFFSETS[np.argsort(OFFSETS[:, 0])], atol=0.2)
    assert np.all(np.sqrt(low.var[0, :, 0]) < 0.6)  # ~ the position's quantisation
    child, parent, disp, std = fitted.edges()
    np.testing.assert_array_equal(parent, [0, 0])
    np.testing.assert_array_equal(child, [2, 3])  # ids: 2 top nodes (filters 0, 1), then low


def test_inferred_positions_are_the_built_ones(fitted, two_level):
    _, images, part = two_level
    inf = fitted.infer(images[:40])
    # the part's node sits on the part's unit (1x1 conv on pixels: the nearest pixel centre)
    np.testing.assert_allclose(inf.positions[:, 0], np.floor(part[:40]) + 0.5, atol=1e-5)
    low = inf.positions[:, 2:4]
    expect = np.floor(part[:40, None] + OFFSETS[None]) + 0.5
    order = np.argsort(fitted.params[1].delta[0, :, 0, 0])
    np.testing.assert_allclose(low[:, order], expect[:, np.argsort(OFFSETS[:, 0])], atol=1e-5)
    assert inf.present[:, [0, 2, 3]].mean() > 0.95


def test_a_filter_with_two_distinct_peaks_becomes_two_nodes():
    rng = np.random.default_rng(1)
    n = 120
    a = np.array([8.0, 8.0]) + rng.normal(0, 0.3, (n, 2))
    b = np.array([24.0, 20.0]) + rng.normal(0, 0.3, (n, 2))
    both = rng.random(n) < 0.5  # half the images show both, the rest one of the two
    first = rng.random(n) < 0.5
    ch = blobs([np.where((both | first)[:, None], a, -50.0), np.where((both | ~first)[:, None],
                                                                       b, -50.0)])
    model = channel_model([0], [[0]])
    g = ExplanatoryGraph.fit(model, ch[..., None], layers=["top"], nodes_per_filter=2,
                             anchor="image", verbose=0)
    centres = g.params[0].delta[0, :, 0] + SIDE / 2.0
    centres = centres[np.argsort(centres[:, 0])]
    np.testing.assert_allclose(centres, [[8.0, 8.0], [24.0, 20.0]], atol=0.6)
    inf = g.infer(ch[..., None])
    order = np.argsort(g.params[0].delta[0, :, 0, 0])
    present = inf.present[:, order]
    np.testing.assert_array_equal(present[:, 0], both | first)
    np.testing.assert_array_equal(present[:, 1], both | ~first)


def test_save_load_round_trip(fitted, two_level, tmp_path):
    model, images, _ = two_level
    fitted.save(str(tmp_path / "g"))
    assert sorted(p.name for p in (tmp_path / "g").iterdir()) == ["graph.json", "graph.npz"]
    with np.load(tmp_path / "g" / "graph.npz", allow_pickle=False) as z:
        assert all(z[k].dtype != object for k in z.files)
    back = ExplanatoryGraph.load(str(tmp_path / "g"), model)
    a, b = fitted.infer(images[:16]), back.infer(images[:16])
    for field in ("positions", "scores", "log_likelihood", "present"):
        np.testing.assert_array_equal(getattr(a, field), getattr(b, field))
    assert back.nodes_per_filter == [1, 2] and back.layers == ["top", "low"]
    with pytest.raises(ValueError, match="without its model"):
        ExplanatoryGraph.load(str(tmp_path / "g")).infer(images[:2])
    with pytest.raises(FileNotFoundError, match="graph.json"):
        ExplanatoryGraph.load(str(tmp_path / "nothing"))


def test_bad_input_gets_a_clear_error(two_level):
    model, images, _ = two_level
    with pytest.raises(ValueError, match="no layer named 'nope'"):
        ExplanatoryGraph.fit(model, images, layers=["nope"], verbose=0)
    with pytest.raises(ValueError, match="one number or one per layer"):
        ExplanatoryGraph.fit(model, images, layers=["top"], nodes_per_filter=[1, 2], verbose=0)
    with pytest.raises(ValueError, match="images must be"):
        ExplanatoryGraph.fit(model, images[..., :2], layers=["top"], verbose=0)
    with pytest.raises(ValueError, match="anchor"):
        ExplanatoryGraph.fit(model, images, layers=["top"], anchor="middle", verbose=0)
