"""``tf.data`` pipelines over part-annotated examples (dicts of arrays).

Every source in ``keras_icnn.data`` (the synthetic generator, the TFDS
builder, the CUB-200-2011 and Pascal-Part readers) yields the same feature
dict: ``image`` uint8 [H,W,3], ``label`` int, ``bbox`` float32 [4]
(x_min, y_min, x_max, y_max), ``part_masks`` bool [H,W,P], ``landmarks``
float32 [P,2] (x, y, NaN where absent), ``object_mask`` bool [H,W].
"""

import numpy as np
import tensorflow as tf

FEATURES = ("image", "label", "bbox", "part_masks", "landmarks", "object_mask")


def validate_examples(examples, num_classes=None, name="examples"):
    """Check a dict of arrays before training; raise ValueError naming the problem.

    Checks: all features present with a common length, images [N,H,W,3] with
    finite values, labels integers in ``[0, num_classes)``.
    """
    missing = [k for k in ("image", "label") if k not in examples]
    if missing:
        raise ValueError(f"{name}: missing features {missing}; expected keys {FEATURES}")
    image = np.asarray(examples["image"])
    label = np.asarray(examples["label"])
    if image.ndim != 4 or image.shape[-1] != 3:
        raise ValueError(
            f"{name}: `image` must have shape [N, H, W, 3]. Received: shape={image.shape}")
    if len(label) != len(image):
        raise ValueError(
            f"{name}: {len(image)} images but {len(label)} labels; expected one label per image")
    if image.dtype.kind == "f" and not np.all(np.isfinite(image)):
        bad = int(np.nonzero(~np.isfinite(image).reshape(len(image), -1).all(1))[0][0])
        raise ValueError(f"{name}: image {bad} contains NaN or Inf; expected finite pixel values")
    if label.dtype.kind not in "iu":
        raise ValueError(f"{name}: labels must be integers. Received: dtype={label.dtype}")
    if num_classes is not None and len(label):
        lo, hi = int(label.min()), int(label.max())
        if lo < 0 or hi >= num_classes:
            raise ValueError(
                f"{name}: labels must lie in [0, {num_classes}). Received: min={lo}, max={hi}")
    return examples


def flip_example(example):
    """Mirror an example left-right, keeping masks, landmarks and box on their parts.

    Works on one example (a dict of tensors, as in ``Dataset.map``).
    """
    out = dict(example)
    width = tf.cast(tf.shape(example["image"])[1], tf.float32)
    out["image"] = tf.reverse(example["image"], axis=[1])
    if "part_masks" in example:
        out["part_masks"] = tf.reverse(example["part_masks"], axis=[1])
    if "object_mask" in example:
        out["object_mask"] = tf.reverse(example["object_mask"], axis=[1])
    if "landmarks" in example:
        lm = example["landmarks"]
        out["landmarks"] = tf.stack([width - lm[..., 0], lm[..., 1]], axis=-1)
    if "bbox" in example:
        b = example["bbox"]
        out["bbox"] = tf.stack([width - b[2], b[1], width - b[0], b[3]])
    return out


def random_flip(example, seed):
    """Flip with probability 1/2, deterministically given the stateless ``seed`` pair."""
    flip = tf.random.stateless_uniform([], seed=seed) < 0.5
    flipped = flip_example(example)
    return {k: tf.where(flip, flipped[k], example[k]) for k in example}


def make_dataset(examples, batch_size=32, training=False, seed=0, flip=None,
                 as_supervised=True, shuffle_buffer=None):
    """A batched, prefetched ``tf.data.Dataset`` from a dict of arrays or a dataset.

    Args:
        examples: dict of numpy arrays (see ``FEATURES``) or a
            ``tf.data.Dataset`` of such dicts (e.g. from ``tfds.load``).
        batch_size: batch size.
        training: shuffle (reshuffled every epoch, seeded) and, by default,
            random horizontal flips.
        seed: seed of the shuffle and the flips.
        flip: override the flip augmentation (default: ``training``).
        as_supervised: yield ``(image, label)`` pairs for ``fit``; otherwise
            the whole feature dict.
        shuffle_buffer: defaults to the whole dataset when it fits in memory.

    Returns:
        ``tf.data.Dataset``.

    Example:
        >>> ex = synthetic_parts.make_examples(256)
        >>> ds = make_dataset(ex, batch_size=32, training=True)
    """
    if isinstance(examples, tf.data.Dataset):
        ds = examples
        size = None
    else:
        size = len(examples["image"])
        ds = tf.data.Dataset.from_tensor_slices({k: examples[k] for k in examples})
    flip = training if flip is None else flip
    if training:
        ds = ds.shuffle(shuffle_buffer or size or 4096, seed=seed, reshuffle_each_iteration=True)
    if flip:
        ds = ds.enumerate().map(
            lambda i, ex: random_flip(ex, tf.stack([tf.cast(seed, tf.int64), i])),
            num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    if as_supervised:
        ds = ds.map(lambda ex: (ex["image"], ex["label"]), num_parallel_calls=tf.data.AUTOTUNE)
    return ds.batch(batch_size).prefetch(tf.data.AUTOTUNE)
