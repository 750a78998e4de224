"""A class-per-subfolder directory of images as a :class:`~keras_icnn.data.source.Source`
(``DIR/<class>/*`` or ``DIR/train|validation|test/<class>/*``); files linked out of the
directory are refused.
"""
import os

import numpy as np

from keras_icnn.data import readers, splits as splits_lib
from keras_icnn.data.source import (
    IMAGE_EXTENSIONS, Source, check_headers, image_loader, require_dir, split_sizes, subset,
    table_of)


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
    require_dir(data_dir, "an image folder (DIR/<class>/*.jpg)")
    presplit = os.path.isdir(os.path.join(data_dir, "train"))
    base = os.path.join(data_dir, "train") if presplit else data_dir
    class_names = _folder_classes(base)
    if len(class_names) < 2:
        raise ValueError(f"{base}: expected one subfolder per class (at least 2) holding "
                         f"JPEG/PNG files. Received: {len(class_names)} subfolder(s)")
    rows = _folder_rows(base, class_names, data_dir)
    if not rows:
        raise ValueError(f"{base}: no {'/'.join(IMAGE_EXTENSIONS)} files in the class subfolders")
    pool = table_of(rows)
    tables = {}
    if presplit:
        for split in ("test", "validation"):
            path = os.path.join(data_dir, split)
            if os.path.isdir(path):
                unknown = sorted(set(_folder_classes(path)) - set(class_names))
                if unknown:
                    raise ValueError(f"{path}: classes {unknown} are not in {base}")
                tables[split] = table_of(_folder_rows(path, class_names, data_dir))
        if "test" not in tables:
            raise ValueError(f"{data_dir}: has train/ but no test/ folder (DIR/test/<class>/*)")
        labels = pool["label"]
        if "validation" in tables:
            keep = (splits_lib.stratified_take(labels, num_train, seed) if num_train
                    else np.arange(len(labels)))
            tables["train"] = subset(pool, keep)
        else:
            carved = splits_lib.carve(labels, split_sizes(num_train, num_val, len(labels), notes),
                                      seed)
            tables.update(train=subset(pool, carved["train"]),
                          validation=subset(pool, carved["validation"]))
    else:
        n_test = int(round(test_fraction * len(pool["label"])))
        carved = splits_lib.carve(
            pool["label"],
            [("test", n_test)] + split_sizes(num_train, num_val, len(pool["label"]) - n_test, notes),
            seed)
        tables = {k: subset(pool, v) for k, v in carved.items()}
    if num_test:
        tables["test"] = subset(tables["test"], splits_lib.stratified_take(
            tables["test"]["label"], num_test, seed=[seed, 7]))
    for table in tables.values():
        check_headers(table)
    return Source("folder", class_names, None, tables, image_loader(image_size), image_size,
                  files_of=lambda t: list(t["path"]), description=data_dir, notes=notes)


