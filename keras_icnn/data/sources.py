"""One data layer for every trainer and ``evaluate.py``: ``--dataset`` / ``--data_dir``.

``open_source(...)`` returns a :class:`Source`: the class list, the part list
(``None`` where the dataset has no part annotations), and train / validation /
test splits that keep every class. Real data is never held in memory: a split
is a small table of file names, labels, boxes and landmarks, and
:meth:`Source.examples` streams it through ``tf.data`` (parallel decode, crop
to the object box where the dataset has one, resize), so memory is bounded by
the shuffle buffer, not by the dataset.

Datasets:

* ``synthetic``: the package's part-annotated creatures (in memory, generated
  deterministically from the seed): the test bench.
* ``cub``: CUB-200-2011 in its original layout (``images.txt``,
  ``image_class_labels.txt``, ``bounding_boxes.txt``, ``train_test_split.txt``,
  ``parts/``, ``images/``); crops to the bird's box; part landmarks grouped
  into head / torso / legs / tail with disk masks (see ``readers``).
* ``pascal_part``: ``JPEGImages/`` and ``Annotations_Part/*.mat``; one
  example per animal object, no official split: images are split by id,
  seeded and stratified by category.
* ``folder``: ``DIR/<class>/*.jpg|png`` (or ``DIR/train/<class>/`` with
  ``DIR/test/<class>/`` and optionally ``DIR/validation/<class>/``); no part
  annotations, so part metrics are "not applicable".
* ``tfds``: any image-classification TFDS dataset already prepared under
  ``data_dir`` (``tfds_name``; never downloads); image and label only.

Example:
    >>> source = open_source("cub", "/data/CUB_200_2011", image_size=224, num_val=600)
    >>> source.num_classes, source.part_names
    (200, ['head', 'torso', 'legs', 'tail'])
    >>> train = source.dataset("train", batch_size=32, training=True, seed=0)
    >>> model.fit(train, validation_data=source.dataset("validation", 32))
"""

import contextlib
import os

import numpy as np
import tensorflow as tf

from keras_icnn import validation
from keras_icnn.data import pipeline, readers, splits as splits_lib
from keras_icnn.data.synthetic_parts import SPLITS  # noqa: F401 (the one list, re-exported)

DATASETS = ("synthetic", "cub", "pascal_part", "folder", "tfds")
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif")
_MAGIC = (b"\xff\xd8\xff", b"\x89PNG", b"GIF8", b"BM")
DEFAULT_SHUFFLE_BUFFER = 2048


def check_image_file(path):
    """Raise a ValueError naming ``path`` unless it exists and starts like an image file."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"image file not found: {path}")
    with open(path, "rb") as f:
        head = f.read(8)
    if not head:
        raise ValueError(f"{path}: empty image file; expected a JPEG or PNG image")
    if not head.startswith(_MAGIC):
        raise ValueError(f"{path}: not a JPEG, PNG, GIF or BMP file (its first bytes are no "
                         "image format's signature); replace or remove the file")


def _decode(path):
    image = tf.io.decode_image(tf.io.read_file(path), channels=3, expand_animations=False)
    image.set_shape([None, None, 3])
    return image


def _resize_uint8(image, size):
    resized = tf.image.resize(image, (size, size), method="bilinear")
    return tf.cast(tf.clip_by_value(tf.round(resized), 0.0, 255.0), tf.uint8)


def _crop_box(image, box):
    """Integer crop window of a float (x0, y0, x1, y1) box, as ``readers`` always did."""
    shape = tf.shape(image)
    h, w = tf.cast(shape[0], tf.float32), tf.cast(shape[1], tf.float32)
    x0 = tf.clip_by_value(tf.floor(box[0]), 0.0, w - 1.0)
    y0 = tf.clip_by_value(tf.floor(box[1]), 0.0, h - 1.0)
    x1 = tf.clip_by_value(tf.math.ceil(box[2]), x0 + 1.0, w)
    y1 = tf.clip_by_value(tf.math.ceil(box[3]), y0 + 1.0, h)
    return x0, y0, x1, y1


def cub_loader(image_size, group_matrix, landmark_radius=0.06):
    """The ``tf.data`` map of a CUB record (path, label, box, points, visible) to an example.

    Crops the bird's box, resizes to ``image_size``; landmarks of a group are
    the mean of its visible CUB parts inside the crop; part masks are disks of
    radius ``landmark_radius * image_size`` around them; the object mask is the crop.
    """
    size = int(image_size)
    groups = tf.constant(group_matrix, tf.float32)  # [Q, G]
    radius = float(landmark_radius) * size
    grid = tf.range(size, dtype=tf.float32) + 0.5

    def load(record):
        image = _decode(record["path"])
        x0, y0, x1, y1 = _crop_box(image, record["box"])
        crop = image[tf.cast(y0, tf.int32):tf.cast(y1, tf.int32),
                     tf.cast(x0, tf.int32):tf.cast(x1, tf.int32)]
        scale = tf.stack([size / (x1 - x0), size / (y1 - y0)])
        points = (record["points"] - tf.stack([x0, y0])) * scale  # [Q, 2]
        inside = (record["visible"] & (points[:, 0] >= 0) & (points[:, 0] < size)
                  & (points[:, 1] >= 0) & (points[:, 1] < size))
        weight = tf.cast(inside, tf.float32)[:, None] * groups  # [Q, G]
        count = tf.reduce_sum(weight, axis=0)
        mean = tf.matmul(weight, points, transpose_a=True) / tf.maximum(count, 1.0)[:, None]
        landmarks = tf.where((count > 0)[:, None], mean, tf.fill(tf.shape(mean), np.nan))
        d2 = ((grid[None, :, None] - points[None, None, :, 0]) ** 2
              + (grid[:, None, None] - points[None, None, :, 1]) ** 2)  # [S, S, Q]
        disks = tf.cast((d2 <= radius ** 2) & inside[None, None, :], tf.float32)
        part_masks = tf.einsum("hwq,qg->hwg", disks, groups) > 0
        return {"image": _resize_uint8(crop, size), "label": record["label"],
                "bbox": tf.constant([0.0, 0.0, size, size], tf.float32),
                "part_masks": part_masks, "landmarks": landmarks,
                "object_mask": tf.ones([size, size], tf.bool)}

    return load


def image_loader(image_size):
    """The map of a (path, label) record to an ``image``/``label`` example (whole image)."""
    size = int(image_size)

    def load(record):
        return {"image": _resize_uint8(_decode(record["path"]), size), "label": record["label"]}

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

    def _table(self, split):
        if split not in self._tables:
            raise ValueError(f"`split` must be one of {sorted(self._tables)} for dataset "
                             f"{self.name!r}. Received: split={split!r}")
        return self._tables[split]

    def size(self, split):
        """Number of examples of ``split``."""
        return len(self._table(split)["label"])

    def labels(self, split):
        """int [N] labels of ``split`` (from the index: no image is decoded)."""
        return np.asarray(self._table(split)["label"], np.int64)

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
        table = self._table(split)
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
        table = self._table(split)
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
            out.extend(self._files_of(self._table(name)))
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


# ----------------------------------------------------------------------------- datasets


def _require_dir(path, what):
    if not path:
        raise ValueError(f"`data_dir` is needed for {what}. Received: data_dir=''")
    if not os.path.isdir(path):
        raise FileNotFoundError(f"{what}: directory not found: {path}")


def _table_of(rows, extra=None):
    """dict of arrays from (path, label) pairs (+ extra arrays aligned with them)."""
    table = {"path": np.asarray([r[0] for r in rows], dtype=object).astype(str),
             "label": np.asarray([r[1] for r in rows], np.int64)}
    table.update(extra or {})
    return table


def _subset(table, index):
    return {k: v[index] for k, v in table.items()}


MAX_VAL_FRACTION = 0.2


def _split_sizes(num_train, num_val, pool, notes):
    """Carve order: validation first (capped at ``MAX_VAL_FRACTION`` of the pool of
    training files, so training keeps most of them; the cap is added to ``notes``), then
    train."""
    if num_val and num_val > MAX_VAL_FRACTION * pool:
        capped = int(MAX_VAL_FRACTION * pool)
        notes.append(f"validation: {num_val} images asked, {capped} taken (at most "
                      f"{MAX_VAL_FRACTION:.0%} of the {pool} training files)")
        num_val = capped
    return [("validation", num_val), ("train", num_train or None)]


def cub_index(root, part_groups=None):
    """CUB-200-2011's file tables (``train``, ``test``), class names and part groups.

    Reads only the text files and checks every image file's header; no image
    is decoded. Tables hold ``path``, ``label`` (0-based), ``box`` (x0, y0,
    x1, y1), ``points`` [Q, 2] and ``visible`` [Q] of the CUB parts that
    belong to a group, and a ``group_matrix`` [Q, G] maps parts to groups.
    """
    _require_dir(root, "CUB-200-2011 root (expected images.txt, parts/, images/ ...)")
    groups = part_groups or readers.CUB_PART_GROUPS
    index_files = ("images.txt", "image_class_labels.txt", "bounding_boxes.txt",
                   "train_test_split.txt", "classes.txt", os.path.join("parts", "parts.txt"),
                   os.path.join("parts", "part_locs.txt"))
    for name in index_files:  # an index file may be a link too: only ones inside are read
        readers.inside_dataset(root, os.path.join(root, name), root, entry=name)
    t = readers.read_table
    images_txt = os.path.join(root, "images.txt")
    lines = []
    image_rows = t(images_txt, ("<image_id>", "<image_name>"), (int, str), "CUB images.txt",
                   line_numbers=lines)
    images_dir = os.path.join(root, "images")
    for (_, name), line in zip(image_rows, lines):
        readers.inside_dataset(root, os.path.join(images_dir, name), images_txt, line, name)
    images = dict(image_rows)
    labels = dict(t(os.path.join(root, "image_class_labels.txt"),
                    ("<image_id>", "<class_id>"), (int, int), "CUB class labels"))
    boxes = {r[0]: r[1:] for r in t(
        os.path.join(root, "bounding_boxes.txt"),
        ("<image_id>", "<x>", "<y>", "<width>", "<height>"),
        (int, float, float, float, float), "CUB bounding boxes")}
    is_train = dict(t(os.path.join(root, "train_test_split.txt"),
                      ("<image_id>", "<is_training_image>"), (int, int), "CUB train/test split"))
    part_names = dict(t(os.path.join(root, "parts", "parts.txt"), ("<part_id>", "<part_name>"),
                        (int, str), "CUB parts.txt"))
    locs = t(os.path.join(root, "parts", "part_locs.txt"),
             ("<image_id>", "<part_id>", "<x>", "<y>", "<visible>"),
             (int, int, float, float, int), "CUB part_locs.txt")
    classes_txt = os.path.join(root, "classes.txt")
    if os.path.isfile(classes_txt):
        class_names = [name for _, name in sorted(t(classes_txt, ("<class_id>", "<class_name>"),
                                                    (int, str), "CUB classes.txt"))]
    else:  # a copy without classes.txt: the class list is every class id the labels file names
        class_names = [f"class {c}" for c in range(1, max(labels.values(), default=0) + 1)]
    group_names = list(groups)
    used = [pid for pid, name in sorted(part_names.items())
            if any(name in members for members in groups.values())]
    column = {pid: q for q, pid in enumerate(used)}
    group_matrix = np.zeros((len(used), len(group_names)), np.float32)
    for pid in used:
        for g, members in enumerate(groups.values()):
            if part_names[pid] in members:
                group_matrix[column[pid], g] = 1.0
    ids = sorted(images)
    row_of = {image_id: r for r, image_id in enumerate(ids)}
    points = np.zeros((len(ids), len(used), 2), np.float32)
    visible = np.zeros((len(ids), len(used)), bool)
    locs_path = os.path.join(root, "parts", "part_locs.txt")
    for image_id, part_id, x, y, vis in locs:
        if part_id not in part_names:
            raise ValueError(f"{locs_path}: unknown part_id {part_id}; expected one of "
                             "parts/parts.txt")
        if part_id in column and image_id in row_of:
            points[row_of[image_id], column[part_id]] = (x, y)
            visible[row_of[image_id], column[part_id]] = bool(vis)
    rows, box_rows = [], []
    for image_id in ids:
        for table, name in ((labels, "image_class_labels.txt"), (boxes, "bounding_boxes.txt"),
                            (is_train, "train_test_split.txt")):
            if image_id not in table:
                raise ValueError(f"{os.path.join(root, name)}: no entry for image_id {image_id}")
        label = labels[image_id] - 1
        if not 0 <= label < len(class_names):
            raise ValueError(f"{os.path.join(root, 'image_class_labels.txt')}: class id "
                             f"{labels[image_id]} of image {image_id} outside 1..{len(class_names)}")
        rows.append((os.path.join(root, "images", images[image_id]), label))
        x, y, w, h = boxes[image_id]
        box_rows.append((x, y, x + w, y + h))
    table = _table_of(rows, {"box": np.asarray(box_rows, np.float32).reshape(-1, 4),
                             "points": points, "visible": visible})
    train = np.array([is_train[i] == 1 for i in ids], bool)
    return ({"train": _subset(table, np.nonzero(train)[0]),
             "test": _subset(table, np.nonzero(~train)[0])},
            class_names, group_names, group_matrix)


def check_headers(table):
    for path in table["path"]:
        check_image_file(path)


def open_cub(data_dir, image_size=64, num_train=None, num_val=0, num_test=None, seed=0,
             landmark_radius=0.06, part_groups=None):
    """CUB-200-2011 as a :class:`Source` with a stratified validation split from train."""
    notes = []
    official, class_names, group_names, group_matrix = cub_index(data_dir, part_groups)
    train_pool, test_pool = official["train"], official["test"]
    carved = splits_lib.carve(train_pool["label"],
                              _split_sizes(num_train, num_val, len(train_pool["label"]), notes),
                              seed)
    test_index = (splits_lib.stratified_take(test_pool["label"], num_test, seed=[seed, 7])
                  if num_test else np.arange(len(test_pool["label"])))
    tables = {"train": _subset(train_pool, carved["train"]),
              "validation": _subset(train_pool, carved["validation"]),
              "test": _subset(test_pool, test_index)}
    for table in tables.values():
        check_headers(table)
    return Source("cub", class_names, group_names, tables,
                  cub_loader(image_size, group_matrix, landmark_radius), image_size,
                  files_of=lambda t: list(t["path"]), description=data_dir, notes=notes)


def read_cub(root, split="train", image_size=64, part_groups=None, landmark_radius=0.06,
             limit=None, seed=0):
    """Read CUB-200-2011 in its original layout into memory (small subsets, tests).

    Training uses :func:`open_cub`, which streams the same examples from the files;
    this reader decodes them with the same ``tf.data`` code and stacks them. (Until issue
    45 it was ``keras_icnn.data.readers.read_cub``; ``readers`` now holds only the
    low-level readers ``sources`` builds on, so the two no longer import each other.)

    Args:
        root: the ``CUB_200_2011`` directory.
        split: ``"train"`` or ``"test"`` (``train_test_split.txt``).
        image_size: side of the cropped, resized images.
        part_groups: dict group name -> CUB part names (default
            ``readers.CUB_PART_GROUPS``: head, torso, legs, tail).
        landmark_radius: radius of the landmark disks in ``part_masks``, as a
            fraction of ``image_size``.
        limit: read at most this many images, taken evenly across classes
            (seeded by ``seed``), never the first ids (they run class by class).

    Returns:
        The feature dict plus ``part_names``; ``label`` is the 0-based class id.
    """
    if split not in ("train", "test"):
        raise ValueError(f"`split` must be 'train' or 'test'. Received: split={split!r}")
    validation.positive_int(image_size, "image_size")
    tables, class_names, group_names, group_matrix = cub_index(root, part_groups)
    table = tables[split]
    if limit is not None:
        table = {k: v[splits_lib.stratified_take(table["label"], int(limit), seed)]
                 for k, v in table.items()}
    # A file images.txt names but the copy lacks: FileNotFoundError naming it, before tf.data.
    check_headers(table)
    source = Source("cub", class_names, group_names, {split: table},
                            cub_loader(image_size, group_matrix, landmark_radius),
                            image_size, files_of=lambda t: list(t["path"]))
    out = source.materialize(split)
    out["part_names"] = np.asarray(group_names)
    return out


def _folder_classes(root):
    return sorted(d for d in os.listdir(root) if os.path.isdir(os.path.join(root, d))
                  and not d.startswith("."))


def _folder_rows(root, class_names, data_dir=None):
    """(path, label) of every image file of ``root/<class>/``; each must lie inside
    ``data_dir`` (default ``root``) once links are resolved."""
    rows = []
    for label, name in enumerate(class_names):
        folder = os.path.join(root, name)
        if not os.path.isdir(folder):
            continue
        for f in sorted(os.listdir(folder)):
            if f.lower().endswith(IMAGE_EXTENSIONS):
                path = readers.inside_dataset(data_dir or root, os.path.join(folder, f), folder,
                                              entry=f)
                rows.append((path, label))
    return rows


def open_folder(data_dir, image_size=64, num_train=None, num_val=0, num_test=None, seed=0,
                test_fraction=0.2):
    """A class-per-subfolder directory of JPEG/PNG images as a :class:`Source`.

    ``DIR/<class>/*`` is split into test (``test_fraction``, stratified),
    validation (``num_val``) and train; ``DIR/train/<class>/*`` with
    ``DIR/test/<class>/*`` (and ``DIR/validation/<class>/*``) keeps those splits.
    """
    notes = []
    _require_dir(data_dir, "an image folder (DIR/<class>/*.jpg)")
    presplit = os.path.isdir(os.path.join(data_dir, "train"))
    base = os.path.join(data_dir, "train") if presplit else data_dir
    class_names = _folder_classes(base)
    if len(class_names) < 2:
        raise ValueError(f"{base}: expected one subfolder per class (at least 2) holding "
                         f"JPEG/PNG files. Received: {len(class_names)} subfolder(s)")
    rows = _folder_rows(base, class_names, data_dir)
    if not rows:
        raise ValueError(f"{base}: no {'/'.join(IMAGE_EXTENSIONS)} files in the class subfolders")
    pool = _table_of(rows)
    tables = {}
    if presplit:
        for split in ("test", "validation"):
            path = os.path.join(data_dir, split)
            if os.path.isdir(path):
                unknown = sorted(set(_folder_classes(path)) - set(class_names))
                if unknown:
                    raise ValueError(f"{path}: classes {unknown} are not in {base}")
                tables[split] = _table_of(_folder_rows(path, class_names, data_dir))
        if "test" not in tables:
            raise ValueError(f"{data_dir}: has train/ but no test/ folder (DIR/test/<class>/*)")
        labels = pool["label"]
        if "validation" in tables:
            keep = (splits_lib.stratified_take(labels, num_train, seed) if num_train
                    else np.arange(len(labels)))
            tables["train"] = _subset(pool, keep)
        else:
            carved = splits_lib.carve(labels, _split_sizes(num_train, num_val, len(labels), notes),
                                      seed)
            tables.update(train=_subset(pool, carved["train"]),
                          validation=_subset(pool, carved["validation"]))
    else:
        n_test = int(round(test_fraction * len(pool["label"])))
        carved = splits_lib.carve(
            pool["label"],
            [("test", n_test)] + _split_sizes(num_train, num_val, len(pool["label"]) - n_test, notes),
            seed)
        tables = {k: _subset(pool, v) for k, v in carved.items()}
    if num_test:
        tables["test"] = _subset(tables["test"], splits_lib.stratified_take(
            tables["test"]["label"], num_test, seed=[seed, 7]))
    for table in tables.values():
        check_headers(table)
    return Source("folder", class_names, None, tables, image_loader(image_size), image_size,
                  files_of=lambda t: list(t["path"]), description=data_dir, notes=notes)


def _pascal_objects(root, categories, min_object_pixels):
    """Per image id: the (object index, label) of its usable animal objects."""
    from scipy import io as sio

    ann_dir = os.path.join(root, "Annotations_Part")
    _require_dir(ann_dir, "Pascal-Part annotations (Annotations_Part/<id>.mat)")
    _require_dir(os.path.join(root, "JPEGImages"), "VOC images (JPEGImages/<id>.jpg)")
    out = {}
    for f in sorted(os.listdir(ann_dir)):
        if not f.endswith(".mat"):
            continue
        path = readers.inside_dataset(root, os.path.join(ann_dir, f), ann_dir, entry=f)
        try:
            anno = sio.loadmat(path, squeeze_me=True, struct_as_record=False)["anno"]
            objects = readers.as_list(anno.objects)
        except (KeyError, AttributeError, ValueError) as err:
            raise ValueError(f"{path}: not a Pascal-Part annotation (expected a struct 'anno' "
                             f"with field 'objects'): {err}") from None
        found = [(i, categories.index(str(getattr(o, "class"))))
                 for i, o in enumerate(objects)
                 if str(getattr(o, "class")) in categories
                 and np.asarray(o.mask).astype(bool).sum() >= min_object_pixels]
        if found:
            image = f"{f[:-4]}.jpg"
            readers.inside_dataset(root, os.path.join(root, "JPEGImages", image),
                                   os.path.join(root, "JPEGImages"), entry=image)
            out[f[:-4]] = found
    return out


def open_pascal_part(data_dir, image_size=64, num_train=None, num_val=0, num_test=None, seed=0,
                     categories=readers.PASCAL_ANIMALS, test_fraction=0.25, min_object_pixels=64):
    """Pascal-Part animals as a :class:`Source`: images split by id, seeded, stratified by
    the category of their first animal; every animal object of an image is an example."""
    notes = []
    _require_dir(data_dir, "Pascal-Part root (expected JPEGImages/ and Annotations_Part/)")
    categories = tuple(categories)
    by_image = _pascal_objects(data_dir, categories, min_object_pixels)
    if not by_image:
        raise ValueError(f"{data_dir}: no objects of {categories} with at least "
                         f"{min_object_pixels} mask pixels in Annotations_Part/")
    ids = sorted(by_image)
    image_labels = np.asarray([by_image[i][0][1] for i in ids])
    n_test = num_test or int(round(test_fraction * len(ids)))
    carved = splits_lib.carve(
        image_labels, [("test", n_test)] + _split_sizes(num_train, num_val, len(ids) - n_test, notes),
        seed)
    group_names = [g for g in readers.GROUP_ORDER
                   if any(g in readers.PASCAL_PART_GROUPS[c] for c in categories)]
    tables = {}
    for split, index in carved.items():
        rows = [(os.path.join(data_dir, "Annotations_Part", f"{ids[i]}.mat"), label, obj,
                 os.path.join(data_dir, "JPEGImages", f"{ids[i]}.jpg"))
                for i in index for obj, label in by_image[ids[i]]]
        tables[split] = {"path": np.asarray([r[3] for r in rows], dtype=object).astype(str),
                         "label": np.asarray([r[1] for r in rows], np.int64),
                         "annotation": np.asarray([r[0] for r in rows], dtype=object).astype(str),
                         "object": np.asarray([r[2] for r in rows], np.int64)}
    for table in tables.values():
        check_headers(table)
    size = int(image_size)
    groups = len(group_names)

    def read_object(annotation, image_path, obj):
        ex = readers.pascal_part_object(annotation.decode(), image_path.decode(), int(obj),
                                        categories, group_names, size)
        return ex["image"], ex["part_masks"], ex["landmarks"], ex["object_mask"]

    def load(record):
        image, masks, landmarks, obj_mask = tf.numpy_function(
            read_object, [record["annotation"], record["path"], record["object"]],
            [tf.uint8, tf.bool, tf.float32, tf.bool], stateful=False)
        image.set_shape([size, size, 3])
        masks.set_shape([size, size, groups])
        landmarks.set_shape([groups, 2])
        obj_mask.set_shape([size, size])
        return {"image": image, "label": record["label"],
                "bbox": tf.constant([0.0, 0.0, size, size], tf.float32),
                "part_masks": masks, "landmarks": landmarks, "object_mask": obj_mask}

    return Source("pascal_part", categories, group_names, tables, load, image_size,
                  files_of=lambda t: list(t["path"]), description=data_dir, notes=notes)


def _tfds_builder(data_dir, tfds_name):
    import tensorflow_datasets as tfds

    _require_dir(data_dir, "a prepared TFDS data directory")
    if not tfds_name:
        raise ValueError("`tfds_name` is needed with dataset='tfds' (e.g. 'oxford_flowers102' "
                         "or 'name/config:1.0.0', prepared under data_dir). Received: ''")
    name = tfds_name.split(":")[0]
    folder = os.path.join(data_dir, *name.split("/"))
    candidates = []
    for path, _, files in os.walk(folder):
        if "dataset_info.json" in files:
            candidates.append(path)
    if ":" in tfds_name:
        version = tfds_name.split(":")[1]
        candidates = [c for c in candidates if os.path.basename(c) == version]
    if not candidates:
        raise FileNotFoundError(
            f"TFDS dataset {tfds_name!r} is not prepared under {data_dir} (no "
            f"{folder}/.../dataset_info.json). keras_icnn never downloads: prepare it with "
            f"`tfds build {name} --data_dir={data_dir}` on a machine with internet, then copy it.")
    chosen = sorted(candidates)[-1]
    # Every file the builder may read (its dataset_info.json, features, record shards) must
    # lie inside data_dir once links are resolved.
    readers.inside_dataset(data_dir, chosen, folder, entry=os.path.relpath(chosen, data_dir))
    for f in sorted(os.listdir(chosen)):
        readers.inside_dataset(data_dir, os.path.join(chosen, f), chosen, entry=f)
    return tfds.builder_from_directory(chosen)


def open_tfds(data_dir, tfds_name, image_size=64, num_train=None, num_val=0, num_test=None,
              seed=0, image_key="image", label_key="label"):
    """An image-classification TFDS dataset prepared under ``data_dir`` as a :class:`Source`."""
    notes = []
    import tensorflow_datasets as tfds

    builder = _tfds_builder(data_dir, tfds_name)
    features = builder.info.features
    for key in (image_key, label_key):
        if key not in features:
            raise ValueError(f"TFDS dataset {tfds_name!r} has no feature {key!r}; it has "
                             f"{sorted(features.keys())}")
    label_feature = features[label_key]
    if not hasattr(label_feature, "num_classes"):
        raise ValueError(f"TFDS feature {label_key!r} of {tfds_name!r} is not a ClassLabel")
    class_names = list(label_feature.names)
    available = list(builder.info.splits.keys())
    if "train" not in available:
        raise ValueError(f"TFDS dataset {tfds_name!r} has no 'train' split; it has {available}")
    decoders = {image_key: tfds.decode.SkipDecoding()}

    def raw(split):
        return builder.as_dataset(split=split, shuffle_files=False, decoders=decoders)

    def split_labels(split):
        ds = raw(split).map(lambda ex: ex[label_key]).batch(4096)
        return np.concatenate(list(ds.as_numpy_iterator()) or [np.zeros(0, np.int64)])

    train_labels = split_labels("train")
    test_split = "test" if "test" in available else ("validation" if "validation" in available
                                                      else None)
    tables = {}
    if test_split:
        test_labels = split_labels(test_split)
        keep = (splits_lib.stratified_take(test_labels, num_test, seed=[seed, 7]) if num_test
                else np.arange(len(test_labels)))
        tables["test"] = (test_split, test_labels, keep)
        carved = splits_lib.carve(train_labels,
                                  _split_sizes(num_train, num_val, len(train_labels), notes),
                                  seed)
    else:
        n_test = num_test or int(round(0.2 * len(train_labels)))
        carved = splits_lib.carve(
            train_labels,
            [("test", n_test)] + _split_sizes(num_train, num_val, len(train_labels) - n_test, notes),
            seed)
        tables["test"] = ("train", train_labels, carved["test"])
    tables["train"] = ("train", train_labels, carved["train"])
    tables["validation"] = ("train", train_labels, carved["validation"])
    size = int(image_size)

    class _TFDSSource(Source):
        def examples(self, split, shuffle=False, seed=0, num_parallel_calls=tf.data.AUTOTUNE,
                     shard=None):
            tfds_split, records = self._tfds[split]
            keep = self._table(split)["index"]
            member = np.zeros(records, bool)
            member[keep] = True
            member = tf.constant(member)
            ds = raw(tfds_split).enumerate().filter(lambda i, ex: tf.gather(member, i))
            ds = ds.map(lambda i, ex: (ex[image_key], ex[label_key]))
            if shard is not None:
                ds = ds.shard(*shard)
            if shuffle:
                # Encoded images: the buffer holds compressed bytes, not decoded pixels.
                ds = ds.shuffle(min(DEFAULT_SHUFFLE_BUFFER, max(len(keep), 1)), seed=seed,
                                reshuffle_each_iteration=True)

            def decode(data, label):
                image = tf.io.decode_image(data, channels=3, expand_animations=False)
                image.set_shape([None, None, 3])
                return {"image": _resize_uint8(image, size), "label": tf.cast(label, tf.int64)}

            return ds.map(decode, num_parallel_calls=num_parallel_calls, deterministic=True)

    index = {k: {"label": v[1][v[2]], "index": np.asarray(v[2], np.int64)}
             for k, v in tables.items()}
    source = _TFDSSource("tfds", class_names, None, index, image_size=size,
                         description=f"{tfds_name} in {data_dir}", notes=notes, streamed=True)
    source._tfds = {k: (v[0], len(v[1])) for k, v in tables.items()}
    return source


def open_synthetic(image_size=64, num_classes=6, num_train=4800, num_val=600, num_test=1200,
                   seed=0, task="multi", category="bird", occlusion=None,
                   synthetic_config="default", **knobs):
    """The synthetic part data as a :class:`Source` (in memory; deterministic in ``seed``).

    ``synthetic_config`` names a difficulty of ``synthetic_parts.SYNTHETIC_CONFIGS``
    ("default", or "hard": CIFAR-like, calibrated with 10 categories); ``occlusion``
    and ``knobs`` (``similarity``, ``color_jitter``, ``distractors``) override its
    values where not None.

    Example:
        >>> source = open_synthetic(num_classes=10, num_train=300, num_val=0, num_test=100,
        ...                         synthetic_config="hard")
    """
    from keras_icnn.data import synthetic_parts

    look = synthetic_parts.synthetic_config(synthetic_config)
    unknown = set(knobs) - set(look)
    if unknown:
        raise TypeError(f"open_synthetic() got unexpected arguments {sorted(unknown)}; the "
                        f"difficulty knobs are {sorted(look)}")
    look.update({k: v for k, v in dict(knobs, occlusion=occlusion).items() if v is not None})
    common = dict(image_size=image_size, num_classes=num_classes, seed=seed, **look)
    tables = {}
    for arg, n in (("num_train", num_train), ("num_val", num_val), ("num_test", num_test)):
        validation.non_negative_int(n, arg)
    for split, n in (("train", num_train), ("validation", num_val), ("test", num_test)):
        if task == "single":
            tables[split] = synthetic_parts.make_single_category_examples(
                category, n, split=split, **common)
        else:
            tables[split] = synthetic_parts.make_examples(n, split=split, **common)
    if task == "single":
        class_names = ["background", str(category)]
    else:
        class_names = list(synthetic_parts.CATEGORY_NAMES[:num_classes])
    name = "" if synthetic_config == "default" else f" {synthetic_config}"
    return Source("synthetic", class_names, list(synthetic_parts.PART_NAMES), tables,
                  image_size=image_size, description=f"synthetic{name} seed {seed}")


def open_source(dataset="synthetic", data_dir="", image_size=64, num_train=None, num_val=None,
                num_test=None, seed=0, tfds_name="", **synthetic):
    """The :class:`Source` named by ``--dataset`` (see the module docstring).

    Args:
        dataset: one of ``DATASETS``.
        data_dir: the dataset's directory (real datasets).
        image_size: side of the square images.
        num_train, num_test: limits, taken evenly across classes (``None``/0:
            all of a real dataset's images; the synthetic data needs a count).
        num_val: validation images, carved from the training files (stratified).
        seed: seed of the splits (and of the synthetic data).
        tfds_name: the TFDS dataset (``dataset="tfds"``).
        **synthetic: ``num_classes``, ``task``, ``category``, ``occlusion``,
            ``synthetic_config`` (and its knobs) of the synthetic data.
    """
    if dataset not in DATASETS:
        raise ValueError(f"`dataset` must be one of {DATASETS}. Received: dataset={dataset!r}")
    num_val = int(num_val or 0)
    common = dict(image_size=image_size, num_train=num_train or None, num_val=num_val,
                  num_test=num_test or None, seed=seed)
    if dataset == "synthetic":
        return open_synthetic(image_size, num_train=num_train, num_val=num_val, num_test=num_test,
                              seed=seed, **synthetic)
    if dataset == "cub":
        return open_cub(data_dir, **common)
    if dataset == "pascal_part":
        return open_pascal_part(data_dir, **common)
    if dataset == "folder":
        return open_folder(data_dir, **common)
    return open_tfds(data_dir, tfds_name, **common)
