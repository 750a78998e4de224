"""Attribution maths on tensors: gradient x activation (each filter's first-order
contribution), Grad-CAM at a layer, and the per-pixel maps of an image gradient. Written
once; :mod:`keras_icnn.explain` and the metrics call them.
"""
import tensorflow as tf


def gradient_x_activation(maps, grads):
    """``sum_ij grads_ijf * maps_ijf``: each filter's first-order contribution [B, F] float32."""
    return tf.reduce_sum(tf.cast(grads, tf.float32) * tf.cast(maps, tf.float32), axis=[1, 2])


def grad_cam(maps, grads):
    """Grad-CAM at the layer's resolution: ``ReLU(sum_f mean_ij(grads_f) maps_f)`` [B, h, w]."""
    for name, value in (("maps", maps), ("grads", grads)):
        if tf.convert_to_tensor(value).shape.rank != 4:
            raise ValueError(f"`{name}` must be [batch, h, w, filters] (rank 4). Received: "
                             f"{name} of shape {tf.convert_to_tensor(value).shape}")
    weights = tf.reduce_mean(tf.cast(grads, tf.float32), axis=[1, 2])
    return tf.nn.relu(tf.einsum("bhwf,bf->bhw", tf.cast(maps, tf.float32), weights))


def pixel_maps(images, gradients, swapped=None):
    """The per-pixel maps [B, H, W] of :data:`PIXEL_METHODS` from the image gradients
    ``[B, H, W, C]``: saliency ``max_c |g|``, gradient x input ``sum_c x g``; and from
    ``swapped`` (``{"guided_backprop": g_guided, "deconvnet": g_deconv}``, the gradients with
    the ReLU rule swapped, either may be left out) ``max_c |g_rule|`` each."""
    x = tf.cast(images, tf.float32)
    g = tf.cast(gradients, tf.float32)
    out = {"saliency": tf.reduce_max(tf.abs(g), axis=-1),
           "gradient_x_input": tf.reduce_sum(x * g, axis=-1)}
    for name, grad in (swapped or {}).items():
        out[name] = tf.reduce_max(tf.abs(tf.cast(grad, tf.float32)), axis=-1)
    return out
