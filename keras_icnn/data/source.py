"""The :class:`Source` every dataset opens into (class and part names, split tables of file
names and annotations, a ``tf.data`` loader), and what the readers of real datasets share:
image files checked and decoded, tables carved into splits. ``keras_icnn.data.sources``
opens a dataset by name and re-exports all of this.
"""
import contextlib
import os

import numpy as np
import tensorflow as tf

from keras_icnn.data import pipeline, readers, splits as splits_lib
from keras_icnn.data.synthetic_parts import SPLITS

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif")
IMAGE_MAGIC = (b"\xff\xd8\xff", b"\x89PNG", b"GIF8", b"BM")
DEFAULT_SHUFFLE_BUFFER = 2048


def check_image_file(path):
    """Raise a ValueError naming ``path`` unless it exists and starts like an image file."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"image file not found: {path}")
    with open(path, "rb") as f:
        head = f.read(8)
    if not head:
        raise ValueError(f"{path}: empty image file; expected a JPEG or PNG image")
    if not head.startswith(IMAGE_MAGIC):
        raise ValueError(f"{path}: not a JPEG, PNG, GIF or BMP file (its first bytes are no "
                         "image format's signature); replace or remove the file")


def decode_file(path):
    image = tf.io.decode_image(tf.io.read_file(path), channels=3, expand_animations=False)
    image.set_shape([None, None, 3])
    return image


def resize_uint8(image, size):
    resized = tf.image.resize(image, (size, size), method="bilinear")
    return tf.cast(tf.clip_by_value(tf.round(resized), 0.0, 255.0), tf.uint8)


def crop_box(image, box):
    """Integer crop window of a float (x0, y0, x1, y1) box, as ``readers`` always did."""
    shape = tf.shape(image)
    h, w = tf.cast(shape[0], tf.float32), tf.cast(shape[1], tf.float32)
    x0 = tf.clip_by_value(tf.floor(box[0]), 0.0, w - 1.0)
    y0 = tf.clip_by_value(tf.floor(box[1]), 0.0, h - 1.0)
    x1 = tf.clip_by_value(tf.math.ceil(box[2]), x0 + 1.0, w)
    y1 = tf.clip_by_value(tf.math.ceil(box[3]), y0 + 1.0, h)
    return x0, y0, x1, y1


def image_loader(image_size):
    """The map of a (path, label) record to an ``image``/``label`` example (whole image)."""
    size = int(image_size)

    def load(record):
        return {"image": resize_uint8(decode_file(record["path"]), size), "label": record["label"]}

    return load


class Source:
    """A dataset's classes, parts and splits, streamed through ``tf.data``.

    Attributes:
        name: the ``--dataset`` name.
        class_names: list of C class names (the class count is its length).
        part_names: list of part names, or ``None`` without part annotations.
        image_size: side of the (square) images the examples have.
    """

    def __init__(self, name, class_names, part_names, tables, loader=None, image_size=64,
                 files_of=None, description="", notes=None, streamed=None):
        self.name = name
        self.class_names = [str(c) for c in class_names]
        self.part_names = None if part_names is None else [str(p) for p in part_names]
        self.image_size = int(image_size)
        self._tables = tables
        self._loader = loader
        self._files_of = files_of
        self.description = description
        self.notes = list(notes or [])
        # Streamed from files (a loader decodes them) unless the tables hold the examples.
        self.streamed = loader is not None if streamed is None else bool(streamed)

    @property
    def num_classes(self):
        return len(self.class_names)

    @property
    def has_parts(self):
        return self.part_names is not None

    @property
    def in_memory(self):
        return not self.streamed

    def table(self, split):
        """The split's index table: ``{column: array}`` (``path``, ``label``, and the layout's
        annotation columns), one row per image, in the split's order."""
        if split not in self._tables:
            raise ValueError(f"`split` must be one of {sorted(self._tables)} for dataset "
                             f"{self.name!r}. Received: split={split!r}")
        return self._tables[split]

    def size(self, split):
        """Number of examples of ``split``."""
        return len(self.table(split)["label"])

    def labels(self, split):
        """int [N] labels of ``split`` (from the index: no image is decoded)."""
        return np.asarray(self.table(split)["label"], np.int64)

    def summary(self):
        """One line per split: size and the smallest / largest class count."""
        lines = [f"{self.name}: {self.num_classes} classes, "
                 f"{'parts ' + ', '.join(self.part_names) if self.has_parts else 'no part annotations'}"]
        for split in SPLITS:
            if split in self._tables:
                counts = np.bincount(self.labels(split), minlength=self.num_classes)
                lines.append(f"  {split}: {self.size(split)} images, {int((counts > 0).sum())} "
                             f"classes present ({counts.min()}-{counts.max()} per class)")
        lines.extend(f"  note: {note}" for note in self.notes)
        return "\n".join(lines)

    def limit(self, split, n, seed=0):
        """Keep ``n`` images of ``split``, taken evenly across classes (seeded); returns self."""
        table = self.table(split)
        keep = splits_lib.stratified_take(np.asarray(table["label"]), int(n), seed)
        self._tables[split] = {k: v[keep] for k, v in table.items()}
        return self

    def examples(self, split, shuffle=False, seed=0, num_parallel_calls=tf.data.AUTOTUNE,
                 shard=None):
        """Unbatched ``tf.data.Dataset`` of feature dicts of ``split``, decoded on the fly.

        ``shuffle`` reshuffles the index (file names, not images) every epoch,
        so shuffling costs no image memory. ``shard=(num_workers, index)`` keeps
        this worker's share of the (identically shuffled) index before anything
        is decoded.
        """
        table = self.table(split)
        ds = tf.data.Dataset.from_tensor_slices(dict(table))
        if shuffle:
            ds = ds.shuffle(max(len(table["label"]), 1), seed=seed, reshuffle_each_iteration=True)
        if shard is not None:
            ds = ds.shard(*shard)
        if self._loader is not None:
            ds = ds.map(self._loader, num_parallel_calls=num_parallel_calls, deterministic=True)
        return ds

    def dataset(self, split, batch_size=32, training=False, seed=0, as_supervised=True,
                cache=None, shuffle_buffer=DEFAULT_SHUFFLE_BUFFER, flip=None, shard=None):
        """Batched, prefetched ``tf.data.Dataset`` of ``split`` for ``fit`` / ``evaluate``.

        Args:
            split: ``"train"``, ``"validation"`` or ``"test"``.
            batch_size: batch size.
            training: shuffle every epoch (seeded) and flip at random.
            seed: seed of the shuffle and the flips.
            as_supervised: ``(image, label)`` pairs; otherwise feature dicts.
            cache: ``None`` (decode every epoch), ``"memory"`` or a file prefix
                (``Dataset.cache``; the cache holds the whole split).
            shuffle_buffer: buffer of the shuffle of cached, decoded images.
            flip: override the flip augmentation (default: ``training``).
            shard: ``(num_workers, worker_index)`` under a multi-worker strategy:
                each worker reads and decodes only its share of the files
                (``tf.data`` auto-sharding is then turned off).
        """
        if cache:
            ds = self.examples(split, shard=shard).cache("" if cache == "memory" else str(cache))
            if training:
                ds = ds.shuffle(min(shuffle_buffer, max(self.size(split), 1)), seed=seed,
                                reshuffle_each_iteration=True)
        else:
            ds = self.examples(split, shuffle=training, seed=seed, shard=shard)
        ds = pipeline.make_dataset(ds, batch_size, training=training, seed=seed, flip=flip,
                                   as_supervised=as_supervised, shuffle=False)
        if shard is not None:
            options = tf.data.Options()
            options.experimental_distribute.auto_shard_policy = \
                tf.data.experimental.AutoShardPolicy.OFF
            ds = ds.with_options(options)
        return ds

    def materialize(self, split, limit=None):
        """``split`` (or its first ``limit`` examples) as a dict of numpy arrays."""
        ds = self.examples(split)
        if limit is not None:
            ds = ds.take(int(limit))
        with self.naming_bad_files():
            batches = list(ds.batch(256).as_numpy_iterator())
        if not batches:
            spec = ds.element_spec
            return {k: np.zeros((0,) + tuple(v.shape), v.dtype.as_numpy_dtype)
                    for k, v in spec.items()}
        return {k: np.concatenate([b[k] for b in batches]) for k in batches[0]}

    def files(self, split=None):
        """Every file a split (default: all splits) reads, for checks."""
        if self._files_of is None:
            return []
        names = [split] if split else [s for s in SPLITS if s in self._tables]
        out = []
        for name in names:
            out.extend(self._files_of(self.table(name)))
        return out

    def check_files(self, split=None):
        """Decode every image file of ``split`` (all splits by default); raise a
        ValueError naming the first file that cannot be decoded."""
        for path in self.files(split):
            check_image_file(path)
            readers.decode_image(path)  # ValueError naming the file when it cannot be decoded

    @contextlib.contextmanager
    def naming_bad_files(self, split=None):
        """Turn a decode error raised inside ``tf.data`` into one that names the file.

        ``tf.data`` reports a corrupt or truncated image as ``DecodeImage ...
        failed`` without its path; on such an error this scans the files and
        raises a ValueError naming the first that cannot be decoded.
        """
        try:
            yield self
        except tf.errors.NotFoundError as err:  # a file deleted since the index was read
            if self._files_of is None:
                raise
            for path in self.files(split):
                if not os.path.isfile(path):
                    raise FileNotFoundError(f"image file not found: {path}") from err
            raise
        except (tf.errors.InvalidArgumentError, tf.errors.UnknownError) as err:
            text = str(err)
            if self._files_of is None or not any(
                    k in text for k in ("Decode", "decode", "jpeg", "JPEG", "png", "PNG", "image")):
                raise
            self.check_files(split)
            raise


# ----------------------------------------------------------------------------- shared by the readers


def require_dir(path, what):
    if not path:
        raise ValueError(f"`data_dir` is needed for {what}. Received: data_dir=''")
    if not os.path.isdir(path):
        raise FileNotFoundError(f"{what}: directory not found: {path}")


def table_of(rows, extra=None):
    """dict of arrays from (path, label) pairs (+ extra arrays aligned with them)."""
    table = {"path": np.asarray([r[0] for r in rows], dtype=object).astype(str),
             "label": np.asarray([r[1] for r in rows], np.int64)}
    table.update(extra or {})
    return table


def subset(table, index):
    return {k: v[index] for k, v in table.items()}


MAX_VAL_FRACTION = 0.2


def split_sizes(num_train, num_val, pool, notes):
    """Carve order: validation first (capped at ``MAX_VAL_FRACTION`` of the pool of
    training files, so training keeps most of them; the cap is added to ``notes``), then
    train."""
    if num_val and num_val > MAX_VAL_FRACTION * pool:
        capped = int(MAX_VAL_FRACTION * pool)
        notes.append(f"validation: {num_val} images asked, {capped} taken (at most "
                      f"{MAX_VAL_FRACTION:.0%} of the {pool} training files)")
        num_val = capped
    return [("validation", num_val), ("train", num_train or None)]


def check_headers(table):
    for path in table["path"]:
        check_image_file(path)


