"""Shared by the data tests: the synthetic examples, a CUB layout written by hand."""
import os

import numpy as np
import pytest
import tensorflow as tf

from keras_icnn.data import synthetic_parts

C = 6


@pytest.fixture(scope="module")
def synthetic():
    # 30 images per class, generated then written class by class (CUB's id order).
    ex = synthetic_parts.make_examples(180, image_size=32, seed=3)
    order = np.argsort(ex["label"], kind="stable")
    return {k: v[order] for k, v in ex.items()}


def write_jpeg(path, image):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tf.io.write_file(path, tf.io.encode_jpeg(image, quality=95))


@pytest.fixture
def cub_root(tmp_path):
    return make_cub(tmp_path / "CUB_200_2011")


CUB_PARTS = ["back", "beak", "belly", "breast", "crown", "forehead", "left eye", "left leg",
             "left wing", "nape", "right eye", "right leg", "right wing", "tail", "throat"]


def make_cub(root):
    """A 3-image CUB-200-2011 directory at ``root`` (2 classes, parts, boxes); its path."""
    import pathlib

    root = pathlib.Path(root)
    names = {1: "001.Black_footed_Albatross/Black_Footed_Albatross_0046_18.jpg",
             2: "001.Black_footed_Albatross/Black_Footed_Albatross_0009_34.jpg",
             3: "002.Laysan_Albatross/Laysan_Albatross_0002_1027.jpg"}
    for i, name in names.items():
        img = np.full((80, 100, 3), 40 * i, np.uint8)
        img[20:60, 30:70] = 250  # the bird inside its box
        write_jpeg(str(root / "images" / name), img)
    (root / "parts").mkdir(parents=True)
    (root / "images.txt").write_text("".join(f"{i} {n}\n" for i, n in names.items()))
    (root / "image_class_labels.txt").write_text("1 1\n2 1\n3 2\n")
    (root / "bounding_boxes.txt").write_text("1 30.0 20.0 40.0 40.0\n2 30.0 20.0 40.0 40.0\n"
                                            "3 0.0 0.0 100.0 80.0\n")
    (root / "train_test_split.txt").write_text("1 1\n2 0\n3 1\n")
    (root / "parts" / "parts.txt").write_text("".join(f"{k + 1} {n}\n" for k, n in enumerate(CUB_PARTS)))
    lines = []
    for i in names:
        for k, n in enumerate(CUB_PARTS):
            visible = 0 if (i == 1 and n == "tail") else 1
            x, y = (40.0, 30.0) if n in ("beak", "crown") else (50.0, 40.0)
            if n == "left leg":
                x, y = 44.0, 56.0
            lines.append(f"{i} {k + 1} {x if visible else 0.0} {y if visible else 0.0} {visible}\n")
    (root / "parts" / "part_locs.txt").write_text("".join(lines))
    return str(root)
