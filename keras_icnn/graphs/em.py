"""The explanatory graph's learning and inference steps (SPEC §10), vectorised over images,
filters, nodes, peaks and parents; only EM iterations and layers loop.

One graph layer has ``D`` filters with ``N`` nodes each. On an image every filter has ``P``
peaks (positions ``pos`` [B, D, P, 2], activations ``act`` [B, D, P], normalised per filter so
that 1 is a typical strongest peak). Node ``(d, n)`` has ``M`` parents among the candidate
nodes of the layer above (indices ``parents`` [D, N, M]; the last candidate is the image
itself, a pseudo-node at the image centre that is always present — the top layer's only
candidate); parent ``m`` predicts the node at its own inferred position plus a displacement
``delta`` [D, N, M, 2], with isotropic variance ``var`` [D, N, M].

The paper's likelihood of peak ``x`` under node ``V``: activation x spatial agreement with the
parents' predictions. The spatial term is the present parents' mean Gaussian log-likelihood,
an absent parent (presence weight ``w``) counting as the uniform density ``1 / (H W)``:

    ℓ(x, V) = (Σ_m w_m log N(p_x; p_{U_m} + δ_m, σ_m² I) − (M − Σ_m w_m) log(HW)) / M.

E-step: each peak's activation is shared among its filter's nodes and a background component
(uniform) by ``softmax_n(log π_n + ℓ(x, n))``. M-step: for every candidate parent U of every
node V, the weighted mean and variance of the displacement ``p_x − p_U``; the ``M`` candidates
with the largest expected log-likelihood of V's share become its parents. Inference: node V
sits at the peak of its filter that maximises ``log a_x + ℓ(x, V)``; it is present when that
peak is real (a > 0) and more likely under V than under the uniform density.
"""
import math

import numpy as np
import tensorflow as tf

_TINY = 1e-12


def spatial_log_likelihood(pos, parent_pos, parent_w, parents, delta, var, log_area):
    """ℓ [B, D, P, N] of every peak under every node (see the module docstring)."""
    pp = tf.gather(parent_pos, parents, axis=1)  # [B, D, N, M, 2]
    pw = tf.gather(parent_w, parents, axis=1)  # [B, D, N, M]
    diff = pos[:, :, :, None, None, :] - (pp + delta[None])[:, :, None]  # [B, D, P, N, M, 2]
    v = var[None, :, None]  # [1, D, 1, N, M]
    ll = -tf.math.log(2.0 * math.pi * v) - tf.reduce_sum(tf.square(diff), -1) / (2.0 * v)
    pw = pw[:, :, None]  # [B, D, 1, N, M]
    m = tf.cast(tf.shape(parents)[-1], tf.float32)
    return (tf.reduce_sum(pw * ll, -1) - (m - tf.reduce_sum(pw, -1)) * log_area) / m


def shares(act, spatial, log_prior, log_area):
    """[B, D, P, N + 1]: each peak's activation shared among its filter's nodes and the
    background (last), by ``softmax(log π + ℓ)`` (log domain)."""
    nodes = tf.shape(spatial)[-1]
    node_logits = log_prior[None, :, None, :nodes] + spatial
    background = tf.broadcast_to(log_prior[None, :, None, nodes:] - log_area,
                                 tf.concat([tf.shape(spatial)[:3], [1]], 0))
    r = tf.nn.softmax(tf.concat([node_logits, background], -1), axis=-1)
    return act[..., None] * r


def pair_statistics(mass, pos, cand_pos, cand_w):
    """Sufficient statistics of the displacement of every node from every candidate parent.

    Args:
        mass: [B, D, P, N + 1] shares of the peaks' activations (:func:`shares`).
        pos: [B, D, P, 2] peak positions; ``cand_pos`` [B, U, 2] and ``cand_w`` [B, U]: the
            candidates' inferred positions and presence weights.

    Returns:
        ``W`` [U, D, N] (Σ share x presence), ``S1`` [U, D, N, 2] (Σ of it x (p_x − p_U)),
        ``S2`` [U, D, N] (Σ of it x ‖p_x − p_U‖²), ``total`` [D, N + 1] (Σ share).
    """
    nodes = tf.shape(mass)[-1] - 1
    m = mass[..., :nodes]
    a = tf.reduce_sum(m, 2)  # [B, D, N]
    a_pos = tf.einsum("bdpn,bdpc->bdnc", m, pos)
    a_pos2 = tf.einsum("bdpn,bdp->bdn", m, tf.reduce_sum(tf.square(pos), -1))
    q_pos = cand_w[..., None] * cand_pos
    w = tf.einsum("bdn,bu->udn", a, cand_w)
    s1 = tf.einsum("bdnc,bu->udnc", a_pos, cand_w) - tf.einsum("bdn,buc->udnc", a, q_pos)
    s2 = (tf.einsum("bdn,bu->udn", a_pos2, cand_w)
          - 2.0 * tf.einsum("bdnc,buc->udn", a_pos, q_pos)
          + tf.einsum("bdn,bu->udn", a, cand_w * tf.reduce_sum(tf.square(cand_pos), -1)))
    return w, s1, s2, tf.reduce_sum(mass, [0, 2])


def infer_nodes(pos, act, spatial, log_prior, log_area, min_activation=0.0):
    """Each node's position on each image: the peak of its filter maximising ``log a + ℓ``.

    Returns:
        ``(positions [B, D, N, 2], activation [B, D, N], log_likelihood [B, D, N],
        present [B, D, N] bool, weight [B, D, N])``: present where the peak's normalised
        activation exceeds ``min_activation`` and the E-step would give the peak to this node
        (``log π_V + ℓ`` the largest among its filter's nodes and the background's
        ``log π_0 − log HW``): a node is absent where its parents place it away from every
        peak of its filter, or where a sibling explains the peak better. ``weight`` =
        min(a, 1) where present, the presence its children's likelihood uses.
    """
    log_a = tf.math.log(tf.maximum(act, _TINY))[..., None]
    score = tf.where(act[..., None] > 0, log_a + spatial, tf.fill(tf.shape(spatial), -np.inf))
    best = tf.argmax(score, axis=2, output_type=tf.int32)  # [B, D, N]
    position = tf.gather(pos, best, axis=2, batch_dims=2)
    a = tf.gather(act, best, axis=2, batch_dims=2)
    under_all = tf.gather(spatial, best, axis=2, batch_dims=2)  # [B, D, N (peak of), N (under)]
    nodes = tf.shape(spatial)[-1]
    ll = tf.linalg.diag_part(under_all)
    claims = log_prior[None, :, None, :nodes] + under_all
    rival = tf.maximum(tf.reduce_max(claims, -1), log_prior[None, :, nodes, None] - log_area)
    present = (a > min_activation) & (log_prior[None, :, :nodes] + ll >= rival)
    weight = tf.where(present, tf.minimum(a, 1.0), tf.zeros_like(a))
    return position, a, ll, present, weight


def m_step(w, s1, s2, total, parents, floor2, log_area):
    """New ``(parents [D, N, M], delta, var, log_prior)`` from the statistics (float64 numpy):
    per candidate the displacement's weighted mean and variance (at least ``floor2``), the
    ``parents`` candidates of largest expected log-likelihood
    ``W (−log 2πσ² − 1) − (W_V − W) log HW`` kept."""
    nodes = w.shape[2]
    safe = np.maximum(w, _TINY)
    delta = s1 / safe[..., None]
    var = np.maximum((s2 / safe - (delta ** 2).sum(-1)) / 2.0, floor2)
    own = total[None, :, :nodes]
    score = w * (-np.log(2 * np.pi * var) - 1.0) - (own - w) * log_area
    score = np.where(w > 1e-6 * np.maximum(own, _TINY), score, -np.inf)
    order = np.argsort(-score, axis=0, kind="stable")[:parents]  # [M, D, N]
    chosen = np.transpose(order, (1, 2, 0))
    delta = np.take_along_axis(np.transpose(delta, (1, 2, 0, 3)), chosen[..., None], 2)
    var = np.take_along_axis(np.transpose(var, (1, 2, 0)), chosen, 2)
    prior = total + 1e-3
    log_prior = np.log(prior / prior.sum(-1, keepdims=True))
    return chosen.astype(np.int32), delta, var, log_prior


def seed_centres(pos, act, nodes, rng):
    """k-means++ seeds of each filter's nodes over all its peaks (weights: activations),
    vectorised over filters; the loop runs over the ``nodes`` seeds (each depends on the
    ones before). ``pos`` [N, D, P, 2], ``act`` [N, D, P] -> ``(centres [D, nodes, 2],
    var [D, nodes])``: var = the weighted mean squared distance to the nearest seed / 2."""
    d = pos.shape[1]
    x = np.transpose(pos, (1, 0, 2, 3)).reshape(d, -1, 2).astype(np.float64)
    w = np.transpose(act, (1, 0, 2)).reshape(d, -1).astype(np.float64)
    centres = np.zeros((d, nodes, 2))
    d2 = np.full(w.shape, np.inf)
    for n in range(nodes):
        p = w if n == 0 else w * np.minimum(d2, 1e12)
        cdf = np.cumsum(p, axis=1)
        u = rng.random(d) * cdf[:, -1]
        pick = np.minimum((cdf < u[:, None]).sum(1), x.shape[1] - 1)
        centres[:, n] = x[np.arange(d), pick]
        d2 = np.minimum(d2, ((x - centres[:, n:n + 1]) ** 2).sum(-1))
    mass = np.maximum(w.sum(1), _TINY)
    var = (w * d2).sum(1) / mass / 2.0
    return centres, np.repeat(var[:, None], nodes, 1)
