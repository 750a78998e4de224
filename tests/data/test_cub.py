"""CUB-200-2011 (data/cub.py): the reader, its errors, stratified splits, streaming."""
import os

import numpy as np
import pytest
import tensorflow as tf

from keras_icnn.data import layouts, pipeline, sources
from tests.data.conftest import C


@pytest.fixture(scope="module")
def cub_dir(tmp_path_factory, synthetic):
    return layouts.write_cub_layout(synthetic, str(tmp_path_factory.mktemp("cub") / "CUB"))


def test_cub_splits_keep_every_class_within_one_image_of_its_share(cub_dir, synthetic):
    # The official split: 15 train / 15 test images per class, ids in class order.
    source = sources.open_source("cub", cub_dir, image_size=32, num_train=60, num_val=12,
                                 num_test=30, seed=5)
    assert source.num_classes == C and source.part_names == ["head", "torso", "legs", "tail"]
    expected = {"train": 60, "validation": 12, "test": 30}
    per_class_pool = {"train": 15, "validation": 15, "test": 15}
    for split, n in expected.items():
        counts = np.bincount(source.labels(split), minlength=C)
        assert counts.sum() == n
        share = n / C  # every class has the same number of files in the pool
        assert np.all(np.abs(counts - share) <= 1), (split, counts)
        assert np.all(counts >= 1) and np.all(counts <= per_class_pool[split])
    # Validation is carved from the training files, disjoint from train.
    train, val = source._tables["train"]["path"], source._tables["validation"]["path"]
    assert not set(train) & set(val)
    # The old "first n ids" limit would have kept classes 0-1 only; not here.
    assert len(np.unique(source.labels("train"))) == C
    # Seeded: the same seed, the same split; another seed, another one.
    again = sources.open_source("cub", cub_dir, image_size=32, num_train=60, num_val=12,
                                num_test=30, seed=5)
    other = sources.open_source("cub", cub_dir, image_size=32, num_train=60, num_val=12,
                                num_test=30, seed=6)
    assert list(again._tables["validation"]["path"]) == list(val)
    assert list(other._tables["validation"]["path"]) != list(val)


def test_class_count_comes_from_the_class_list_not_the_labels_seen(cub_dir):
    source = sources.open_source("cub", cub_dir, image_size=32, num_train=3, num_test=3)
    assert len(np.unique(source.labels("train"))) == 3
    assert source.num_classes == C


def test_streamed_cub_examples_match_the_written_images(cub_dir, synthetic):
    source = sources.open_source("cub", cub_dir, image_size=32)
    train = source.materialize("train", limit=4)
    # Training files are the first half of each class's images (ids in class order).
    idx = [0, 1, 2, 3]
    np.testing.assert_array_equal(train["label"], synthetic["label"][idx])
    # The box crop is the pasted image: the decoded file cut at the box (8 px margin).
    for k, path in enumerate(source._tables["train"]["path"][:4]):
        decoded = tf.io.decode_jpeg(tf.io.read_file(path)).numpy()
        np.testing.assert_array_equal(train["image"][k], decoded[8:40, 8:40])
    assert np.abs(train["image"].astype(int) - synthetic["image"][idx]).mean() < 12
    np.testing.assert_allclose(train["landmarks"], synthetic["landmarks"][idx], atol=0.02)
    assert train["part_masks"].shape == (4, 32, 32, 4)


def test_reader_output_feeds_make_dataset_unchanged(cub_dir):
    ex = sources.read_cub(cub_dir, "train", image_size=32, limit=12)
    assert "part_names" in ex
    assert np.all(np.bincount(ex["label"], minlength=C) == 2)  # even across classes
    x, y = next(iter(pipeline.make_dataset(ex, batch_size=12)))
    assert x.shape == (12, 32, 32, 3) and y.shape == (12,)


def test_cub_reader(cub_root):
    ex = sources.read_cub(cub_root, split="train", image_size=32)
    assert ex["image"].shape == (2, 32, 32, 3) and ex["image"].dtype == np.uint8
    np.testing.assert_array_equal(ex["label"], [0, 1])
    assert list(ex["part_names"]) == ["head", "torso", "legs", "tail"]
    # Image 1: box (30, 20, 40x40) -> scale 32/40. Head group = mean of beak, crown
    # (40, 30) and forehead, eyes, nape, throat (50, 40): 2 of 7 at (40,30).
    head = (np.array([2 * 40 + 5 * 50, 2 * 30 + 5 * 40]) / 7 - [30, 20]) * 0.8
    np.testing.assert_allclose(ex["landmarks"][0, 0], head, rtol=1e-5)
    # Legs = mean of left leg (44, 56) and right leg (50, 40).
    np.testing.assert_allclose(ex["landmarks"][0, 2], (np.array([47, 48]) - [30, 20]) * 0.8, rtol=1e-5)
    assert np.all(np.isnan(ex["landmarks"][0, 3]))  # tail not visible
    assert not ex["part_masks"][0, ..., 3].any()
    # Legs mask: a disk (radius 0.06 * 32) around each leg point.
    left_leg = (np.array([44, 56]) - [30, 20]) * 0.8
    assert ex["part_masks"][0, int(left_leg[1]), int(left_leg[0]), 2]
    assert ex["part_masks"][0, ..., 2].sum() < 2 * np.pi * (0.06 * 32 + 1) ** 2
    # The crop is the bird: bright everywhere.
    assert ex["image"][0].mean() > 230
    test = sources.read_cub(cub_root, split="test", image_size=32)
    np.testing.assert_array_equal(test["label"], [0])


def test_cub_errors(cub_root, tmp_path):
    with pytest.raises(FileNotFoundError, match="directory not found: .*missing"):
        sources.read_cub(str(tmp_path / "missing"))
    boxes = os.path.join(cub_root, "bounding_boxes.txt")
    good = open(boxes).read()
    with open(boxes, "a") as f:
        f.write("4 1.0 two 3.0\n")
    with pytest.raises(ValueError, match=r"bounding_boxes.txt:4: malformed line .*expected "
                                         r"'<image_id> <x> <y> <width> <height>'"):
        sources.read_cub(cub_root)
    open(boxes, "w").write(good)
    os.remove(os.path.join(cub_root, "parts", "parts.txt"))
    with pytest.raises(FileNotFoundError, match=r"CUB parts.txt: expected file not found: .*parts.txt"):
        sources.read_cub(cub_root)
