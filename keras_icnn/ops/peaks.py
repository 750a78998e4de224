"""A map's peak: the one place the strongest unit of a feature map is found (the part mask,
the filter loss, receptive fields, metrics, explanations and the export all call it).

Example:
    >>> i, j, score = peak_units(maps)        # maps [B, h, w, F] -> int32 [B, F] x 2, [B, F]
"""
import tensorflow as tf


def peak_units(maps, via_max=False):
    """Row, column and value of each map's strongest unit.

    Args:
        maps: ``[B, h, w, F]`` feature maps (any float dtype).
        via_max: find the unit as the first one equal to the maximum (two plain
            reductions) instead of ``argmax``. Same result; inside XLA-compiled code on
            CPU it is faster than XLA's argmax (a variadic reduction), without XLA slower
            than TensorFlow's argmax kernel, so the XLA-compiled training functions use
            it (measurements: docs/internals.md).

    Returns:
        ``(i, j, score)``: int32 ``[B, F]`` row and column (ties: the first unit
        in row-major order), and the peak value ``[B, F]`` in ``maps``' dtype.
    """
    shape = tf.shape(maps)
    hw = shape[1] * shape[2]
    flat = tf.reshape(maps, [shape[0], hw, shape[3]])
    score = tf.reduce_max(flat, axis=1)
    if via_max:
        first = tf.reduce_min(
            tf.where(tf.equal(flat, score[:, None, :]), tf.range(hw)[None, :, None], hw), axis=1)
        idx = tf.minimum(first, hw - 1)  # a NaN maximum equals no unit
    else:
        idx = tf.argmax(flat, axis=1, output_type=tf.int32)
    return idx // shape[2], idx % shape[2], score
