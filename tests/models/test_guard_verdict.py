"""The guard's verdict and its reader (keras_icnn.models.guard_verdict)."""

import keras
import numpy as np
import pytest

from keras_icnn.layers import InterpretableConv
from keras_icnn.models import guard_verdict
from keras_icnn.models.guard_verdict import EpochCounter, NonFiniteStepError, StopOnNonFiniteStep


def _model():
    keras.utils.set_random_seed(0)
    inputs = keras.Input((8, 8, 3))
    x = InterpretableConv(4, 3, num_classes=2, name="iconv")(inputs)
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, keras.layers.Dense(2)(x))


def test_codes_are_stable_and_the_read_divides_by_the_replicas():
    model = _model()
    verdict = guard_verdict.guard_of(model)
    assert guard_verdict.guard_of(model) is verdict          # one per model
    a = verdict.code_of("input", "input")
    b = verdict.code_of("gradient", "the gradient of 'k'")
    assert (a, b, verdict.code_of("input", "input")) == (1, 2, 1)
    assert verdict.read(1) is None
    verdict.code.assign(2.0 * b)                              # two replicas both wrote code b
    assert verdict.read(2) == ("gradient", "the gradient of 'k'")
    verdict.reset()
    assert verdict.read(2) is None


def test_the_stop_callback_names_the_tensor_epoch_and_step():
    model = _model()
    verdict = guard_verdict.guard_of(model)
    stop = StopOnNonFiniteStep()
    stop.set_model(model)
    model.current_epoch = 2
    verdict.code.assign(float(verdict.code_of("variable", "variable 'bn/moving_mean'")))
    with pytest.raises(NonFiniteStepError, match=r"in variable 'bn/moving_mean' at epoch 3, "
                                                 r"step 5: .* lower the learning rate"):
        stop.on_train_batch_end(4, logs={"loss": 0.5})
    assert model.stop_training
    verdict.reset()
    with pytest.raises(NonFiniteStepError, match=r"Non-finite loss \(nan\) at epoch 3, step 1"):
        stop.on_train_batch_end(0, logs={"loss": float("nan")})


def test_the_epoch_counter_sets_every_counter_during_fit():
    seen = []

    class Record(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            seen.append((self.model.current_epoch,
                         float(self.model.get_layer("iconv").epoch.numpy())))

    model = _model()
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(True))
    x = np.random.RandomState(0).uniform(size=(8, 8, 8, 3)).astype("float32")
    y = np.arange(8) % 2
    model.fit(x, y, epochs=3, verbose=0, callbacks=[EpochCounter(), Record()])
    assert seen == [(0, 1.0), (1, 2.0), (2, 3.0)]
