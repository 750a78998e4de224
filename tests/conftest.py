"""Test configuration: quiet TensorFlow, two logical CPU devices for strategy tests."""
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402

_cpus = tf.config.list_physical_devices("CPU")
try:
    tf.config.set_logical_device_configuration(
        _cpus[0], [tf.config.LogicalDeviceConfiguration()] * 2)
except RuntimeError:  # already initialised
    pass


# The suite traces hundreds of tiny fits: the non-finite guard's checks as plain ops (no XLA
# compile per trace: every model's ``fused_checks`` read False unless set);
# tests/models/test_guard.py runs the fused path users get.
import keras as _keras  # noqa: E402

_keras.Model.fused_checks = False


@pytest.fixture(autouse=True)
def _reset_policy():
    yield
    keras.mixed_precision.set_global_policy("float32")
    keras.backend.clear_session(free_memory=False)
