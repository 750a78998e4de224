"""One choice list per idea (config/choices.py): every command's flag takes exactly it."""
import dataclasses

import pytest

from keras_icnn.config import choices
from keras_icnn.export import ExportConfig
from keras_icnn.recipes import CSGConfig, ExplainerConfig, ICNNConfig
from keras_icnn.recipes.adversarial import DetectConfig
from keras_icnn.recipes.evaluate import EvalConfig

CONFIGS = (ICNNConfig, CSGConfig, ExplainerConfig, EvalConfig, DetectConfig, ExportConfig)
LISTS = {"eval_split": choices.EVAL_SPLITS, "learning_rate_schedule": choices.LR_SCHEDULES,
         "backbone": choices.BACKBONES, "strategy": choices.STRATEGIES}


@pytest.mark.parametrize("config_cls", CONFIGS, ids=lambda c: c.__name__)
def test_each_flag_offers_the_one_list(config_cls):
    for field in dataclasses.fields(config_cls):
        if field.name in LISTS:
            assert tuple(field.metadata["choices"]) == LISTS[field.name], (config_cls, field.name)


def test_the_lists_by_hand():
    assert choices.EVAL_SPLITS == ("train", "validation", "test")
    assert choices.LR_SCHEDULES == ("constant", "cosine", "step")
    assert choices.BACKBONES == choices.BUILTIN_BACKBONES + choices.APPLICATION_BACKBONES
    assert set(choices.BUILTIN_BACKBONES).isdisjoint(choices.APPLICATION_BACKBONES)
