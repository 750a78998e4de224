"""Mutual information between filters and classes (CSG §4.2-4.3): the matrix
``M[k, c] = MI(a_k; 1[y = c])`` (sklearn's estimator, vectorised), MIS and its ceiling."""
import numpy as np

from keras_icnn import validation


def mutual_information_matrix(features, labels, num_classes, random_state=0):
    """``M[k, c] = MI(a_k; 1[y = c])``, the estimate of sklearn's ``mutual_info_classif``. [K, C]

    The same numbers as ``mutual_info_classif(features, labels == c, random_state=...)``
    for each class (same scaling, jitter and 3-neighbour estimator), computed for all
    filters at once by sorting instead of one KD-tree per filter and class (much faster).

    Args:
        features: [N, K] (e.g. global-average-pooled filter responses).
        labels: [N] ints in [0, num_classes).
    """
    features = validation.finite_array(features, "features")
    if features.ndim != 2 or len(features) < 2:
        raise ValueError("`features` must be [N, K] with N >= 2 examples. "
                         f"Received: shape={features.shape}")
    num_classes = validation.positive_int(num_classes, "num_classes")
    labels = validation.labels_np(labels, num_classes, count=len(features))
    noisy = _mi_noisy_features(features, random_state)
    return np.stack([_ksg_mi_columns(noisy, labels == c) for c in range(num_classes)], axis=1)


def _mi_noisy_features(features, random_state, noise=1e-10):
    """The features as sklearn's ``mutual_info_classif`` sees them: scaled to unit variance
    and jittered by ``1e-10 * max(1, mean |x|)`` Gaussian noise from ``random_state``."""
    from sklearn.preprocessing import scale

    x = scale(np.asarray(features, np.float64), with_mean=False, copy=True)
    means = np.maximum(1, np.mean(np.abs(x), axis=0))
    rng = np.random.RandomState(random_state)
    return x + noise * means * rng.standard_normal(size=x.shape)


def _kth_neighbour_distance(x, k):
    """Distance [n, K] from each value of each column of ``x`` [n, K] to its k-th nearest
    other value (1-D neighbours: the k-th smallest of the 2k around it in sorted order)."""
    n = len(x)
    order = np.argsort(x, axis=0, kind="stable")
    ordered = np.take_along_axis(x, order, axis=0)
    pad = np.full((k, x.shape[1]), np.inf)
    padded = np.concatenate([pad, ordered, pad])
    near = np.stack([np.abs(ordered - padded[k + o:k + o + n])
                     for o in list(range(-k, 0)) + list(range(1, k + 1))], axis=-1)
    kth = np.partition(near, k - 1, axis=-1)[..., k - 1]
    out = np.empty_like(kth)
    np.put_along_axis(out, order, kth, axis=0)
    return out


def _count_within(x, radius):
    """Number of values of each column of ``x`` [n, K] within ``radius`` [n, K] of each value
    (``|x_j - x_i| <= r_i``, itself included), by binary search and an exact edge check."""
    counts = np.empty(x.shape, np.int64)
    for k in range(x.shape[1]):  # one sorted column at a time; vectorised over the values
        col, r = x[:, k], radius[:, k]
        ordered = np.sort(col)
        n = len(ordered)
        hi = np.searchsorted(ordered, col + r, side="right")
        lo = np.searchsorted(ordered, col - r, side="left")
        # col +- r is rounded; move each bound until the exact test |x_j - x_i| <= r_i holds.
        while True:
            down = (hi > 0) & (ordered[np.maximum(hi - 1, 0)] - col > r)
            up = (hi < n) & (ordered[np.minimum(hi, n - 1)] - col <= r)
            right = (lo < n) & (col - ordered[np.minimum(lo, n - 1)] > r)
            left = (lo > 0) & (col - ordered[np.maximum(lo - 1, 0)] <= r)
            if not (down.any() or up.any() or right.any() or left.any()):
                break
            hi = hi - down + up
            lo = lo + right - left
        counts[:, k] = hi - lo
    return counts


def _ksg_mi_columns(x, target, n_neighbors=3):
    """MI (nats) of each continuous column of ``x`` [N, K] with the binary ``target`` [N]:
    Ross's (2014) nearest-neighbour estimator exactly as sklearn's ``_compute_mi_cd``
    computes it, for all columns at once (its KD-trees replaced by sorting, which is exact
    in one dimension). Negative estimates become 0."""
    from scipy.special import digamma

    n = len(x)
    radius = np.zeros(x.shape)
    k_all = np.zeros(n)
    label_counts = np.zeros(n)
    for label in np.unique(target):
        mask = target == label
        count = int(mask.sum())
        label_counts[mask] = count
        if count > 1:
            k = min(n_neighbors, count - 1)
            radius[mask] = np.nextafter(_kth_neighbour_distance(x[mask], k), 0)
            k_all[mask] = k
    keep = label_counts > 1  # points alone in their class are left out
    x, radius = x[keep], radius[keep]
    m_all = _count_within(x, radius)
    mi = (digamma(int(keep.sum())) + np.mean(digamma(k_all[keep]))
          - np.mean(digamma(label_counts[keep])) - np.mean(digamma(m_all), axis=0))
    return np.maximum(0.0, mi)


def mutual_information_score(features=None, labels=None, num_classes=None, random_state=0,
                             matrix=None):
    """MIS = mean over filters of the max over classes of ``M[k, c]`` (CSG §4.3), the one place
    it is computed: from ``features`` [N, K] and ``labels``, or from an already computed
    :func:`mutual_information_matrix` ``matrix`` [K, C].

    Example:
        >>> m = mutual_information_matrix(pooled, labels, 6)
        >>> mutual_information_score(matrix=m)  # == mutual_information_score(pooled, labels, 6)
    """
    if matrix is None:
        matrix = mutual_information_matrix(features, labels, num_classes, random_state)
    return float(validation.array_of_rank(matrix, "matrix", 2, "[K, C]").max(axis=1).mean())


def mutual_information_ceiling(labels, num_classes):
    """The largest MIS any features can reach on ``labels``: ``max_c H(1[y = c])`` (nats).

    ``MI(a; 1[y=c]) <= H(1[y=c])``, so MIS <= this. With C balanced classes it
    is ``H_b(1/C)``: 0.451 for 6 classes, 0.325 for 10 (CIFAR-10). A ratio
    MIS(CSG) / MIS(STD) can therefore never exceed ceiling / MIS(STD).

    Example:
        >>> mutual_information_ceiling(np.repeat(np.arange(6), 100), 6)  # H_b(1/6)
        0.4505...
    """
    labels = validation.labels_np(labels, validation.positive_int(num_classes, "num_classes"))
    q = np.bincount(labels, minlength=num_classes) / max(len(labels), 1)
    with np.errstate(divide="ignore", invalid="ignore"):
        h = -(np.where(q > 0, q * np.log(q), 0.0) + np.where(q < 1, (1 - q) * np.log(1 - q), 0.0))
    return float(h.max())
