"""Pascal-Part animals as a :class:`~keras_icnn.data.source.Source`: one example per animal
object, images split by id, part masks merged into ICNN's groups (``keras_icnn.data.readers``).
"""
import os

import numpy as np
import tensorflow as tf

from keras_icnn.data import readers, splits as splits_lib
from keras_icnn.data.source import Source, check_headers, require_dir, split_sizes


def _pascal_objects(root, categories, min_object_pixels):
    """Per image id: the (object index, label) of its usable animal objects."""
    from scipy import io as sio

    ann_dir = os.path.join(root, "Annotations_Part")
    require_dir(ann_dir, "Pascal-Part annotations (Annotations_Part/<id>.mat)")
    require_dir(os.path.join(root, "JPEGImages"), "VOC images (JPEGImages/<id>.jpg)")
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
    require_dir(data_dir, "Pascal-Part root (expected JPEGImages/ and Annotations_Part/)")
    categories = tuple(categories)
    by_image = _pascal_objects(data_dir, categories, min_object_pixels)
    if not by_image:
        raise ValueError(f"{data_dir}: no objects of {categories} with at least "
                         f"{min_object_pixels} mask pixels in Annotations_Part/")
    ids = sorted(by_image)
    image_labels = np.asarray([by_image[i][0][1] for i in ids])
    n_test = num_test or int(round(test_fraction * len(ids)))
    carved = splits_lib.carve(
        image_labels, [("test", n_test)] + split_sizes(num_train, num_val, len(ids) - n_test, notes),
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


