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
    class_names = list(class_names or [f"{c + 1:03d}.class_{c}" for c in range(num_classes)])
    rng = np.random.default_rng(seed)
    order = np.argsort(labels, kind="stable")  # ids in class order, like CUB
    size = images.shape[1]
    pad = int(round(margin * size))
    os.makedirs(os.path.join(root, "parts"), exist_ok=True)
    lines = {k: [] for k in ("images", "labels", "boxes", "split", "locs")}
    seen = np.zeros(num_classes, int)
    per_class = np.bincount(labels, minlength=num_classes)
    for image_id, i in enumerate(order, start=1):
        c = int(labels[i])
        name = f"{class_names[c]}/img_{image_id:05d}.jpg"
        canvas = rng.integers(0, 256, (size + 2 * pad, size + 2 * pad, 3), dtype=np.uint8)
        canvas[pad:pad + size, pad:pad + size] = images[i]
        _write_image(os.path.join(root, "images", name), canvas)
        lines["images"].append(f"{image_id} {name}")
        lines["labels"].append(f"{image_id} {c + 1}")
        lines["boxes"].append(f"{image_id} {pad}.0 {pad}.0 {size}.0 {size}.0")
        is_train = int(seen[c] < round(train_fraction * per_class[c]))
        seen[c] += 1
        lines["split"].append(f"{image_id} {is_train}")
        for pid, part in enumerate(CUB_PART_LIST, start=1):
            x = y = 0.0
            visible = 0
            for g, group in enumerate(part_names):
                if _CUB_STAND_IN.get(group) == part and landmarks is not None \
                        and np.isfinite(landmarks[i, g]).all():
                    x, y = landmarks[i, g] + pad
                    visible = 1
            lines["locs"].append(f"{image_id} {pid} {x:.2f} {y:.2f} {visible}")
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


__all__ = ["write_cub_layout", "write_folder_layout"]
