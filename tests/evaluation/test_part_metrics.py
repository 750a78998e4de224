"""The streamed model-level part consistency and stability equal the array functions on the
model's own peaks."""
import keras
import numpy as np

from keras_icnn.evaluation.part_metrics import part_consistency_and_stability
from keras_icnn.evaluation.streaming import peak_responses
from keras_icnn.metrics.parts import part_consistency


def test_streamed_scores_equal_the_array_functions():
    rng = np.random.default_rng(0)
    inputs = keras.Input((16, 16, 3))
    maps = keras.layers.Conv2D(4, 3, padding="same", activation="relu", name="conv")(inputs)
    outputs = keras.layers.Dense(2)(keras.layers.GlobalAveragePooling2D()(maps))
    model = keras.Model(inputs, outputs)
    x = rng.uniform(0, 255, (20, 16, 16, 3)).astype(np.float32)
    y = rng.integers(0, 2, 20)
    lm = rng.uniform(0, 16, (20, 3, 2))
    lm[rng.random((20, 3)) < 0.2] = np.nan
    r = part_consistency_and_stability(model, {"image": x, "label": y, "landmarks": lm},
                                       layer="conv", noise_std=0.0, batch_size=6,
                                       half_side=0.25)
    positions, scores = peak_responses(model, "conv")(x)
    classes = np.stack([scores[y == c].mean(0) for c in (0, 1)]).argmax(0)
    np.testing.assert_array_equal(r["filter_classes"], classes)
    score, o, _ = part_consistency(positions, lm, y, classes, (16, 16), half_side=0.25)
    np.testing.assert_allclose(r["o"], o)
    assert r["consistency"] == score
    assert r["stability"] == 1.0  # no noise: every covered set is unchanged
    noisy = part_consistency_and_stability(model, {"image": x, "label": y, "landmarks": lm},
                                           layer="conv", noise_std=80.0, half_side=0.25)
    assert 0.0 <= noisy["stability"] < 1.0
