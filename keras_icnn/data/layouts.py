"""Write examples (e.g. the synthetic part data) in real datasets' directory layouts.

The real datasets cannot be downloaded here; these writers produce directories
that ``keras_icnn.data.sources`` reads exactly as it reads the real ones, so
every trainer can be run end to end on a CUB-200-2011 layout or on a folder of
photos. Also handy to try the package on the synthetic data as files.

Example:
    >>> ex = synthetic_parts.make_examples(120, image_size=64)
    >>> write_cub_layout(ex, "/tmp/cub_like")          # then --dataset=cub --data_dir=/tmp/cub_like
    >>> write_folder_layout(ex, "/tmp/photos")         # then --dataset=folder --data_dir=/tmp/photos
"""

import os

import numpy as np
import tensorflow as tf

# Which CUB part stands for each synthetic part group.
_CUB_STAND_IN = {"head": "crown", "torso": "back", "legs": "left leg", "tail": "tail"}
CUB_PART_LIST = ("back", "beak", "belly", "breast", "crown", "forehead", "left eye", "left leg",
                 "left wing", "nape", "right eye", "right leg", "right wing", "tail", "throat")


def _write_image(path, image, fmt="jpeg"):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    image = np.asarray(image, np.uint8)
    data = tf.io.encode_jpeg(image, quality=95) if fmt == "jpeg" else tf.io.encode_png(image)
    tf.io.write_file(path, data)


def write_cub_layout(examples, root, class_names=None, part_names=("head", "torso", "legs", "tail"),
                     train_fraction=0.5, margin=0.25, seed=0):
    """Write ``examples`` as a CUB-200-2011 directory with class-ordered image ids.

    Each image is pasted into a larger noisy canvas (``margin`` of its side on
    every edge) whose bird box is the original image, so readers must crop.
    Image ids run class by class, like CUB's; the first ``train_fraction`` of
    each class's images are training images. Each part group's landmark is
    written as one CUB part (head as "crown", torso "back", legs "left leg",
    tail "tail"); the other CUB parts are invisible.

    Returns:
        ``root``.
    """
    images = np.asarray(examples["image"])
    labels = np.asarray(examples["label"])
    landmarks = np.asarray(examples["landmarks"]) if "landmarks" in examples else None
    num_classes = int(labels.max()) + 1
    rng = np.random.default_rng(seed)
    size = images.shape[1]
    pad = int(round(margin * size))
    n = len(labels)
    points = np.zeros((n, len(CUB_PART_LIST), 2), np.float32)
    visible = np.zeros((n, len(CUB_PART_LIST)), bool)
    for g, group in enumerate(part_names):
        part = _CUB_STAND_IN.get(group)
        if part is None or landmarks is None:
            continue
        pid = CUB_PART_LIST.index(part)
        seen_part = np.isfinite(landmarks[:, g]).all(-1)
        points[seen_part, pid] = landmarks[seen_part, g] + pad
        visible[:, pid] |= seen_part

    class Canvases:  # drawn lazily, in the order the writer asks (image id order)
        def __getitem__(self, i):
            canvas = rng.integers(0, 256, (size + 2 * pad, size + 2 * pad, 3), dtype=np.uint8)
            canvas[pad:pad + size, pad:pad + size] = images[i]
            return canvas

    boxes = np.tile(np.array([pad, pad, size, size], np.float32), (n, 1))
    return write_cub_files(root, Canvases(), labels, boxes, points, visible,
                           class_names=class_names, train_fraction=train_fraction,
                           num_classes=num_classes)


def write_cub_files(root, images, labels, boxes, points, visible, class_names=None,
                    train_fraction=0.5, num_classes=None, train=None):
    """Write a CUB-200-2011 directory from its parts (the writer under :func:`write_cub_layout`).

    Args:
        root: directory to write (``images/``, ``images.txt``, ``classes.txt``,
            ``image_class_labels.txt``, ``bounding_boxes.txt``,
            ``train_test_split.txt``, ``parts/parts.txt``, ``parts/part_locs.txt``).
        images: uint8 ``[H, W, 3]`` images indexable like ``labels`` (an array, a list,
            or any object with ``__getitem__``: they are read one at a time, in image-id
            order); sizes may differ.
        labels: 0-based class ids ``[N]``.
        boxes: ``[N, 4]`` bird boxes ``(x, y, width, height)`` in pixels, as CUB's.
        points: ``[N, 15, 2]`` ``(x, y)`` of the CUB parts (``CUB_PART_LIST`` order).
        visible: ``[N, 15]`` bool, whether each part is visible.
        class_names: CUB-style names (``"001.name"``); default ``001.class_0`` ...
        train_fraction: the first fraction of each class's images (in id order) are
            training images, unless ``train`` (bool ``[N]``) says which.

    Image ids run class by class, like CUB's. Returns ``root``.
    """
    labels = np.asarray(labels)
    num_classes = int(num_classes or labels.max() + 1)
    class_names = list(class_names or [f"{c + 1:03d}.class_{c}" for c in range(num_classes)])
    order = np.argsort(labels, kind="stable")  # ids in class order, like CUB
    rank = np.empty(len(labels), int)
    rank[order] = np.arange(len(labels))
    per_class = np.bincount(labels, minlength=num_classes)
    within = np.empty(len(labels), int)  # position of each image among its class's
    for c in range(num_classes):
        within[order[labels[order] == c]] = np.arange(per_class[c])
    if train is None:
        train = within < np.round(train_fraction * per_class[labels])
    os.makedirs(os.path.join(root, "parts"), exist_ok=True)
    names = [f"{class_names[int(labels[i])]}/img_{rank[i] + 1:05d}.jpg" for i in range(len(labels))]
    for i in order:  # file writing: one image at a time
        _write_image(os.path.join(root, "images", names[i]), images[i])
    lines = {k: [] for k in ("images", "labels", "boxes", "split", "locs")}
    for image_id, i in enumerate(order, start=1):
        lines["images"].append(f"{image_id} {names[i]}")
        lines["labels"].append(f"{image_id} {int(labels[i]) + 1}")
        x, y, w, h = (float(v) for v in boxes[i])
        lines["boxes"].append(f"{image_id} {x:.1f} {y:.1f} {w:.1f} {h:.1f}")
        lines["split"].append(f"{image_id} {int(bool(train[i]))}")
        for pid in range(len(CUB_PART_LIST)):
            px, py = (points[i, pid] if visible[i, pid] else (0.0, 0.0))
            lines["locs"].append(f"{image_id} {pid + 1} {px:.2f} {py:.2f} {int(visible[i, pid])}")
    files = {"images.txt": "images", "image_class_labels.txt": "labels",
             "bounding_boxes.txt": "boxes", "train_test_split.txt": "split",
             os.path.join("parts", "part_locs.txt"): "locs"}
    for path, key in files.items():
        with open(os.path.join(root, path), "w") as f:
            f.write("\n".join(lines[key]) + "\n")
    with open(os.path.join(root, "classes.txt"), "w") as f:
        f.write("".join(f"{c + 1} {n}\n" for c, n in enumerate(class_names)))
    with open(os.path.join(root, "parts", "parts.txt"), "w") as f:
        f.write("".join(f"{k} {n}\n" for k, n in enumerate(CUB_PART_LIST, start=1)))
    return root


def write_folder_layout(examples, root, class_names=None, fmt="jpeg", split_dirs=False,
                        test_fraction=0.2):
    """Write ``examples`` as ``root/<class>/*.jpg`` (or ``root/train|test/<class>/``).

    Returns:
        ``root``.
    """
    images = np.asarray(examples["image"])
    labels = np.asarray(examples["label"])
    num_classes = int(labels.max()) + 1
    class_names = list(class_names or [f"class_{c}" for c in range(num_classes)])
    ext = "jpg" if fmt == "jpeg" else "png"
    seen = np.zeros(num_classes, int)
    per_class = np.bincount(labels, minlength=num_classes)
    for i, (image, label) in enumerate(zip(images, labels)):
        sub = class_names[int(label)]
        if split_dirs:
            test = seen[label] < round(test_fraction * per_class[label])
            sub = os.path.join("test" if test else "train", sub)
        seen[label] += 1
        _write_image(os.path.join(root, sub, f"img_{i:05d}.{ext}"), image, fmt)
    return root


__all__ = ["write_cub_files", "write_cub_layout", "write_folder_layout"]
