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
_GROUP_ORDER = ("head", "torso", "legs", "frontal_legs", "back_legs", "tail")


def _require_dir(path, what):
    if not os.path.isdir(path):
        raise FileNotFoundError(f"{what}: directory not found: {path}")


def _require_file(path, what):
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{what}: expected file not found: {path}")


def _read_table(path, columns, types, what):
    """Whitespace table with ``columns`` fields (the last may contain spaces)."""
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
            except ValueError:
                raise ValueError(
                    f"{path}:{lineno}: malformed line {line.strip()!r}; expected "
                    f"'{' '.join(columns)}'") from None
    return rows


def _decode_image(path):
    _require_file(path, "image")
    data = tf.io.read_file(path)
    return tf.io.decode_image(data, channels=3, expand_animations=False).numpy()


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


def _disk_masks(points, visible, size, radius):
    """[size, size, P] disks around the visible points of each group (list of [k,2])."""
    yy, xx = np.mgrid[0:size, 0:size] + 0.5
    out = np.zeros((size, size, len(points)), bool)
    for g, (pts, vis) in enumerate(zip(points, visible)):
        for (x, y), v in zip(pts, vis):
            if v:
                out[..., g] |= (xx - x) ** 2 + (yy - y) ** 2 <= radius ** 2
    return out


def read_cub(root, split="train", image_size=64, part_groups=None, landmark_radius=0.06,
             limit=None):
    """Read CUB-200-2011 in its original layout.

    Args:
        root: the ``CUB_200_2011`` directory.
        split: ``"train"`` or ``"test"`` (``train_test_split.txt``).
        image_size: side of the cropped, resized images.
        part_groups: dict group name -> CUB part names (default
            ``CUB_PART_GROUPS``: head, torso, legs, tail).
        landmark_radius: radius of the landmark disks in ``part_masks``, as a
            fraction of ``image_size``.
        limit: read at most this many images.

    Returns:
        The feature dict; ``label`` is the 0-based class id.
    """
    if split not in ("train", "test"):
        raise ValueError(f"`split` must be 'train' or 'test'. Received: split={split!r}")
    _require_dir(root, "CUB-200-2011 root (expected images.txt, parts/, images/ ...)")
    groups = part_groups or CUB_PART_GROUPS
    images = dict(_read_table(os.path.join(root, "images.txt"), ("<image_id>", "<image_name>"),
                              (int, str), "CUB images.txt"))
    labels = dict(_read_table(os.path.join(root, "image_class_labels.txt"),
                              ("<image_id>", "<class_id>"), (int, int), "CUB class labels"))
    boxes = {r[0]: r[1:] for r in _read_table(
        os.path.join(root, "bounding_boxes.txt"), ("<image_id>", "<x>", "<y>", "<width>", "<height>"),
        (int, float, float, float, float), "CUB bounding boxes")}
    is_train = dict(_read_table(os.path.join(root, "train_test_split.txt"),
                                ("<image_id>", "<is_training_image>"), (int, int),
                                "CUB train/test split"))
    part_names = dict(_read_table(os.path.join(root, "parts", "parts.txt"),
                                  ("<part_id>", "<part_name>"), (int, str), "CUB parts.txt"))
    locs = _read_table(os.path.join(root, "parts", "part_locs.txt"),
                       ("<image_id>", "<part_id>", "<x>", "<y>", "<visible>"),
                       (int, int, float, float, int), "CUB part_locs.txt")
    name_to_group = {}
    for g, (group, names) in enumerate(groups.items()):
        for name in names:
            name_to_group[name] = g
    by_image = {}
    for image_id, part_id, x, y, vis in locs:
        if part_id not in part_names:
            raise ValueError(f"{os.path.join(root, 'parts', 'part_locs.txt')}: unknown "
                             f"part_id {part_id}; expected one of parts/parts.txt")
        g = name_to_group.get(part_names[part_id])
        if g is not None:
            by_image.setdefault(image_id, []).append((g, x, y, vis))
    wanted = 1 if split == "train" else 0
    ids = [i for i in sorted(images) if is_train.get(i) == wanted]
    if limit is not None:
        ids = ids[:int(limit)]
    out = {k: [] for k in ("image", "label", "bbox", "part_masks", "landmarks", "object_mask")}
    num_groups = len(groups)
    for image_id in ids:
        for table, name in ((labels, "image_class_labels.txt"), (boxes, "bounding_boxes.txt")):
            if image_id not in table:
                raise ValueError(f"{os.path.join(root, name)}: no entry for image_id {image_id}")
        image = _decode_image(os.path.join(root, "images", images[image_id]))
        x, y, bw, bh = boxes[image_id]
        crop, _, offset, scale = _crop_resize(image, (x, y, x + bw, y + bh), image_size)
        pts = [[] for _ in range(num_groups)]
        vis = [[] for _ in range(num_groups)]
        for g, px, py, v in by_image.get(image_id, []):
            p = (np.array([px, py], np.float32) - offset) * scale
            inside = v and 0 <= p[0] < image_size and 0 <= p[1] < image_size
            pts[g].append(p)
            vis[g].append(bool(inside))
        landmarks = np.full((num_groups, 2), np.nan, np.float32)
        for g in range(num_groups):
            shown = [p for p, v in zip(pts[g], vis[g]) if v]
            if shown:
                landmarks[g] = np.mean(shown, axis=0)
        masks = _disk_masks(pts, vis, image_size, landmark_radius * image_size)
        out["image"].append(crop)
        out["label"].append(labels[image_id] - 1)
        out["bbox"].append(np.array([0, 0, image_size, image_size], np.float32))
        out["part_masks"].append(masks)
        out["landmarks"].append(landmarks)
        out["object_mask"].append(np.ones((image_size, image_size), bool))
    return _stack(out, list(groups), image_size)


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


def _as_list(value):
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


def read_pascal_part(root, categories=PASCAL_ANIMALS, image_ids=None, image_size=64,
                     min_object_pixels=64):
    """Read Pascal-Part animal objects with ICNN's part groups.

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
    try:
        from scipy import io as sio
    except ImportError as err:  # pragma: no cover - scipy comes with scikit-learn
        raise ImportError("Reading Pascal-Part .mat files needs scipy (pip install scipy)") from err
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
    group_names = [g for g in _GROUP_ORDER if any(g in PASCAL_PART_GROUPS[c] for c in categories)]
    out = {k: [] for k in ("image", "label", "bbox", "part_masks", "landmarks", "object_mask")}
    for image_id in image_ids:
        path = os.path.join(ann_dir, f"{image_id}.mat")
        _require_file(path, "Pascal-Part annotation")
        try:
            anno = sio.loadmat(path, squeeze_me=True, struct_as_record=False)["anno"]
            objects = _as_list(anno.objects)
        except (KeyError, AttributeError, ValueError) as err:
            raise ValueError(f"{path}: not a Pascal-Part annotation (expected a struct 'anno' "
                             f"with field 'objects'): {err}") from None
        image = None
        for obj in objects:
            cls = str(getattr(obj, "class"))
            if cls not in categories:
                continue
            mask = np.asarray(obj.mask).astype(bool)
            if mask.sum() < min_object_pixels:
                continue
            if image is None:
                image = _decode_image(os.path.join(img_dir, f"{image_id}.jpg"))
                if image.shape[:2] != mask.shape:
                    raise ValueError(f"{path}: object mask {mask.shape} does not match image "
                                     f"{image.shape[:2]} of {image_id}.jpg")
            groups = PASCAL_PART_GROUPS[cls]
            part_masks = np.zeros(mask.shape + (len(group_names),), bool)
            parts = [] if isinstance(obj.parts, np.ndarray) and obj.parts.size == 0 else _as_list(obj.parts)
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
            out["image"].append(crop)
            out["label"].append(categories.index(cls))
            out["bbox"].append(np.array([0, 0, image_size, image_size], np.float32))
            out["part_masks"].append(part_crop)
            out["landmarks"].append(np.stack([_nearest_to_centroid(part_crop[..., g])
                                              for g in range(len(group_names))]))
            out["object_mask"].append(obj_crop)
    return _stack(out, group_names, image_size)
