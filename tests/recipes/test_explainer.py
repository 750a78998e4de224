"""The explainer recipe's config (recipes/explainer.py): rules named before any work."""
import pytest

from keras_icnn.recipes import ExplainerConfig


def test_the_explainer_config_names_what_is_wrong(tmp_path):
    ExplainerConfig(output_dir=str(tmp_path)).validate()
    # Residual performers: the explainer stands in for the last block (issue 48).
    ExplainerConfig(output_dir=str(tmp_path), backbone="resnet20").validate()
    with pytest.raises(FileNotFoundError, match="performer model not found"):
        ExplainerConfig(output_dir=str(tmp_path), performer=str(tmp_path / "no.keras")).validate()
    with pytest.raises(ValueError, match="initial_p"):
        ExplainerConfig(output_dir=str(tmp_path), initial_p=1.0).validate()
    with pytest.raises(ValueError, match="alpha_floor"):
        ExplainerConfig(output_dir=str(tmp_path), alpha_floor=1.5).validate()
