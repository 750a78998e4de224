"""Bottom-up learning of the decision tree's nodes (SPEC §9 "Learning"), vectorised numpy.

Each image I of the explained class starts as its own leaf, with the unit rationale
``u_I = ḡ_I / ‖ḡ_I‖``. A node v over the images ``I ∈ v`` keeps ``S_v = Σ u_I`` and the sparse
filter selection ``α_v`` (the k filters with the largest ``S_v,d²``) that maximises its score

    F(v) = ‖α_v ⊙ S_v‖ − γ · n_v · |α_v|,

which is ``Σ_{I∈v} cos(ḡ_I, ω_v)`` for the mode direction ``ω̂_v = α_v ⊙ S_v / ‖α_v ⊙ S_v‖``
(the direction that maximises that sum for a given selection) minus a sparsity penalty of
``γ`` per selected filter and image (``sparsity``). A leaf is scored the same way (its best
selection of its own rationale), so merging never looks good merely because leaves go
unpenalised; its weights for the estimates stay the whole ḡ_I (SPEC §9).
The tree's objective over its second-level nodes V is ``Σ_{v∈V} F(v) − λ |V|`` (``prior``,
λ: the log-prior per node); merging v and v′ into u changes it by

    Δ(v, v′) = F(v ∪ v′) − F(v) − F(v′) + λ,

and the learner repeatedly takes the merge of largest Δ while Δ > 0, so the objective never
decreases. Δ of every pair is one matrix; a merge computes only the new node's row.
"""
import numpy as np

_CHUNK_FLOATS = 1 << 24  # pairwise rows are scored in chunks of about 64 MB of float32


def unit_rows(g):
    """Rows of ``g`` divided by their norm (a zero row stays zero)."""
    norm = np.linalg.norm(g, axis=-1, keepdims=True)
    return np.where(norm > 0, g / np.where(norm > 0, norm, 1.0), 0.0)


def node_scores(sums, counts, sparsity):
    """``(F, k)`` of nodes with unit-rationale sums ``sums`` [..., D] over ``counts`` [...]
    images: the best score and the number of filters it keeps (module docstring)."""
    sq = np.sort(np.square(sums), axis=-1)[..., ::-1]
    k = np.arange(1, sums.shape[-1] + 1, dtype=sums.dtype)
    score = np.sqrt(np.cumsum(sq, axis=-1)) - sparsity * np.asarray(counts, sums.dtype)[..., None] * k
    best = np.argmax(score, axis=-1)
    return np.take_along_axis(score, best[..., None], -1)[..., 0], best + 1


def selection(sums, keep):
    """Boolean ``α`` [M, D]: the ``keep`` [M] filters with the largest ``sums²`` per row."""
    order = np.argsort(-np.square(sums), axis=-1, kind="stable")
    ranks = np.empty_like(order)
    np.put_along_axis(ranks, order, np.arange(sums.shape[-1])[None, :].repeat(len(sums), 0), -1)
    return ranks < np.asarray(keep)[:, None]


def learn_merges(weights, prior=0.3, sparsity=0.01, progress=None):
    """Merge the leaves of ``weights`` (ḡ [N, D], one row per image) bottom-up.

    Returns ``(merges [K, 2] node ids, objective [K + 1])``: merge t creates node ``N + t``
    from the two nodes it names (leaves are ``0..N-1``), and ``objective[t]`` is the tree's
    objective before merge t (the last entry: after all merges). The loop runs once per merge;
    each iteration scores the new node against all current second-level nodes at once.
    """
    units = unit_rows(np.asarray(weights, np.float64)).astype(np.float32)
    n, d = units.shape
    total = 2 * n
    sums = np.zeros((total, d), np.float32)
    sums[:n] = units
    counts = np.zeros(total, np.float32)
    counts[:n] = 1.0
    score = np.zeros(total, np.float32)
    score[:n] = np.where(np.linalg.norm(units, axis=1) > 0,
                         node_scores(units, counts[:n], sparsity)[0], 0.0)
    active = np.zeros(total, bool)
    active[:n] = True
    delta = np.full((total, total), -np.inf, np.float32)
    rows = max(1, _CHUNK_FLOATS // max(1, n * d))
    for a in range(0, n, rows):  # chunks of rows, not images one by one
        pair_sums = sums[a:a + rows, None, :] + sums[None, :n, :]
        f, _ = node_scores(pair_sums, counts[a:a + rows, None] + counts[None, :n], sparsity)
        delta[a:a + rows, :n] = f - score[a:a + rows, None] - score[None, :n] + prior
    idx = np.arange(total)
    delta[idx[:, None] >= idx[None, :]] = -np.inf  # each unordered pair once, no self-merge
    objective = [float(score[:n].sum() - prior * n)]
    merges = []
    for new in range(n, total - 1):
        flat = int(np.argmax(delta))
        i, j = divmod(flat, total)
        if not np.isfinite(delta[i, j]) or delta[i, j] <= 0:
            break
        gain = float(delta[i, j])
        sums[new] = sums[i] + sums[j]
        counts[new] = counts[i] + counts[j]
        score[new] = node_scores(sums[new], counts[new], sparsity)[0]
        active[[i, j]] = False
        delta[[i, j], :] = -np.inf
        delta[:, [i, j]] = -np.inf
        others = np.flatnonzero(active)
        if len(others):
            f, _ = node_scores(sums[others] + sums[new], counts[others] + counts[new], sparsity)
            delta[others, new] = f - score[others] - score[new] + prior
        active[new] = True
        merges.append((i, j))
        objective.append(objective[-1] + gain)
        if progress is not None:
            progress(len(merges))
    return np.asarray(merges, np.int64).reshape(-1, 2), np.asarray(objective)
