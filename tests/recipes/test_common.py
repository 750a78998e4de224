"""Pins of what the ICNN experiment trains on and measures (issue 25's regression).

8fc21d3 moved the training pipeline's construction after ``keras.utils.set_random_seed``:
``tf.data``'s seeded shuffle also reads TensorFlow's global seed, so the bench's training
order changed (and its figures with it) without any data or model change. The recipes now
set the global seed themselves; these tests fail if the order depends on what ran before,
or if the order, the data or the measurement of a fixed model changes.
"""
import dataclasses
import hashlib

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_icnn import metrics, recipes
from keras_icnn.evaluation.streaming import stream_filter_metrics
from keras_icnn.models import backbones
from keras_icnn.recipes.common import datasets, eval_batches, open_data

# The first training batch of ICNNConfig(num_train=64, seed=0), images and labels
# (benchmarks/fingerprint_icnn.py hashes whole epochs the same way).
FIRST_BATCH = "5f9104f6d66fb450"
# A VGG of width 8, keras.utils.set_random_seed(0), on the 48 test images of that config.
FIXED_MODEL = {"accuracy": 1 / 6, "location_instability": 0.09327966700776988,
               "part_interpretability": 0.005859375}


@pytest.fixture(scope="module")
def small():
    config = recipes.ICNNConfig(num_train=64, num_val=32, num_test=48, seed=0, batch_size=32,
                                verbose=0)
    return config, open_data(config, **config.synthetic_options())


def _first_batch(config, source):
    train, _ = datasets(config, source)
    x, y = next(iter(train))
    return hashlib.sha256(np.asarray(x).tobytes() + np.asarray(y).tobytes()).hexdigest()[:16]


@pytest.mark.parametrize("before", [None, 1234, "keras"])
def test_training_order_is_a_function_of_the_seed_alone(small, before):
    config, source = small
    if before == "keras":
        keras.utils.set_random_seed(99)
    elif before is not None:
        tf.random.set_seed(before)
    assert _first_batch(config, source) == FIRST_BATCH


def test_first_epoch_shows_every_training_image_once(small):
    config, source = small
    train, _ = datasets(config, source)
    table = source.table("train")
    images = np.asarray(table["image"], np.float32)
    epoch = list(train)  # one pass: a second would be the next (reshuffled) epoch
    seen = np.concatenate([np.asarray(x) for x, _ in epoch])
    labels = np.concatenate([np.asarray(y) for _, y in epoch])
    assert len(seen) == len(images)
    # each batch image is a training image, as is or mirrored (the flip augmentation)
    flat, mirrored = images.reshape(len(images), -1), images[:, :, ::-1].reshape(len(images), -1)
    s = seen.reshape(len(seen), -1)
    match = (s[:, None] == flat[None]).all(-1) | (s[:, None] == mirrored[None]).all(-1)
    index = match.argmax(1)
    assert match.any(1).all() and len(set(index.tolist())) == len(images)
    np.testing.assert_array_equal(labels, np.asarray(table["label"])[index])
    assert not np.array_equal(index, np.arange(len(images)))  # shuffled


def _indices(batches, images):
    """Which training image each batch image is (as is or mirrored)."""
    flat, mirrored = images.reshape(len(images), -1), images[:, :, ::-1].reshape(len(images), -1)
    s = np.concatenate([np.asarray(x) for x, _ in batches]).reshape(-1, flat.shape[1])
    match = (s[:, None] == flat[None]).all(-1) | (s[:, None] == mirrored[None]).all(-1)
    assert match.any(1).all()
    return match.argmax(1)


def test_an_epoch_of_min_steps_is_whole_reshuffled_passes(small):
    """Issue 48 item 7: ``min_steps_per_epoch`` makes an epoch the fewest whole passes that
    give that many steps (64 images at batch 32: 2 steps a pass, 5 steps -> 3 passes), each
    pass every image once in a new order; -1 means it with --weights only."""
    config, source = small
    images = np.asarray(source.table("train")["image"], np.float32)
    config = dataclasses.replace(config, min_steps_per_epoch=5)
    assert (config.passes_per_epoch(64), config.steps_per_epoch(64)) == (3, 6)
    train, _ = datasets(config, source)
    epoch = list(train)
    assert len(epoch) == 6
    index = _indices(epoch, images)
    passes = index.reshape(3, 64)
    for order in passes:
        assert sorted(order.tolist()) == list(range(64))
    assert not np.array_equal(passes[0], passes[1])
    # -1: one pass from scratch, the recipe's pretrained choice with --weights.
    auto = dataclasses.replace(config, min_steps_per_epoch=-1)
    assert auto.passes_per_epoch(64) == 1
    pretrained = dataclasses.replace(auto, weights="base.weights.h5")
    expected = -(-type(auto).PRETRAINED_MIN_STEPS // 2) or 1
    assert pretrained.passes_per_epoch(64) == expected
    with pytest.raises(ValueError, match="min_steps_per_epoch"):
        dataclasses.replace(config, min_steps_per_epoch=-2).validate()


@pytest.mark.parametrize("name", ["icnn", "explainer", "csg", "pretrain"])
def test_each_recipes_min_steps_help_says_its_pretrained_choice(name):
    """The number ``--help`` gives for --weights is the one the recipe uses (issue 48 item 7:
    explainer 50, CSG 25, ICNN 0, chosen by benchmarks/tune_regime.py)."""
    import importlib
    import re

    module = importlib.import_module(f"keras_icnn.recipes.{name}")
    config = next(value for key, value in vars(module).items()
                  if key.endswith("Config") and value.__module__ == module.__name__)
    field = {f.name: f for f in dataclasses.fields(config)}["min_steps_per_epoch"]
    text = field.metadata["help"]
    steps = config.PRETRAINED_MIN_STEPS
    if steps:
        assert re.search(rf"at least {steps} steps when --weights is given", text), text
    else:
        assert "from scratch and with --weights alike" in text, text
    assert {"icnn": 0, "explainer": 50, "csg": 25}.get(name, steps) == steps
    weighted = config(weights=__file__, min_steps_per_epoch=-1)
    per_pass = -(-180 // weighted.batch_size)
    assert weighted.steps_per_epoch(180) == per_pass * max(-(-steps // per_pass), 1)


def test_fixed_model_metrics_are_constant(small):
    config, source = small
    keras.utils.set_random_seed(0)
    model = backbones.get_backbone("vgg", (64, 64, 3), 6, width=8)
    layer = metrics.default_layer(model)
    streamed = stream_filter_metrics(model, layer, eval_batches(config, source),
                                     source.size("test"), 6, single=None, verbose=0, seed=0)
    in_memory = metrics.evaluate_interpretability(model, source.materialize("test"), verbose=0)
    for key, value in FIXED_MODEL.items():
        assert streamed[key] == pytest.approx(value, abs=1e-6), key
        assert in_memory[key] == pytest.approx(streamed[key], abs=1e-12), key


class _Recorder:
    """Stands in for a model: ``fit`` records a hash of every batch it would train on."""

    def __init__(self):
        self.batches = []

    def fit(self, train, epochs, **kwargs):
        for _ in range(epochs):
            for x, y in train:
                self.batches.append(hashlib.sha256(np.asarray(x).tobytes()
                                                   + np.asarray(y).tobytes()).hexdigest())
        return keras.callbacks.History()


def test_both_icnn_models_train_on_the_same_batches(small, monkeypatch):
    """The pair differs only by the filter loss: same weights (build_icnn_pair), same order."""
    from keras_icnn.recipes import icnn

    # The stand-ins are no Keras models: the non-finite guard has nothing to wrap.
    monkeypatch.setattr(icnn.guard, "protect", lambda model: keras.callbacks.Callback())

    config, source = small
    config = dataclasses.replace(config, epochs=2)
    models = {"ordinary": _Recorder(), "interpretable": _Recorder()}
    icnn.fit(config, source, None, models)
    first, second = models["ordinary"].batches, models["interpretable"].batches
    assert len(first) == 2 * 2 and first == second
    assert first[:2] != first[2:]  # the order is reshuffled between epochs
    alone = {"interpretable": _Recorder()}  # --train=interpretable trains the pair's model
    icnn.fit(config, source, None, alone)
    assert alone["interpretable"].batches == second
