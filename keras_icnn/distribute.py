"""``tf.distribute`` in one place: ``--strategy`` to a strategy, this worker's shard and
whether it is the chief, replicas' agreement, synchronized BatchNorm."""

import os

import keras
import tensorflow as tf

from keras_icnn.config.choices import STRATEGIES
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
            fix of ``keras_icnn.compat.multi_worker``).
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
    from keras_icnn.compat import multi_worker

    multi_worker.patch_multi_worker_fit()
    if "multi_worker" not in _CACHE:
        _CACHE["multi_worker"] = tf.distribute.MultiWorkerMirroredStrategy()
    return _CACHE["multi_worker"]


def _cluster_resolver(strategy):
    """The multi-worker cluster resolver of ``strategy`` (None without a cluster)."""
    resolver = getattr(strategy, "cluster_resolver", None)
    return resolver if resolver is not None and getattr(resolver, "task_type", None) else None


def worker_shard(strategy):
    """``(num_workers, index)`` of this worker under a multi-worker strategy, else None."""
    resolver = _cluster_resolver(strategy)
    if resolver is None:
        return None
    spec = resolver.cluster_spec().as_dict()
    workers = [(kind, i) for kind in ("chief", "worker") for i in range(len(spec.get(kind, ())))]
    if len(workers) < 2:
        return None
    return len(workers), workers.index((resolver.task_type, int(resolver.task_id or 0)))



def sync_batchnorm(model, strategy):
    """Synchronise the BatchNorm statistics of ``model`` across replicas and workers.

    With one replica per worker, each worker's BatchNorm layers would keep
    their own shard's batch statistics (and their own moving averages); with
    ``synchronized=True`` the moments are all-reduced over the global batch,
    so every replica and worker holds the same statistics. Returns the number
    of layers changed.
    """
    if strategy.num_replicas_in_sync < 2:
        return 0
    count = 0
    for layer in model._flatten_layers(include_self=False):
        if isinstance(layer, keras.layers.BatchNormalization) and not layer.synchronized:
            layer.synchronized = True
            count += 1
    return count


def is_chief(strategy):
    """True unless this process is a non-chief worker of a multi-worker strategy."""
    resolver = _cluster_resolver(strategy)
    if resolver is None:
        return True
    spec = resolver.cluster_spec().as_dict()
    if "chief" in spec:
        return resolver.task_type == "chief"
    return resolver.task_type == "worker" and int(resolver.task_id or 0) == 0


def replicas_agree(strategy, variables):
    """Whether every replica (and worker) holds the same values of ``variables``.

    Gathers every replica's local copy (``all_gather``) and compares them
    exactly; True with one replica.
    """
    if strategy.num_replicas_in_sync < 2 or not variables:
        return True

    def local():
        ctx = tf.distribute.get_replica_context()
        flat = tf.concat([tf.reshape(tf.cast(tf.convert_to_tensor(v), tf.float32), [-1])
                          for v in variables], 0)
        gathered = ctx.all_gather(flat[None], axis=0)  # [replicas, n]
        return tf.reduce_all(tf.equal(gathered, gathered[:1]))

    result = strategy.run(tf.function(local))
    return bool(all(v.numpy() for v in strategy.experimental_local_results(result)))


def batchnorm_statistics(model):
    """The moving means and variances of every BatchNormalization layer of ``model``."""
    return [w for layer in model._flatten_layers(include_self=False)
            if isinstance(layer, keras.layers.BatchNormalization)
            for w in (layer.moving_mean, layer.moving_variance)]

