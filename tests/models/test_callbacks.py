"""TensorBoard summaries (models/callbacks.py), read back without TensorBoard."""
import numpy as np
import pytest

from keras_icnn.models.callbacks import TrainingSummaries, read_summaries
from tests.models.conftest import tiny_backbone, tiny_data


def test_each_epoch_s_logs_are_written_and_read_back(tmp_path):
    model = tiny_backbone()
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    x, y = tiny_data(32)
    history = model.fit(x, y, epochs=2, batch_size=16, verbose=0,
                        callbacks=[TrainingSummaries(str(tmp_path), {"lr": 1e-3, "seed": 0})])
    curves = read_summaries(str(tmp_path))
    for key in ("loss", "accuracy"):
        np.testing.assert_allclose([curves[key][e] for e in range(2)], history.history[key],
                                   rtol=1e-6)
    assert curves["hparams"][0] > 0  # the settings, as text
    with pytest.raises(FileNotFoundError, match="no TensorBoard event files"):
        read_summaries(str(tmp_path / "none"))
    with pytest.raises(ValueError, match="`log_dir` must name a directory"):
        TrainingSummaries("")
