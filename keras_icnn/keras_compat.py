"""Version-bounded fixes and checks for upstream bugs, each citing its upstream report.

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

2. oneDNN's 1x1 strided convolution backward-weights kernel, uxlfoundation/oneDNN#6035:
   with an NHWC source (TensorFlow's layout), stride > 1 and fewer input
   channels than the kernel's channel block (16 on AVX-512, 8 on AVX2), it
   addresses its "reduce to unit stride" workspace with the block size instead
   of the channel count and writes past the buffer when the work is split
   over space, i.e. when the batch is smaller than the number of threads
   (a batch of one on a 2-core machine; a batch of 8 on 16 threads). The
   result is heap corruption that surfaces later, anywhere: segfaults,
   ``corrupted size vs. prev_size``, a hang at interpreter exit. Plain
   TensorFlow reproduces it::

       x = tf.random.normal([1, 16, 16, 4]); dy = tf.random.normal([1, 8, 8, 8])
       for _ in range(30):  # segfaults / glibc abort with TF_ENABLE_ONEDNN_OPTS=1
           tf.raw_ops.Conv2DBackpropFilter(input=x, filter_sizes=[1, 1, 4, 8],
               out_backprop=dy, strides=[1, 2, 2, 1], padding="VALID")

   keras_icnn never runs that kernel itself (its evaluation gradients are
   traced, which prunes the unneeded filter gradients, and its ResNet
   projection subsamples before a stride-1 1x1 conv); a user's model can
   still contain such a layer: :func:`onednn_unsafe_convs` finds them and
   :func:`warn_onednn_unsafe_convs` says what to do.
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
# Input channels below which oneDNN's strided 1x1 backward-weights kernel overruns (AVX-512 block).
ONEDNN_1X1_CHANNEL_BLOCK = 16


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


def onednn_enabled():
    """Whether TensorFlow's oneDNN CPU kernels are on (``TF_ENABLE_ONEDNN_OPTS``, x86 default on)."""
    from tensorflow.python.util import _pywrap_util_port

    return bool(_pywrap_util_port.IsMklEnabled())


def onednn_unsafe_convs(model, check_enabled=True):
    """Names of ``model``'s trainable conv layers that hit uxlfoundation/oneDNN#6035 in training.

    A layer qualifies when it is a trainable ``Conv2D`` (groups 1) with a 1x1
    kernel, a stride above 1 and fewer than :data:`ONEDNN_1X1_CHANNEL_BLOCK`
    input channels. Its filter gradient corrupts the heap whenever a batch is
    smaller than the thread count (see this module's docstring).

    Args:
        model: a built Keras model (nested models are searched).
        check_enabled: return ``[]`` when oneDNN is off in this process.

    Returns:
        list of layer names (empty when the model is safe).

    Example:
        >>> onednn_unsafe_convs(resnet)  # a stride-2 1x1 projection on 4 channels
        ['stage2_block0_proj']
    """
    if check_enabled and not onednn_enabled():
        return []
    names = []
    for layer in model._flatten_layers(include_self=False):  # Keras' own walk
        if (isinstance(layer, keras.layers.Conv2D)
                and not isinstance(layer, keras.layers.Conv2DTranspose)
                and layer.trainable and getattr(layer, "groups", 1) == 1
                and tuple(layer.kernel_size) == (1, 1) and max(layer.strides) > 1
                and layer.built and int(layer.kernel.shape[-2]) < ONEDNN_1X1_CHANNEL_BLOCK):
            names.append(layer.name)
    return names


def warn_onednn_unsafe_convs(model):
    """``UserWarning`` naming the layers of :func:`onednn_unsafe_convs`, with the remedies.

    Returns the list of names.
    """
    names = onednn_unsafe_convs(model)
    if names:
        warnings.warn(
            f"Model {model.name!r} has 1x1 convolutions with stride > 1 and fewer than "
            f"{ONEDNN_1X1_CHANNEL_BLOCK} input channels ({', '.join(names)}). TensorFlow's oneDNN "
            "kernel for their filter gradient writes out of bounds when a batch is smaller than "
            "the thread count (uxlfoundation/oneDNN#6035) and can crash training at any later "
            "point. Replace each by MaxPooling2D(1, strides=s) followed by a stride-1 1x1 Conv2D "
            "(the same function), or set TF_ENABLE_ONEDNN_OPTS=0 before importing TensorFlow.",
            UserWarning, stacklevel=2)
    return names
