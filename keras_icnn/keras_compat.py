"""Compatibility fix: ``MultiWorkerMirroredStrategy`` + ``Model.fit`` in Keras 3 (TF backend).

Keras 3.x (seen on 3.15, keras-team/keras#20585) fails two ways under
``MultiWorkerMirroredStrategy``:

1. ``_maybe_symbolic_build`` reduces the first distributed batch with
   ``strategy.reduce("MEAN", ...)``, a collective the other workers never join
   (and a batch needs no reduction): the local replica's batch is all the
   symbolic build needs.
2. ``reduce_per_replica`` averages scalar logs with ``axis=0``, which fails
   for rank-0 values: scalars need ``axis=None``.

:func:`patch_multi_worker_fit` corrects exactly those two behaviours. It is
applied only for ``--strategy=multi_worker`` and only on Keras 3.
"""

import keras
import tensorflow as tf

_PATCHED = False


def _needs_patch():
    return keras.__version__.split(".")[0] == "3"


def patch_multi_worker_fit():
    """Apply the fix once; returns True when it is (or already was) applied."""
    global _PATCHED
    if _PATCHED:
        return True
    if not _needs_patch():
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

    tf_trainer.reduce_per_replica = reduce_per_replica
    tf_trainer.TensorFlowTrainer._maybe_symbolic_build = _maybe_symbolic_build
    _PATCHED = True
    return True
