"""The ICNN recipe's config (recipes/icnn.py): unknown choices are refused."""
import pytest


def test_recipe_configs_reject_unknown_choices():
    from keras_icnn import recipes

    for bad, match in ((dict(eval_split="training"), "eval_split"),
                       (dict(learning_rate_schedule="linear"), "learning_rate_schedule"),
                       (dict(train=("resnet",)), "train")):
        with pytest.raises(ValueError, match=match):
            recipes.ICNNConfig(**bad).validate()
