"""Dataset layouts (data/layouts.py): missing directories and layouts get clear errors."""
import pytest

from keras_icnn.data import sources


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
