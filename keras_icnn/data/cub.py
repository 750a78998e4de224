"""CUB-200-2011 in its original layout as a :class:`~keras_icnn.data.source.Source`
(``open_cub``, streamed) or in memory (``read_cub``): every entry of ``images.txt`` must lie inside
the dataset directory; images are cropped to the bird's box, part landmarks grouped into head /
torso / legs / tail with disk masks (``keras_icnn.data.readers``).
"""
import os

import numpy as np
import tensorflow as tf

from keras_icnn import validation
from keras_icnn.data import readers, splits as splits_lib
from keras_icnn.data.source import (
    Source, check_headers, crop_box, decode_file, require_dir, resize_uint8, split_sizes, subset,
    table_of)


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
        image = decode_file(record["path"])
        x0, y0, x1, y1 = crop_box(image, record["box"])
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
        return {"image": resize_uint8(crop, size), "label": record["label"],
                "bbox": tf.constant([0.0, 0.0, size, size], tf.float32),
                "part_masks": part_masks, "landmarks": landmarks,
                "object_mask": tf.ones([size, size], tf.bool)}

    return load


def cub_index(root, part_groups=None):
    """CUB-200-2011's file tables (``train``, ``test``), class names and part groups.

    Reads only the text files and checks every image file's header; no image
    is decoded. Tables hold ``path``, ``label`` (0-based), ``box`` (x0, y0,
    x1, y1), ``points`` [Q, 2] and ``visible`` [Q] of the CUB parts that
    belong to a group, and a ``group_matrix`` [Q, G] maps parts to groups.
    """
    require_dir(root, "CUB-200-2011 root (expected images.txt, parts/, images/ ...)")
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
    table = table_of(rows, {"box": np.asarray(box_rows, np.float32).reshape(-1, 4),
                             "points": points, "visible": visible})
    train = np.array([is_train[i] == 1 for i in ids], bool)
    return ({"train": subset(table, np.nonzero(train)[0]),
             "test": subset(table, np.nonzero(~train)[0])},
            class_names, group_names, group_matrix)


def open_cub(data_dir, image_size=64, num_train=None, num_val=0, num_test=None, seed=0,
             landmark_radius=0.06, part_groups=None):
    """CUB-200-2011 as a :class:`Source` with a stratified validation split from train."""
    notes = []
    official, class_names, group_names, group_matrix = cub_index(data_dir, part_groups)
    train_pool, test_pool = official["train"], official["test"]
    carved = splits_lib.carve(train_pool["label"],
                              split_sizes(num_train, num_val, len(train_pool["label"]), notes),
                              seed)
    test_index = (splits_lib.stratified_take(test_pool["label"], num_test, seed=[seed, 7])
                  if num_test else np.arange(len(test_pool["label"])))
    tables = {"train": subset(train_pool, carved["train"]),
              "validation": subset(train_pool, carved["validation"]),
              "test": subset(test_pool, test_index)}
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


