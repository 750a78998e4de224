"""One learning-rate schedule builder for every trainer (recipes/optim.py), by hand."""
import math

import pytest

from keras_icnn.recipes import CSGConfig, ICNNConfig, optim


@pytest.mark.parametrize("config_cls", [ICNNConfig, CSGConfig])
def test_each_schedule_by_hand(config_cls):
    lr = 1e-3
    assert optim.decay(config_cls(learning_rate_schedule="constant"), lr, 100) == lr
    assert optim.decay(config_cls(learning_rate_schedule="cosine"), lr, 0) == lr  # no steps
    cosine = optim.decay(config_cls(learning_rate_schedule="cosine"), lr, 100)
    for step in (0, 25, 50, 100):
        assert float(cosine(step)) == pytest.approx(lr * 0.5 * (1 + math.cos(math.pi * step / 100)),
                                                    rel=1e-5, abs=1e-9)
    step = optim.decay(config_cls(learning_rate_schedule="step"), lr, 100)
    # x0.1 after 40%, 60% and 80% of the steps.
    for at, want in ((0, 1e-3), (40, 1e-3), (41, 1e-4), (60, 1e-4), (61, 1e-5), (81, 1e-6)):
        assert float(step(at)) == pytest.approx(want, rel=1e-5), at


def test_every_trainer_offers_the_same_schedules():
    from keras_icnn.config.choices import LR_SCHEDULES

    assert LR_SCHEDULES == ("constant", "cosine", "step") == optim.CSG_LR_SCHEDULES
    with pytest.raises(ValueError, match="learning_rate_schedule"):
        optim.decay(type("Config", (), {"learning_rate_schedule": "linear"})(), 1e-3, 10)
