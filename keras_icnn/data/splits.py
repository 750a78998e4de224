"""Seeded, class-stratified splits and limits that keep every class.

Real datasets list their images in class order (CUB's image ids run class by
class), so "the first n images" or "the first 10% as validation" drops whole
classes. Everything here allocates a count across classes in proportion to
their sizes (largest remainder: each class gets the floor or the ceiling of
its share) and draws within each class with a seeded generator.
"""

import numpy as np


def stratified_counts(class_sizes, n, rng):
    """How many of ``n`` images to take from each class, proportionally.

    Args:
        class_sizes: int [C] images available per class.
        n: images wanted (capped at the total).
        rng: ``np.random.Generator`` breaking ties between equal remainders.

    Returns:
        int [C]; entry c is ``floor(n * size_c / total)`` or one more, never
        more than ``size_c``, and the entries sum to ``min(n, total)``.
    """
    sizes = np.asarray(class_sizes, np.int64)
    total = int(sizes.sum())
    n = int(min(max(int(n), 0), total))
    if total == 0 or n == 0:
        return np.zeros_like(sizes)
    share = n * sizes / total
    base = np.floor(share).astype(np.int64)
    remainder = n - int(base.sum())
    if remainder:
        frac = share - base
        # Largest fractional part first; equal parts in a seeded random order.
        order = np.lexsort((rng.permutation(len(sizes)), -frac))
        base[order[:remainder]] += 1
    return base


def stratified_take(labels, n, seed=0, among=None):
    """Indices of ``n`` images taken evenly across classes (seeded), in ascending order.

    Args:
        labels: int [N] class of every image.
        n: how many to take (capped at what is available).
        seed: seed of the draw.
        among: optional indices to draw from (default: all images).

    Example:
        >>> labels = np.repeat(np.arange(4), 10)      # class-ordered, like CUB
        >>> np.bincount(labels[stratified_take(labels, 8)])
        array([2, 2, 2, 2])
    """
    labels = np.asarray(labels)
    pool = np.arange(len(labels)) if among is None else np.asarray(among, np.int64)
    rng = np.random.default_rng(seed)
    if len(pool) == 0:
        return pool
    classes, inverse = np.unique(labels[pool], return_inverse=True)
    sizes = np.bincount(inverse, minlength=len(classes))
    counts = stratified_counts(sizes, n, rng)
    chosen = []
    for c in range(len(classes)):  # per class, not per image: C draws
        members = pool[inverse == c]
        chosen.append(rng.permutation(members)[:counts[c]])
    return np.sort(np.concatenate(chosen)) if chosen else pool[:0]


def carve(labels, sizes, seed=0, among=None):
    """Disjoint stratified subsets, carved in the order of ``sizes``.

    Args:
        labels: int [N].
        sizes: list of (name, n) pairs; ``n`` None takes everything left.
        seed: seed (each subset uses its own stream derived from it).
        among: optional indices to carve from (default: all).

    Returns:
        dict name -> sorted indices.

    Example:
        >>> carve(train_labels, [("validation", 600), ("train", None)], seed=0)
    """
    left = np.arange(len(labels)) if among is None else np.asarray(among, np.int64)
    out = {}
    for k, (name, n) in enumerate(sizes):
        if n is None:
            out[name] = np.sort(left)
        else:
            out[name] = stratified_take(labels, n, seed=[int(seed), k], among=left)
        left = np.setdiff1d(left, out[name], assume_unique=True)
    return out
