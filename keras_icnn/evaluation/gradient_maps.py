"""GradMaps (CSG App. G): the gradient of each filter's mean response with respect to the
image, run through the model; :func:`keras_icnn.metrics.gradient_map_localization` scores them."""
import keras
import numpy as np
import tensorflow as tf

from keras_icnn import validation
from keras_icnn.models import graph


def gaussian_kernel(sigma):
    """A normalised 1-D Gaussian of ``sigma`` (radius 3 sigma)."""
    radius = int(np.ceil(3 * sigma))
    x = np.arange(-radius, radius + 1, dtype=np.float32)
    g = np.exp(-0.5 * (x / sigma) ** 2)
    return g / g.sum()


def gradient_maps(model, layer_name, images, sigma=5.0, batch_size=8):
    """GradMaps (CSG App. G): d mean-pooled activation of each filter / d image.

    The gradient's magnitude (max over colour channels) is normalised by its
    second moment over the image, blurred with a Gaussian (``sigma`` pixels).

    Returns:
        float32 [N, H, W, K]; segment with ``> 1.0`` as the paper does.
    """
    images = validation.check_images(model, images, "gradient_maps")
    # Only the layer's maps are needed: any model, a classifier or not.
    flat = graph.flatten(model, "gradient_maps")
    name = graph.flat_layer_name(model, layer_name, "gradient_maps")
    probe = keras.Model(flat.inputs[0], graph.layer_output(flat, name))
    kernel = gaussian_kernel(sigma)
    k_rows = tf.constant(kernel[:, None, None, None])
    k_cols = tf.constant(kernel[None, :, None, None])

    @tf.function
    def step(x):
        with tf.GradientTape() as tape:
            tape.watch(x)
            pooled = tf.reduce_mean(tf.cast(probe(x, training=False), tf.float32), axis=[1, 2])
        jac = tape.batch_jacobian(pooled, x)  # [B, K, H, W, 3]
        mag = tf.reduce_max(tf.abs(jac), axis=-1)  # [B, K, H, W]
        mag = mag / (tf.sqrt(tf.reduce_mean(tf.square(mag), axis=[2, 3], keepdims=True)) + 1e-12)
        mag = tf.transpose(mag, [0, 2, 3, 1])  # [B, H, W, K]
        shape = tf.shape(mag)
        flat = tf.reshape(tf.transpose(mag, [0, 3, 1, 2]), [-1, shape[1], shape[2], 1])
        flat = tf.nn.conv2d(flat, k_rows, 1, "SAME")
        flat = tf.nn.conv2d(flat, k_cols, 1, "SAME")
        return tf.transpose(tf.reshape(flat, [shape[0], shape[3], shape[1], shape[2]]),
                            [0, 2, 3, 1])

    images = np.asarray(images, np.float32)
    return np.concatenate([step(tf.constant(images[a:a + batch_size])).numpy()
                           for a in range(0, len(images), batch_size)])
