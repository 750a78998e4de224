"""The graph's EM steps against numpy references written from the module docstring's formulas."""
import math

import numpy as np

from keras_icnn.graphs import em


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
