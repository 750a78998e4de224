"""One place that turns ``--strategy`` into a ``tf.distribute`` strategy."""

import os

import tensorflow as tf

STRATEGIES = ("default", "mirrored", "multi_worker")
# One strategy per kind and device set per process: a second MirroredStrategy over the
# same devices reuses collective instance keys of the first and aborts its collectives.
_CACHE = {}


def split_cpu(num_devices):
    """Split the CPU into ``num_devices`` logical devices (before TF initialises).

    Returns the logical CPU device names. If TF is already initialised with at
    least that many logical CPUs they are reused; otherwise a RuntimeError
    says to call this first.
    """
    num_devices = int(num_devices)
    if num_devices < 1:
        raise ValueError(f"`num_devices` (get_strategy's `num_cpu_devices`) must be >= 1. "
                         f"Received: {num_devices}")
    cpu = tf.config.list_physical_devices("CPU")[0]
    try:
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration()] * num_devices)
    except RuntimeError:
        pass  # already initialised: use what exists if it is enough
    logical = tf.config.list_logical_devices("CPU")
    if len(logical) < num_devices:
        raise RuntimeError(
            f"TensorFlow is already initialised with {len(logical)} logical CPU device(s); "
            f"{num_devices} were asked for. Call get_strategy(...) before any TF op runs.")
    return [d.name for d in logical[:num_devices]]


def get_strategy(name="default", num_cpu_devices=None):
    """A ``tf.distribute.Strategy`` by name.

    Args:
        name: ``"default"`` (no distribution), ``"mirrored"`` (all GPUs, or the
            CPU split into ``num_cpu_devices`` logical devices when there is no
            GPU) or ``"multi_worker"`` (``MultiWorkerMirroredStrategy`` from the
            ``TF_CONFIG`` environment variable; applies the Keras compatibility
            fix of ``keras_icnn.keras_compat``).
        num_cpu_devices: logical CPU devices for ``mirrored`` without GPUs
            (default 2).

    The same strategy object is returned for the same arguments within a process.

    Example:
        >>> strategy = get_strategy("mirrored", num_cpu_devices=2)
        >>> with strategy.scope():
        ...     model = build_model(); model.compile(...)
    """
    if name not in STRATEGIES:
        raise ValueError(f"`strategy` must be one of {STRATEGIES}. Received: strategy={name!r}")
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        gpus = tf.config.list_physical_devices("GPU")
        devices = None if gpus else tuple(split_cpu(num_cpu_devices or 2))
        if ("mirrored", devices) not in _CACHE:
            _CACHE[("mirrored", devices)] = tf.distribute.MirroredStrategy(
                list(devices) if devices else None)
        return _CACHE[("mirrored", devices)]
    if "TF_CONFIG" not in os.environ:
        raise ValueError("--strategy=multi_worker needs the TF_CONFIG environment variable "
                         '(e.g. {"cluster": {"worker": ["host1:port", "host2:port"]}, '
                         '"task": {"type": "worker", "index": 0}})')
    from keras_icnn import keras_compat

    keras_compat.patch_multi_worker_fit()
    if "multi_worker" not in _CACHE:
        _CACHE["multi_worker"] = tf.distribute.MultiWorkerMirroredStrategy()
    return _CACHE["multi_worker"]
