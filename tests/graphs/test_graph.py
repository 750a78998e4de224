"""ExplanatoryGraph: what it learns on patterns built to be learned, its maths against numpy,
save/load."""
import math

import numpy as np
import pytest
import tensorflow as tf

from keras_icnn.graphs import ExplanatoryGraph, default_graph_layers, em, local_peaks
from keras_icnn.graphs.peaks import LayerPeaks
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


def _numpy_spatial(pos, cand_pos, cand_w, parents, delta, var, log_area):
    """The module docstring's ℓ, one loop-free numpy line per term (the reference)."""
    pp = cand_pos[:, parents]  # [B, D, N, M, 2]
    pw = cand_w[:, parents]
    d2 = ((pos[:, :, :, None, None] - (pp + delta)[:, :, None]) ** 2).sum(-1)
    ll = -np.log(2 * np.pi * var)[None, :, None] - d2 / (2 * var[None, :, None])
    m = parents.shape[-1]
    return ((pw[:, :, None] * ll).sum(-1) - (m - pw.sum(-1))[:, :, None] * log_area) / m


def test_likelihood_inference_and_statistics_equal_numpy():
    rng = np.random.default_rng(2)
    b, d, p, n, m, u = 3, 4, 5, 2, 2, 6
    pos = rng.uniform(-10, 10, (b, d, p, 2)).astype(np.float32)
    act = (rng.random((b, d, p)) * (rng.random((b, d, p)) > 0.3)).astype(np.float32)
    cand_pos = rng.uniform(-10, 10, (b, u, 2)).astype(np.float32)
    cand_w = rng.random((b, u)).astype(np.float32)
    parents = rng.integers(0, u, (d, n, m)).astype(np.int32)
    delta = rng.normal(0, 3, (d, n, m, 2)).astype(np.float32)
    var = rng.uniform(1, 5, (d, n, m)).astype(np.float32)
    log_prior = np.log(rng.dirichlet(np.ones(n + 1), d)).astype(np.float32)
    log_area = math.log(32 * 32)
    ref = _numpy_spatial(pos, cand_pos, cand_w, parents, delta, var, log_area)
    got = em.spatial_log_likelihood(pos, cand_pos, cand_w, parents, delta, var, log_area)
    np.testing.assert_allclose(got.numpy(), ref, rtol=1e-5, atol=1e-4)
    # inference: the peak maximising log a + ℓ, present when real and ℓ > -log HW
    score = np.where(act[..., None] > 0, np.log(np.maximum(act, 1e-12))[..., None] + ref, -np.inf)
    best = score.argmax(2)  # [B, D, N]
    position, a, ll, present, _ = em.infer_nodes(pos, act, ref.astype(np.float32), log_prior,
                                                  log_area)
    bi, di, ni = np.indices(best.shape)
    np.testing.assert_allclose(position.numpy(), pos[bi, di, best], atol=1e-6)
    # present: the E-step gives the chosen peak to the node (vs its siblings and background)
    claims = log_prior[None, :, None, :n] + ref[bi, di, best]  # [B, D, N, N]
    own = log_prior[None, :, :n] + ref[bi, di, best, ni]
    rival = np.maximum(claims.max(-1), log_prior[None, :, n, None] - log_area)
    np.testing.assert_array_equal(present.numpy(), (act[bi, di, best] > 0) & (own >= rival))
    # shares: softmax over nodes + background; statistics: direct sums over peaks
    mass = em.shares(act, ref.astype(np.float32), log_prior, log_area).numpy()
    logits = np.concatenate([log_prior[None, :, None, :n] + ref,
                             np.broadcast_to(log_prior[None, :, None, n:] - log_area,
                                             (b, d, p, 1))], -1)
    r = np.exp(logits - logits.max(-1, keepdims=True))
    np.testing.assert_allclose(mass, act[..., None] * r / r.sum(-1, keepdims=True), atol=1e-6)
    w, s1, s2, total = (t.numpy() for t in em.pair_statistics(mass, pos, cand_pos, cand_w))
    diff = pos[:, None, :, :, None] - cand_pos[:, :, None, None, None]  # [B, U, D, P, 1, 2]
    mw = mass[:, None, ..., :n] * cand_w[:, :, None, None, None]  # [B, U, D, P, N]
    np.testing.assert_allclose(w, mw.sum((0, 3)), rtol=1e-5)
    np.testing.assert_allclose(s1, (mw[..., None] * diff).sum((0, 3)), rtol=1e-4, atol=1e-3)
    np.testing.assert_allclose(s2, (mw * (diff ** 2).sum(-1)).sum((0, 3)), rtol=1e-4, atol=1e-2)
    np.testing.assert_allclose(total, mass.sum((0, 2)), rtol=1e-5)


def test_local_peaks_equal_numpy():
    rng = np.random.default_rng(3)
    maps = rng.random((2, 6, 5, 3)).astype(np.float32) - 0.3
    model = channel_model([0], [[0]])  # any model: only its receptive field of "top" is used
    field = LayerPeaks(model, ["top"], 1).fields[0]
    pos, val = local_peaks(maps, field, 4)
    pad = np.pad(maps, ((0, 0), (1, 1), (1, 1), (0, 0)), constant_values=-np.inf)
    windows = np.stack([pad[:, i:i + 6, j:j + 5] for i in range(3) for j in range(3)])
    keep = (maps >= windows.max(0)) & (maps > 0)
    for img in range(2):  # the reference reads each map by hand
        for f in range(3):
            vals = np.where(keep[img, ..., f], maps[img, ..., f], 0).ravel()
            top = np.argsort(-vals, kind="stable")[:4]
            np.testing.assert_allclose(val[img, f].numpy(), vals[top])
            real = vals[top] > 0
            np.testing.assert_allclose(pos[img, f].numpy()[real],
                                       np.stack([top % 5 + 0.5, top // 5 + 0.5], -1)[real])


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


def test_default_layers_of_the_demo_vgg():
    from keras_icnn.models import vgg_backbone

    assert default_graph_layers(vgg_backbone()) == ["top_conv", "block3_relu2", "block2_relu2"]
