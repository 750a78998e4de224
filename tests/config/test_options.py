"""The shared option dataclasses (config/options.py): defaults valid, rules named."""
import pytest

from keras_icnn.recipes import CSGConfig, ICNNConfig


@pytest.mark.parametrize("config_cls", [ICNNConfig, CSGConfig])
def test_defaults_validate_and_the_cross_field_rule_names_its_fields(config_cls, tmp_path):
    assert config_cls(output_dir=str(tmp_path)).validate() is not None
    with pytest.raises(ValueError, match=r"`num_val` must be >= 1 with eval_split='validation'"):
        config_cls(output_dir=str(tmp_path), eval_split="validation", num_val=0).validate()
    config_cls(output_dir=str(tmp_path), eval_split="validation", num_val=8).validate()
    with pytest.raises(ValueError, match="eval_split"):
        config_cls(output_dir=str(tmp_path), eval_split="holdout").validate()
