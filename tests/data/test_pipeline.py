"""The tf.data pipeline (data/pipeline.py): clear errors for bad features."""
import numpy as np
import pytest
import tensorflow as tf

from keras_icnn.data import pipeline, synthetic_parts


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
