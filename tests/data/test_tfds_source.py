"""A prepared TFDS dataset, read without downloading (data/tfds_source.py)."""
import numpy as np
import pytest
import tensorflow as tf

from keras_icnn.data import sources, synthetic_parts
from tests.data.conftest import C


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
