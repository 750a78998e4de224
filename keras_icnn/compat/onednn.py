"""Version-bounded check for an upstream bug, citing its upstream report.

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
import warnings

import keras

# Input channels below which oneDNN's strided 1x1 backward-weights kernel overruns (AVX-512 block).
ONEDNN_1X1_CHANNEL_BLOCK = 16


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
