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


# Keys a reader may add that describe the dataset, not one example.
METADATA = ("part_names", "class_names")


def validate_examples(examples, num_classes=None, name="examples"):
    """Check a dict of arrays before training; raise ValueError naming the problem.

    Checks: ``image`` and ``label`` present, every per-example feature of the
    same length (the message names the feature), images [N,H,W,3] with finite
    values, labels integers in ``[0, num_classes)``. Metadata keys
    (``part_names``, ``class_names``) are ignored.
    """
    if not isinstance(examples, dict):
        raise TypeError(f"{name}: expected a dict of arrays (keys {FEATURES}). "
                        f"Received: {type(examples).__name__}")
    missing = [k for k in ("image", "label") if k not in examples]
    if missing:
        raise ValueError(f"{name}: missing features {missing}; expected keys {FEATURES}. "
                         f"Received keys: {sorted(examples)}")
    image = np.asarray(examples["image"])
    label = np.asarray(examples["label"])
    if image.ndim != 4 or image.shape[-1] != 3:
        raise ValueError(
            f"{name}: `image` must have shape [N, H, W, 3]. Received: shape={image.shape}")
    for key, value in examples.items():
        if key in METADATA or key == "image":
            continue
        length = len(value) if np.ndim(value) else None
        if length != len(image):
            raise ValueError(
                f"{name}: feature `{key}` has {length} entries but there are {len(image)} "
                "images; expected one entry per image")
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


def _check_element_spec(ds, as_supervised, name):
    spec = ds.element_spec
    if not isinstance(spec, dict):
        raise TypeError(f"{name}: expected a dataset of feature dicts (keys {FEATURES}). "
                        f"Received elements: {spec}")
    needed = ("image", "label") if as_supervised else ("image",)
    missing = [k for k in needed if k not in spec]
    if missing:
        raise ValueError(f"{name}: missing features {missing}; expected keys {FEATURES}. "
                         f"Received keys: {sorted(spec)}")
    shape = spec["image"].shape
    if shape.rank is not None and (shape.rank != 3 or shape[-1] not in (None, 3)):
        raise ValueError(f"{name}: `image` must be one [H, W, 3] image per element. "
                         f"Received: shape={shape}")


def _finite_images(ex):
    if ex["image"].dtype.is_floating:
        ex = dict(ex)
        ex["image"] = tf.debugging.assert_all_finite(
            ex["image"], "make_dataset: an image contains NaN or Inf; expected finite pixel values")
    return ex


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
                 as_supervised=True, shuffle_buffer=None, shuffle=None, num_classes=None,
                 name="examples"):
    """A batched, prefetched ``tf.data.Dataset`` from a dict of arrays or a dataset.

    Args:
        examples: dict of numpy arrays (see ``FEATURES``; a reader's metadata
            keys such as ``part_names`` are dropped) or a ``tf.data.Dataset``
            of such dicts (``keras_icnn.data.sources``, ``tfds.load``).
        batch_size: batch size.
        training: shuffle (reshuffled every epoch, seeded) and, by default,
            random horizontal flips.
        seed: seed of the shuffle and the flips.
        flip: override the flip augmentation (default: ``training``).
        as_supervised: yield ``(image, label)`` pairs for ``fit``; otherwise
            the whole feature dict.
        shuffle_buffer: defaults to the whole dataset when it fits in memory.
        shuffle: override the shuffle (default: ``training``); a streamed
            source shuffles its file index instead.
        num_classes: when given, labels of a dict of arrays must lie in
            ``[0, num_classes)``.
        name: what the error messages call the examples.

    Returns:
        ``tf.data.Dataset``.

    Example:
        >>> ex = synthetic_parts.make_examples(256)
        >>> ds = make_dataset(ex, batch_size=32, training=True)
    """
    from keras_icnn import validation

    batch_size = validation.positive_int(batch_size, "batch_size")
    if isinstance(examples, tf.data.Dataset):
        _check_element_spec(examples, as_supervised, name)
        ds = examples.map(_finite_images) if examples.element_spec["image"].dtype.is_floating \
            else examples
        size = None
    else:
        validate_examples(examples, num_classes, name=name)
        size = len(examples["image"])
        ds = tf.data.Dataset.from_tensor_slices(
            {k: examples[k] for k in examples if k not in METADATA})
    flip = training if flip is None else flip
    shuffle = training if shuffle is None else shuffle
    if shuffle:
        ds = ds.shuffle(shuffle_buffer or size or 4096, seed=seed, reshuffle_each_iteration=True)
    if flip:
        ds = ds.enumerate().map(
            lambda i, ex: random_flip(ex, tf.stack([tf.cast(seed, tf.int64), i])),
            num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    if as_supervised:
        ds = ds.map(lambda ex: (ex["image"], ex["label"]), num_parallel_calls=tf.data.AUTOTUNE)
    return ds.batch(batch_size).prefetch(tf.data.AUTOTUNE)
