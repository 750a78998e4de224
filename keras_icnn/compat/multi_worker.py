"""Version-bounded fix for an upstream bug, citing its upstream report.

1. ``MultiWorkerMirroredStrategy`` + ``Model.fit`` in Keras 3 (TF backend),
   keras-team/keras#20585. Keras 3.15 fails two ways under that strategy:

   * ``_maybe_symbolic_build`` reduces the first distributed batch with
     ``strategy.reduce("MEAN", ...)``, a collective the other workers never
     join (and a batch needs no reduction): the local replica's batch is all
     the symbolic build needs.
   * ``reduce_per_replica`` averages scalar logs with ``axis=0``, which fails
     for rank-0 values: scalars need ``axis=None``.

   :func:`patch_multi_worker_fit` corrects exactly those two behaviours. It is
   applied only for ``--strategy=multi_worker``, only on the Keras versions it
   was verified on (:data:`VERIFIED_KERAS`), and only while the two patched
   functions are the ones it was written against (their source hashes are
   checked, and a test fails when they change).
"""

import hashlib
import inspect
import warnings

import keras
import tensorflow as tf

_PATCHED = False
_ORIGINALS = {}  # the Keras functions the patch replaced, by name

# Keras versions (major.minor) the multi-worker patch was run and verified on.
VERIFIED_KERAS = ("3.15",)
# sha256 of the source of each function the patch replaces, on those versions.
PATCHED_SOURCES = {
    "reduce_per_replica":
        "2e7d54b1e6edc29a8c6a7e6b66cd4c8be3ba7842412c93753ac3afe169fa7fb8",
    "TensorFlowTrainer._maybe_symbolic_build":
        "92a504f5eba9b29f81f1bf26180bdd5bf5186b06b7bda426534b90d2d02bc1c2",
}


def _trainer_functions():
    """Keras' own versions of the functions the patch replaces (also after patching)."""
    from keras.src.backend.tensorflow import trainer as tf_trainer

    current = {"reduce_per_replica": tf_trainer.reduce_per_replica,
               "TensorFlowTrainer._maybe_symbolic_build":
                   tf_trainer.TensorFlowTrainer._maybe_symbolic_build}
    return {name: _ORIGINALS.get(name, fn) for name, fn in current.items()}


def source_hashes():
    """sha256 of the current source of each function :func:`patch_multi_worker_fit` replaces."""
    return {name: hashlib.sha256(inspect.getsource(fn).encode()).hexdigest()
            for name, fn in _trainer_functions().items()}


def _keras_minor(version=None):
    return ".".join((version or keras.__version__).split(".")[:2])


def patch_multi_worker_fit():
    """Apply the multi-worker fix once; returns True when it is (or already was) applied.

    On a Keras version outside :data:`VERIFIED_KERAS`, or when a function it
    replaces has changed, nothing is patched: a ``RuntimeWarning`` says so and
    the call returns False (multi-worker ``fit`` then runs on Keras' own code).
    """
    global _PATCHED
    if _PATCHED:
        return True
    if _keras_minor() not in VERIFIED_KERAS:
        warnings.warn(
            f"keras_icnn's MultiWorkerMirroredStrategy fix (keras-team/keras#20585) was verified "
            f"on Keras {', '.join(VERIFIED_KERAS)}; Keras {keras.__version__} is left unpatched.",
            RuntimeWarning, stacklevel=2)
        return False
    changed = [name for name, digest in source_hashes().items()
               if digest != PATCHED_SOURCES[name]]
    if changed:
        warnings.warn(
            f"keras_icnn's MultiWorkerMirroredStrategy fix was written for other versions of "
            f"{', '.join(changed)} than Keras {keras.__version__} has; left unpatched.",
            RuntimeWarning, stacklevel=2)
        return False
    from keras.src.backend.tensorflow import trainer as tf_trainer

    original_reduce = tf_trainer.reduce_per_replica

    def reduce_per_replica(values, strategy, reduction):
        if (reduction in ("auto", "mean")
                and isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy)):
            def _reduce(v):
                if not isinstance(v, tf.distribute.DistributedValues):
                    return v
                rank = v.values[0].shape.rank if hasattr(v, "values") else None
                return strategy.reduce("MEAN", v, axis=None if rank == 0 else 0)

            return tf.nest.map_structure(_reduce, values)
        return original_reduce(values, strategy, reduction)

    def _maybe_symbolic_build(self, iterator=None, data_batch=None):
        if self._distribute_strategy is None:
            return
        if iterator is not None:
            for _, _, it in iterator:
                batch = next(it)
                data_batch = tf.nest.map_structure(
                    lambda v: (self.distribute_strategy.experimental_local_results(v)[0]
                               if isinstance(v, tf.distribute.DistributedValues) else v),
                    batch)
                break
        with self.distribute_strategy.scope():
            self._symbolic_build(data_batch=data_batch)

    _ORIGINALS.update(_trainer_functions())
    tf_trainer.reduce_per_replica = reduce_per_replica
    tf_trainer.TensorFlowTrainer._maybe_symbolic_build = _maybe_symbolic_build
    _PATCHED = True
    return True
