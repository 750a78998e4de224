"""Part consistency and stability of filters on landmark data (SPEC §12; Huang et al., ICCV 2023,
defined there for part prototypes, here for any filter).

A filter's *region* on an image: the square of half-side ``half_side`` x the image side centred
on its peak (the paper: 36 px on 224-px images). ``o[f, k]``: the fraction of the images of the
filter's category that show landmark k and have it inside the region. A filter is *consistent*
when ``max_k o[f, k] >= threshold`` (0.8); the score is the fraction of consistent filters.
*Stability*: per filter, the fraction of its category's images whose set of covered landmarks is
the same on the image and on the image plus Gaussian noise; the score is the mean over filters.

Streams: :class:`PartCounts` adds a batch at a time (shapes: ``N`` images, ``F`` filters, ``P``
landmarks, ``C`` classes); the functions below are one-batch uses of it.

Example:
    >>> score, o, consistent = part_consistency(positions, landmarks, labels, classes, (64, 64))
"""
import numpy as np

from keras_icnn import validation

HALF_SIDE = 36.0 / 224.0  # the paper's 36-px half-side on 224-px images, as a fraction
# The stability's noise: the paper's σ = 0.2 is on ImageNet-normalised inputs (per-channel std
# ≈ 0.226 of [0, 1]); on the 0-255 pixels the package's models take, 0.2 x 0.226 x 255 ≈ 11.5.
NOISE_STD = 0.2 * 0.226 * 255.0


def part_coverage(positions, landmarks, image_size, half_side=HALF_SIDE):
    """bool [N, F, P]: landmark k of image n lies in filter f's region (hidden landmarks: no)."""
    pos = np.asarray(positions, np.float64)[:, :, None, :]  # [N, F, 1, 2]
    lm = np.asarray(landmarks, np.float64)[:, None, :, :]  # [N, 1, P, 2]
    h, w = image_size
    reach = np.array([half_side * w, half_side * h])
    with np.errstate(invalid="ignore"):
        return (np.abs(lm - pos) <= reach).all(-1)


class PartCounts:
    """Counts behind both scores, per filter's *class* (the category is chosen at the end):
    ``covered [F, C, P]`` images of class c showing k with k in f's region, ``shown [C, P]``
    images of class c showing k, ``same [F, C]`` images of class c whose covered set is unchanged
    under noise, ``images [C]``."""

    def __init__(self, filters, parts, num_classes, image_size, half_side=HALF_SIDE):
        self.image_size = tuple(image_size)
        self.half_side = validation.number_in(half_side, "half_side", 0, 1, low_open=True)
        self.covered = np.zeros((filters, num_classes, parts), np.int64)
        self.shown = np.zeros((num_classes, parts), np.int64)
        self.same = np.zeros((filters, num_classes), np.int64)
        self.images = np.zeros(num_classes, np.int64)
        self.num_classes = num_classes

    def update(self, positions, landmarks, labels, noisy_positions=None):
        """Add a batch: ``positions`` [n, F, 2], ``landmarks`` [n, P, 2] (NaN: hidden),
        ``labels`` [n]; ``noisy_positions`` [n, F, 2] the peaks on the noisy images (stability)."""
        labels = validation.labels_np(labels, self.num_classes, count=len(positions))
        onehot = (labels[:, None] == np.arange(self.num_classes)).astype(np.int64)  # [n, C]
        cover = part_coverage(positions, landmarks, self.image_size, self.half_side)
        self.covered += np.einsum("nfp,nc->fcp", cover.astype(np.int64), onehot)
        self.shown += onehot.T @ np.isfinite(np.asarray(landmarks)[..., 0]).astype(np.int64)
        self.images += onehot.sum(0)
        if noisy_positions is not None:
            noisy = part_coverage(noisy_positions, landmarks, self.image_size, self.half_side)
            same = (cover == noisy).all(-1).astype(np.int64)  # [n, F]
            self.same += same.T @ onehot
        return self

    def consistency(self, filter_classes, threshold=0.8):
        """``(score, o [F, P], consistent [F])`` with each filter's category ``filter_classes``."""
        classes = np.asarray(filter_classes, int)
        o = self.covered[np.arange(len(classes)), classes] / np.maximum(self.shown[classes], 1)
        consistent = o.max(1) >= threshold
        return float(consistent.mean()), o, consistent

    def stability(self, filter_classes):
        """``(score, per filter [F])``: the share of the category's images whose covered set
        did not change under noise."""
        classes = np.asarray(filter_classes, int)
        per_filter = self.same[np.arange(len(classes)), classes] / np.maximum(
            self.images[classes], 1)
        return float(per_filter.mean()), per_filter


def _counts(positions, landmarks, labels, filter_classes, image_size, half_side, noisy=None):
    pos = validation.array_of_rank(positions, "positions", 3, "[N, F, 2]")
    lm = validation.array_of_rank(landmarks, "landmarks", 3, "[N, P, 2]")
    if len(lm) != len(pos) or pos.shape[-1] != 2 or lm.shape[-1] != 2:
        raise ValueError(f"`positions` [N, F, 2] and `landmarks` [N, P, 2] need the same N. "
                         f"Received: {pos.shape} and {lm.shape}")
    classes = np.asarray(filter_classes)
    if classes.shape != (pos.shape[1],):
        raise ValueError(f"`filter_classes` must give one class per filter ({pos.shape[1]}). "
                         f"Received: shape={classes.shape}")
    num_classes = int(max(np.max(labels), classes.max())) + 1
    return PartCounts(pos.shape[1], lm.shape[1], num_classes, image_size, half_side).update(
        pos, lm, labels, noisy)


def part_consistency(positions, landmarks, labels, filter_classes, image_size,
                     half_side=HALF_SIDE, threshold=0.8):
    """Consistency score of filters (SPEC §12).

    Args:
        positions: [N, F, 2] image-plane (x, y) of each filter's peak.
        landmarks: [N, P, 2] (x, y), NaN where hidden.
        labels: [N] classes; ``filter_classes``: [F] each filter's category (its images count).
        image_size: (H, W); ``half_side``: the region's half-side as a fraction of the side.
        threshold: the share of images a part must be covered on (0.8).

    Returns:
        ``(score, o [F, P], consistent [F])``.
    """
    return _counts(positions, landmarks, labels, filter_classes, image_size,
                   half_side).consistency(filter_classes, threshold)


def part_stability(positions, noisy_positions, landmarks, labels, filter_classes, image_size,
                   half_side=HALF_SIDE):
    """Stability score of filters (SPEC §12): ``(score, per filter [F])``; ``noisy_positions``
    [N, F, 2] are the peaks on the same images plus noise."""
    noisy = validation.array_of_rank(noisy_positions, "noisy_positions", 3, "[N, F, 2]")
    if noisy.shape != np.shape(positions):
        raise ValueError(f"`noisy_positions` must match `positions` {np.shape(positions)}. "
                         f"Received: {noisy.shape}")
    return _counts(positions, landmarks, labels, filter_classes, image_size, half_side,
                   noisy).stability(filter_classes)
