"""No reader opens a file outside its dataset directory (issue 44): an index entry with ``..``,
an absolute path or a symbolic link that resolves outside ``data_dir`` is a ``ValueError``
naming the index file, the line and the entry, raised before ``tf.data`` starts."""
import os
import shutil

import numpy as np
import pytest
import tensorflow as tf

from keras_icnn.data import layouts, readers, sources, synthetic_parts


@pytest.fixture(scope="module")
def examples():
    ex = synthetic_parts.make_examples(12, image_size=16, num_classes=3, seed=5)
    order = np.argsort(ex["label"], kind="stable")
    return {k: v[order] for k, v in ex.items()}


@pytest.fixture
def outside(tmp_path):
    """A valid image file outside every dataset directory."""
    path = tmp_path / "outside" / "secret.jpg"
    path.parent.mkdir()
    path.write_bytes(tf.io.encode_jpeg(np.full((16, 16, 3), 7, np.uint8)).numpy())
    return path


@pytest.fixture
def cub(tmp_path, examples):
    return layouts.write_cub_layout(examples, str(tmp_path / "data" / "CUB"))


def _images_txt(root):
    path = os.path.join(root, "images.txt")
    return path, open(path).read().splitlines()


def _rewrite_line(root, line, name):
    path, lines = _images_txt(root)
    image_id = lines[line - 1].split()[0]
    lines[line - 1] = f"{image_id} {name}"
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")


def _refused(root, entry, line, dataset="cub"):
    with pytest.raises(ValueError) as err:
        sources.open_source(dataset, root, image_size=16)
    text = str(err.value)
    assert f"images.txt, line {line}" in text and repr(entry) in text, text
    assert "outside the dataset directory" in text
    return text


def test_relative_path_out_of_cub_is_refused(cub, outside):
    entry = os.path.relpath(outside, os.path.join(cub, "images"))
    assert entry.startswith("..")
    _rewrite_line(cub, 3, entry)
    _refused(cub, entry, 3)


def test_absolute_path_in_images_txt_is_refused_without_echoing_it(cub):
    _rewrite_line(cub, 2, "/etc/passwd")
    text = _refused(cub, "/etc/passwd", 2)
    assert "root:" not in text and "b'root'" not in text


def test_symlinked_image_out_of_cub_is_refused(cub, outside):
    path, lines = _images_txt(cub)
    name = lines[4].split()[1]
    os.remove(os.path.join(cub, "images", name))
    os.symlink(outside, os.path.join(cub, "images", name))
    _refused(cub, name, 5)
    with pytest.raises(ValueError, match="outside the dataset directory"):
        sources.read_cub(cub, "train", image_size=16)


def test_symlinked_index_file_is_refused(cub, tmp_path):
    real = tmp_path / "elsewhere_labels.txt"
    shutil.move(os.path.join(cub, "image_class_labels.txt"), real)
    os.symlink(real, os.path.join(cub, "image_class_labels.txt"))
    with pytest.raises(ValueError, match="'image_class_labels.txt' resolves to .*outside"):
        sources.open_source("cub", cub, image_size=16)


def test_links_inside_the_dataset_and_a_linked_root_are_read(cub, tmp_path):
    # A link that stays inside is fine, and so is data_dir itself being a link.
    path, lines = _images_txt(cub)
    name = lines[0].split()[1]
    other = lines[1].split()[1]
    os.remove(os.path.join(cub, "images", name))
    os.symlink(os.path.join(cub, "images", other), os.path.join(cub, "images", name))
    link = tmp_path / "cub_link"
    os.symlink(cub, link)
    source = sources.open_source("cub", str(link), image_size=16)
    assert source.size("train") + source.size("test") == 12


def test_folder_symlink_out_of_the_directory_is_refused(tmp_path, examples, outside):
    root = layouts.write_folder_layout(examples, str(tmp_path / "photos"))
    victim = os.path.join(root, "class_1", "zz_link.jpg")
    os.symlink(outside, victim)
    with pytest.raises(ValueError, match=r"class_1: 'zz_link.jpg' resolves to .*outside"):
        sources.open_source("folder", root, image_size=16)
    os.remove(victim)
    os.symlink(outside.parent, os.path.join(root, "class_2", "sub"))  # not an image: ignored
    os.symlink(outside.parent, os.path.join(root, "class_3"))  # a linked class folder
    with pytest.raises(ValueError, match=r"'secret.jpg' resolves to .*outside"):
        sources.open_source("folder", root, image_size=16)


def test_tfds_shard_linked_out_of_data_dir_is_refused(tmp_path, examples):
    import tensorflow_datasets as tfds

    data_dir = tmp_path / "tfds"
    tfds.dataset_builders.store_as_tfds_dataset(
        name="tiny_links", version="1.0.0", data_dir=str(data_dir),
        split_datasets={"train": tf.data.Dataset.from_tensor_slices(
            {"image": examples["image"], "label": examples["label"]})},
        features=tfds.features.FeaturesDict({
            "image": tfds.features.Image(shape=(16, 16, 3)),
            "label": tfds.features.ClassLabel(names=["a", "b", "c"])}))
    version_dir = data_dir / "tiny_links" / "1.0.0"
    shard = next(p for p in sorted(os.listdir(version_dir)) if ".tfrecord" in p)
    moved = tmp_path / shard
    shutil.move(version_dir / shard, moved)
    os.symlink(moved, version_dir / shard)
    with pytest.raises(ValueError, match=f"'{shard}' resolves to .*outside"):
        sources.open_source("tfds", str(data_dir), tfds_name="tiny_links", image_size=8)


def test_inside_dataset_by_hand(tmp_path):
    root = tmp_path / "d"
    (root / "a").mkdir(parents=True)
    assert readers.inside_dataset(root, root / "a" / "x.jpg", "idx") == root / "a" / "x.jpg"
    with pytest.raises(ValueError, match=r"idx, line 7: '\.\./y' resolves to"):
        readers.inside_dataset(root, root / "a" / ".." / ".." / "y", "idx", 7, "../y")
    # A sibling whose name starts with the root's is outside (no string-prefix test).
    with pytest.raises(ValueError, match="outside"):
        readers.inside_dataset(root, tmp_path / "d2" / "x.jpg", "idx")
