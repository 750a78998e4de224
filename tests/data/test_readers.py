import os
import shutil

import numpy as np
import pytest
import tensorflow as tf
from scipy import io as sio

from keras_icnn.data import readers, sources
from tests.data.conftest import write_jpeg


def test_read_cub_moved_to_sources_with_a_notice(cub_root):
    with pytest.warns(DeprecationWarning, match="use keras_icnn.data.sources.read_cub"):
        old = readers.read_cub(cub_root, split="test", image_size=16)
    new = sources.read_cub(cub_root, split="test", image_size=16)
    np.testing.assert_array_equal(old["image"], new["image"])
    with pytest.raises(AttributeError, match="has no attribute 'nothing'"):
        readers.nothing
