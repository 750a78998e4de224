"""The data layer: CUB-layout and folder-layout fixtures, stratified splits, bad input."""
import os

import numpy as np
import pytest
import tensorflow as tf

from keras_icnn.data import layouts, pipeline, sources, splits, synthetic_parts

C = 6


@pytest.fixture(scope="module")
def synthetic():
    # 30 images per class, generated then written class by class (CUB's id order).
    ex = synthetic_parts.make_examples(180, image_size=32, seed=3)
    order = np.argsort(ex["label"], kind="stable")
    return {k: v[order] for k, v in ex.items()}


@pytest.fixture(scope="module")
def cub_dir(tmp_path_factory, synthetic):
    return layouts.write_cub_layout(synthetic, str(tmp_path_factory.mktemp("cub") / "CUB"))


@pytest.fixture(scope="module")
def folder_dir(tmp_path_factory, synthetic):
    return layouts.write_folder_layout(synthetic, str(tmp_path_factory.mktemp("photos")))


def test_stratified_counts_are_floor_or_ceil_of_the_share():
    rng = np.random.default_rng(0)
    sizes = np.array([30, 29, 31, 5, 30, 30])
    for n in (0, 7, 40, 100, 155, 1000):
        counts = splits.stratified_counts(sizes, n, rng)
        share = min(n, sizes.sum()) * sizes / sizes.sum()
        assert counts.sum() == min(n, sizes.sum())
        assert np.all(counts >= np.floor(share)) and np.all(counts <= np.ceil(share))
        assert np.all(counts <= sizes)


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


def test_folder_source(folder_dir):
    source = sources.open_source("folder", folder_dir, image_size=24, num_val=6)
    assert source.num_classes == C and source.part_names is None
    for split in ("train", "validation", "test"):
        assert len(np.unique(source.labels(split))) == C
    assert source.size("test") == 36 and source.size("validation") == 6
    x, y = next(iter(source.dataset("train", 8, training=True)))
    assert x.shape == (8, 24, 24, 3) and x.dtype == tf.uint8


def test_folder_with_train_and_test_subfolders(tmp_path, synthetic):
    root = layouts.write_folder_layout(synthetic, str(tmp_path / "p"), split_dirs=True,
                                       fmt="png")
    source = sources.open_source("folder", root, image_size=16, num_val=6)
    assert source.size("test") == 36 and source.size("validation") == 6
    assert source.size("train") == 180 - 36 - 6


def test_tfds_source_reads_a_prepared_dataset_without_downloading(tmp_path):
    import tensorflow_datasets as tfds

    ex = synthetic_parts.make_examples(24, image_size=16, seed=1)
    builder = tfds.dataset_builders.store_as_tfds_dataset(
        name="tiny_parts", version="1.0.0", data_dir=str(tmp_path),
        split_datasets={
            "train": tf.data.Dataset.from_tensor_slices({"image": ex["image"][:18],
                                                         "label": ex["label"][:18]}),
            "test": tf.data.Dataset.from_tensor_slices({"image": ex["image"][18:],
                                                        "label": ex["label"][18:]})},
        features=tfds.features.FeaturesDict({
            "image": tfds.features.Image(shape=(16, 16, 3)),
            "label": tfds.features.ClassLabel(names=[f"c{i}" for i in range(C)])}))
    del builder
    source = sources.open_source("tfds", str(tmp_path), tfds_name="tiny_parts", image_size=8,
                                 num_val=3)
    assert source.num_classes == C and source.size("test") == 6
    assert source.size("train") == 15 and source.size("validation") == 3
    # Asking for more validation images than 20% of the training files is capped, and said.
    capped = sources.open_source("tfds", str(tmp_path), tfds_name="tiny_parts", image_size=8,
                                 num_val=10)
    assert capped.size("validation") == 3 and "10 images asked, 3 taken" in capped.summary()
    got = source.materialize("test")
    # TFDS shuffles records when it prepares a dataset: compare as multisets.
    np.testing.assert_array_equal(np.sort(got["label"]), np.sort(ex["label"][18:]))
    assert got["image"].shape == (6, 8, 8, 3)
    with pytest.raises(FileNotFoundError, match="never downloads"):
        sources.open_source("tfds", str(tmp_path), tfds_name="mnist")


def test_bad_image_files_are_named(tmp_path, synthetic):
    root = layouts.write_folder_layout({k: v[::7] for k, v in synthetic.items()},
                                       str(tmp_path / "bad"))
    victim = sorted(os.listdir(os.path.join(root, "class_0")))[0]
    path = os.path.join(root, "class_0", victim)
    data = open(path, "rb").read()
    with open(path, "wb") as f:  # truncated: the header is fine, the data is not
        f.write(data[:len(data) // 3])
    source = sources.open_source("folder", root, image_size=16)
    with pytest.raises(ValueError, match=f"{victim}: cannot be decoded as an image"):
        with source.naming_bad_files():
            list(source.dataset("train", 4).concatenate(source.dataset("test", 4)))
    with open(path, "wb") as f:
        f.write(b"not an image at all")
    with pytest.raises(ValueError, match=f"{victim}: not a JPEG, PNG"):
        sources.open_source("folder", root, image_size=16)


def test_missing_directories_and_layouts_get_clear_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="directory not found"):
        sources.open_source("cub", str(tmp_path / "nope"))
    with pytest.raises(ValueError, match="data_dir` is needed"):
        sources.open_source("folder", "")
    (tmp_path / "one").mkdir()
    with pytest.raises(ValueError, match="one subfolder per class"):
        sources.open_source("folder", str(tmp_path))
    with pytest.raises(ValueError, match="`dataset` must be one of"):
        sources.open_source("imagenet", str(tmp_path))


def test_make_dataset_names_the_bad_feature():
    ex = synthetic_parts.make_examples(4, image_size=16)
    bad = dict(ex, landmarks=ex["landmarks"][:3])
    with pytest.raises(ValueError, match="feature `landmarks` has 3 entries but there are 4"):
        pipeline.make_dataset(bad)
    with pytest.raises(ValueError, match=r"missing features \['label'\]"):
        pipeline.make_dataset({"image": ex["image"]})
    nan = dict(ex, image=ex["image"].astype(np.float32))
    nan["image"][2, 0, 0, 0] = np.nan
    with pytest.raises(ValueError, match="image 2 contains NaN"):
        pipeline.make_dataset(nan)
    ds = tf.data.Dataset.from_tensor_slices({"image": nan["image"], "label": ex["label"]})
    with pytest.raises(tf.errors.InvalidArgumentError, match="contains NaN or Inf"):
        list(pipeline.make_dataset(ds, batch_size=4))
    with pytest.raises(ValueError, match=r"missing features \['label'\]"):
        pipeline.make_dataset(tf.data.Dataset.from_tensor_slices({"image": ex["image"]}))


def test_synthetic_config_names_a_difficulty_and_its_knobs_override():
    from keras_icnn.recipes.csg import CSGConfig
    from keras_icnn.recipes.common import open_data

    hard = sources.open_synthetic(num_classes=10, num_train=20, num_val=0, num_test=10, seed=1,
                                  synthetic_config="hard")
    direct = synthetic_parts.make_examples(20, num_classes=10, seed=1,
                                           **synthetic_parts.SYNTHETIC_CONFIGS["hard"])
    np.testing.assert_array_equal(hard.table("train")["image"], direct["image"])
    assert "hard" in hard.description
    softer = sources.open_synthetic(num_classes=10, num_train=20, num_val=0, num_test=10, seed=1,
                                    synthetic_config="hard", distractors=1)
    assert not np.array_equal(softer.table("train")["image"], direct["image"])
    with pytest.raises(TypeError, match="difficulty knobs are"):
        sources.open_synthetic(num_train=2, num_val=0, num_test=2, hardness=3)
    # The recipes' --synthetic_config flag reaches the data.
    config = CSGConfig(num_classes=10, synthetic_config="hard", num_train=20, num_val=0,
                       num_test=10, seed=1).validate()
    np.testing.assert_array_equal(open_data(config).table("train")["image"], direct["image"])
    with pytest.raises(ValueError, match="`synthetic_config` must be one of"):
        CSGConfig(synthetic_config="harder").validate()
