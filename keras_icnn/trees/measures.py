"""The decision tree's measures per depth (SPEC §9, last bullet), on held-out images.

For the node each image reaches at a depth of its parse path (the leaf where the path is
shorter): (1) the estimate's relative error ``mean_I |ŷ_v(I) − y_I| / mean_I |y_I|``; (2) the
fitness of contributions, the agreement of the node's per-filter contributions ``ω_v ⊙ x̄_I``
with the true ``ρ_I``: ``1 − ‖ρ̂ − ρ‖₁ / (‖ρ̂‖₁ + ‖ρ‖₁)`` per image (1: equal, 0: disjoint or
opposite), averaged, and their Pearson correlation as a second column; (3) the accuracy of
classifying with the trees' estimates (one tree per class, the class whose tree estimates the
largest logit).

Example:
    >>> depth_measures(tree.parse(rationales_of_test_images))  # {depth: {...}}
"""
import numpy as np


def estimate_error(estimates, logits):
    """``mean |ŷ − y| / mean |y|`` (0: the estimates are the logits)."""
    estimates, logits = np.asarray(estimates, np.float64), np.asarray(logits, np.float64)
    return float(np.abs(estimates - logits).mean() / max(np.abs(logits).mean(), 1e-12))


def contribution_fitness(estimated, true):
    """[N] ``1 − ‖ρ̂ − ρ‖₁ / (‖ρ̂‖₁ + ‖ρ‖₁)`` per row of ``estimated`` and ``true`` [N, D]
    (two zero rows agree: 1)."""
    estimated, true = np.asarray(estimated, np.float64), np.asarray(true, np.float64)
    denom = np.abs(estimated).sum(1) + np.abs(true).sum(1)
    return np.where(denom > 0, 1.0 - np.abs(estimated - true).sum(1) / np.where(denom > 0, denom, 1),
                    1.0)


def contribution_pearson(estimated, true):
    """[N] Pearson correlation of each row's contributions (0 where either row is constant)."""
    a = np.asarray(estimated, np.float64)
    b = np.asarray(true, np.float64)
    a = a - a.mean(1, keepdims=True)
    b = b - b.mean(1, keepdims=True)
    denom = np.sqrt((a * a).sum(1) * (b * b).sum(1))
    return np.where(denom > 0, (a * b).sum(1) / np.where(denom > 0, denom, 1), 0.0)


def depth_measures(parse, depths=None):
    """{depth: {"error", "fitness", "pearson", "images"}} of a :class:`~keras_icnn.trees.tree.
    TreeParse` (depth ``"leaf"``: each path's last node). ``depths`` defaults to 1 .. the
    deepest path."""
    n_levels = parse.paths.shape[1]
    depths = list(range(1, n_levels)) if depths is None else list(depths)
    rows = np.arange(len(parse.paths))
    last = (parse.paths >= 0).sum(1) - 1
    out = {}
    for depth in depths + ["leaf"]:
        col = last if depth == "leaf" else np.minimum(int(depth), last)
        est = parse.estimates[rows, col]
        contrib = parse.contributions[rows, col]
        out[depth] = {"error": estimate_error(est, parse.logits),
                      "fitness": float(contribution_fitness(
                          contrib, parse.rationales.contributions).mean()),
                      "pearson": float(contribution_pearson(
                          contrib, parse.rationales.contributions).mean()),
                      "images": int(len(rows))}
    return out


def tree_accuracy(parses, labels, depth="leaf"):
    """Accuracy of the class whose tree estimates the largest logit, from ``parses`` (one
    :class:`TreeParse` per class, in class order, all of the same images) at ``depth``."""
    labels = np.asarray(labels)
    estimates = []
    for p in parses:
        last = (p.paths >= 0).sum(1) - 1
        col = last if depth == "leaf" else np.minimum(int(depth), last)
        estimates.append(p.estimates[np.arange(len(p.paths)), col])
    return float((np.argmax(np.stack(estimates, 1), 1) == labels).mean())
