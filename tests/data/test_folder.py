"""A folder of photos, one sub-folder per class (data/folder.py)."""
import numpy as np
import pytest
import tensorflow as tf

from keras_icnn.data import layouts, sources
from tests.data.conftest import C


@pytest.fixture(scope="module")
def folder_dir(tmp_path_factory, synthetic):
    return layouts.write_folder_layout(synthetic, str(tmp_path_factory.mktemp("photos")))


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
