"""The data layer: CUB-layout and folder-layout fixtures, stratified splits, bad input."""
import os

import numpy as np
import pytest
import tensorflow as tf

from keras_icnn.data import layouts, pipeline, sources, splits, synthetic_parts
from tests.data.conftest import C


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
