"""Readers for CUB-200-2011 and Pascal-Part from a local directory.

Both produce the feature dict of ``keras_icnn.data.pipeline`` (``image``,
``label``, ``bbox``, ``part_masks``, ``landmarks``, ``object_mask``) plus
``part_names``, with every object cropped to its box and resized to
``image_size`` as the papers do. Nothing is downloaded: point them at a copy
of the dataset in its original layout.

CUB-200-2011 (``root`` holds ``images.txt``, ``image_class_labels.txt``,
``bounding_boxes.txt``, ``train_test_split.txt``, ``parts/parts.txt``,
``parts/part_locs.txt`` and ``images/``): CUB has landmarks, not part
segmentations. Landmarks of a part group are the mean of its visible CUB
parts; ``part_masks`` are disks of radius ``landmark_radius`` (a fraction of
the image side) around each visible CUB part of the group, an approximation
documented as such; ``object_mask`` is the whole crop.

Pascal-Part (``root`` holds ``JPEGImages/<id>.jpg`` and
``Annotations_Part/<id>.mat``, the MATLAB files of Chen et al. 2014): one
example per animal object, part masks merged into the groups of ICNN
§5.2.1; a group's landmark is its mask pixel nearest to the mask centroid.
"""

import os

import numpy as np
import tensorflow as tf

# CUB part names (parts/parts.txt) grouped into head / torso / legs / tail.
CUB_PART_GROUPS = {
    "head": ("beak", "crown", "forehead", "left eye", "right eye", "nape", "throat"),
    "torso": ("back", "belly", "breast", "left wing", "right wing"),
    "legs": ("left leg", "right leg"),
    "tail": ("tail",),
}

# ICNN §5.2.1 merges of Pascal-Part part names, per category.
_HEAD = ("head", "leye", "reye", "lear", "rear", "nose", "muzzle", "beak", "lhorn", "rhorn")
_FRONT = ("lfleg", "lfpa", "rfleg", "rfpa", "lfuleg", "lflleg", "rfuleg", "rflleg", "lfho", "rfho")
_BACK = ("lbleg", "lbpa", "rbleg", "rbpa", "lbuleg", "lblleg", "rbuleg", "rblleg", "lbho", "rbho")
PASCAL_PART_GROUPS = {
    "bird": {"head": ("head", "leye", "reye", "beak"),
             "torso": ("torso", "neck", "lwing", "rwing"),
             "legs": ("lleg", "lfoot", "rleg", "rfoot"), "tail": ("tail",)},
    "cat": {"head": _HEAD, "torso": ("torso", "neck"), "frontal_legs": _FRONT,
            "back_legs": _BACK, "tail": ("tail",)},
    "dog": {"head": _HEAD, "torso": ("torso", "neck"), "frontal_legs": _FRONT,
            "back_legs": _BACK, "tail": ("tail",)},
    "cow": {"head": _HEAD, "torso": ("torso", "neck"), "frontal_legs": _FRONT, "back_legs": _BACK},
    "horse": {"head": _HEAD, "torso": ("torso", "neck"), "frontal_legs": _FRONT, "back_legs": _BACK},
    "sheep": {"head": _HEAD, "torso": ("torso", "neck"), "frontal_legs": _FRONT, "back_legs": _BACK},
}
PASCAL_ANIMALS = tuple(PASCAL_PART_GROUPS)
GROUP_ORDER = ("head", "torso", "legs", "frontal_legs", "back_legs", "tail")


MOVED = {"read_cub": "keras_icnn.data.cub"}  # issue 45: readers no longer imports sources


def __getattr__(name):
    """Names that moved out of this module (PEP 562): ``readers.read_cub`` still works, with a
    ``DeprecationWarning``; it is ``keras_icnn.data.sources.read_cub`` now."""
    if name in MOVED:
        import importlib
        import warnings

        warnings.warn(f"keras_icnn.data.readers.{name} moved: use "
                      f"keras_icnn.data.sources.{name}", DeprecationWarning, stacklevel=2)
        return getattr(importlib.import_module(MOVED[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _require_dir(path, what):
    if not os.path.isdir(path):
        raise FileNotFoundError(f"{what}: directory not found: {path}")


def _require_file(path, what):
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{what}: expected file not found: {path}")


def inside_dataset(root, path, index, line=None, entry=None):
    """``path`` if its real path (symbolic links and ``..`` resolved) lies inside the real path
    of the dataset directory ``root``; otherwise a ``ValueError`` naming ``index`` (the index
    file or directory that named the file), its ``line`` and the ``entry`` as written. No
    file outside the dataset directory is ever opened, so none is echoed."""
    real_root = os.path.realpath(root)
    real = os.path.realpath(path)
    if os.path.commonpath([real_root, real]) != real_root:
        where = f"{index}, line {line}" if line is not None else str(index)
        shown = path if entry is None else entry
        raise ValueError(
            f"{where}: {shown!r} resolves to {real}, outside the dataset directory "
            f"{real_root}. keras_icnn reads only files inside the dataset directory "
            "(--data_dir): copy the file in, or fix the entry.")
    return path


def read_table(path, columns, types, what, line_numbers=None):
    """Whitespace table with ``columns`` fields (the last may contain spaces); the line of
    each row is appended to ``line_numbers`` when it is a list."""
    _require_file(path, what)
    rows = []
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, start=1):
            if not line.strip():
                continue
            parts = line.split(None, len(types) - 1)
            try:
                if len(parts) != len(types):
                    raise ValueError
                rows.append(tuple(t(p.strip()) for t, p in zip(types, parts)))
                if line_numbers is not None:
                    line_numbers.append(lineno)
            except ValueError:
                raise ValueError(
                    f"{path}:{lineno}: malformed line {line.strip()!r}; expected "
                    f"'{' '.join(columns)}'") from None
    return rows


def decode_image(path):
    _require_file(path, "image")
    data = tf.io.read_file(path)
    try:
        return tf.io.decode_image(data, channels=3, expand_animations=False).numpy()
    except (tf.errors.InvalidArgumentError, tf.errors.UnknownError) as err:
        first = str(getattr(err, "message", err)).splitlines()[0]
        raise ValueError(f"{path}: cannot be decoded as an image ({first}); replace or remove "
                         "the file") from None


def _crop_resize(image, box, size, masks=None):
    """Crop ``box`` (x0, y0, x1, y1, pixels) and resize to ``size`` x ``size``."""
    h, w = image.shape[:2]
    x0, y0 = int(np.clip(np.floor(box[0]), 0, w - 1)), int(np.clip(np.floor(box[1]), 0, h - 1))
    x1, y1 = int(np.clip(np.ceil(box[2]), x0 + 1, w)), int(np.clip(np.ceil(box[3]), y0 + 1, h))
    crop = tf.image.resize(image[y0:y1, x0:x1], (size, size), method="bilinear")
    out = np.clip(np.round(crop.numpy()), 0, 255).astype(np.uint8)
    resized_masks = None
    if masks is not None:
        m = tf.image.resize(masks[y0:y1, x0:x1].astype(np.uint8), (size, size), method="nearest")
        resized_masks = m.numpy().astype(bool)
    scale = np.array([size / (x1 - x0), size / (y1 - y0)], np.float32)
    return out, resized_masks, np.array([x0, y0], np.float32), scale


def _stack(out, part_names, image_size):
    n = len(out["image"])
    result = {
        "image": np.stack(out["image"]) if n else np.zeros((0, image_size, image_size, 3), np.uint8),
        "label": np.asarray(out["label"], np.int64),
        "bbox": np.asarray(out["bbox"], np.float32).reshape(n, 4),
        "part_masks": (np.stack(out["part_masks"]) if n else
                       np.zeros((0, image_size, image_size, len(part_names)), bool)),
        "landmarks": np.asarray(out["landmarks"], np.float32).reshape(n, len(part_names), 2),
        "object_mask": (np.stack(out["object_mask"]) if n else
                        np.zeros((0, image_size, image_size), bool)),
        "part_names": np.asarray(part_names),
    }
    return result


def as_list(value):
    if isinstance(value, np.ndarray):
        return list(value.ravel())
    return [value]


def _nearest_to_centroid(mask):
    ys, xs = np.nonzero(mask)
    if len(xs) == 0:
        return np.array([np.nan, np.nan], np.float32)
    cx, cy = xs.mean(), ys.mean()
    k = np.argmin((xs - cx) ** 2 + (ys - cy) ** 2)
    return np.array([xs[k] + 0.5, ys[k] + 0.5], np.float32)


def _pascal_annotation(path):
    from scipy import io as sio

    _require_file(path, "Pascal-Part annotation")
    try:
        anno = sio.loadmat(path, squeeze_me=True, struct_as_record=False)["anno"]
        return as_list(anno.objects)
    except (KeyError, AttributeError, ValueError) as err:
        raise ValueError(f"{path}: not a Pascal-Part annotation (expected a struct 'anno' "
                         f"with field 'objects'): {err}") from None


def pascal_object_example(obj, image, categories, group_names, image_size, where=""):
    """One animal object of a Pascal-Part image as a feature dict (numpy)."""
    cls = str(getattr(obj, "class"))
    mask = np.asarray(obj.mask).astype(bool)
    if image.shape[:2] != mask.shape:
        raise ValueError(f"{where}: object mask {mask.shape} does not match the image "
                         f"{image.shape[:2]}")
    groups = PASCAL_PART_GROUPS[cls]
    part_masks = np.zeros(mask.shape + (len(group_names),), bool)
    parts = [] if isinstance(obj.parts, np.ndarray) and obj.parts.size == 0 else as_list(obj.parts)
    for part in parts:
        name = str(part.part_name)
        for g, group in enumerate(group_names):
            if name in groups.get(group, ()):
                part_masks[..., g] |= np.asarray(part.mask).astype(bool)
    ys, xs = np.nonzero(mask)
    box = (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1)
    stacked = np.concatenate([part_masks, mask[..., None]], -1)
    crop, masks, _, _ = _crop_resize(image, box, image_size, stacked)
    part_crop, obj_crop = masks[..., :-1], masks[..., -1]
    return {"image": crop, "label": categories.index(cls),
            "bbox": np.array([0, 0, image_size, image_size], np.float32),
            "part_masks": part_crop,
            "landmarks": np.stack([_nearest_to_centroid(part_crop[..., g])
                                   for g in range(len(group_names))]).reshape(-1, 2),
            "object_mask": obj_crop}


def pascal_part_object(annotation_path, image_path, index, categories, group_names, image_size):
    """Object ``index`` of one Pascal-Part annotation file as a feature dict (the streamed
    reader's unit of work)."""
    obj = _pascal_annotation(annotation_path)[index]
    return pascal_object_example(obj, decode_image(image_path), tuple(categories), group_names,
                                 image_size, where=annotation_path)


def read_pascal_part(root, categories=PASCAL_ANIMALS, image_ids=None, image_size=64,
                     min_object_pixels=64):
    """Read Pascal-Part animal objects with ICNN's part groups into memory.

    Training uses ``keras_icnn.data.sources.open_pascal_part`` (streamed, split by
    image id and stratified by category); this reader is for small subsets.

    Args:
        root: directory holding ``JPEGImages/`` and ``Annotations_Part/``.
        categories: animal classes to read (subset of ``PASCAL_ANIMALS``);
            ``label`` is the index into this tuple.
        image_ids: VOC ids to read (default: every ``.mat`` file).
        image_size: side of the cropped, resized objects.
        min_object_pixels: skip objects with fewer mask pixels.

    Returns:
        The feature dict. ``part_names`` is the union of the groups of the
        requested categories (head, torso, legs, frontal_legs, back_legs,
        tail, in that order); a group a category does not have is empty.
    """
    categories = tuple(categories)
    unknown = [c for c in categories if c not in PASCAL_PART_GROUPS]
    if unknown:
        raise ValueError(f"Unknown Pascal-Part categories {unknown}; expected some of {PASCAL_ANIMALS}")
    _require_dir(root, "Pascal-Part root (expected JPEGImages/ and Annotations_Part/)")
    ann_dir = os.path.join(root, "Annotations_Part")
    img_dir = os.path.join(root, "JPEGImages")
    _require_dir(ann_dir, "Pascal-Part annotations (Annotations_Part/<id>.mat)")
    _require_dir(img_dir, "VOC images (JPEGImages/<id>.jpg)")
    if image_ids is None:
        image_ids = sorted(f[:-4] for f in os.listdir(ann_dir) if f.endswith(".mat"))
    group_names = [g for g in GROUP_ORDER if any(g in PASCAL_PART_GROUPS[c] for c in categories)]
    out = {k: [] for k in ("image", "label", "bbox", "part_masks", "landmarks", "object_mask")}
    for image_id in image_ids:
        path = inside_dataset(root, os.path.join(ann_dir, f"{image_id}.mat"), ann_dir,
                              entry=f"{image_id}.mat")
        jpeg = inside_dataset(root, os.path.join(img_dir, f"{image_id}.jpg"), img_dir,
                              entry=f"{image_id}.jpg")
        image = None
        for obj in _pascal_annotation(path):
            if str(getattr(obj, "class")) not in categories:
                continue
            if np.asarray(obj.mask).astype(bool).sum() < min_object_pixels:
                continue
            if image is None:
                image = decode_image(jpeg)
            ex = pascal_object_example(obj, image, categories, group_names, image_size,
                                       where=f"{path} ({image_id}.jpg)")
            for k in out:
                out[k].append(ex[k])
    return _stack(out, group_names, image_size)
