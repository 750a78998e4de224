"""Small image operations shared by the faithfulness metrics and the gradient-ascent pictures."""
import math

import tensorflow as tf

from keras_icnn import validation


def gaussian_blur(images, sigma):
    """Gaussian blur of images [N, H, W, C] (float32), ``sigma`` in pixels, as a normalised
    convolution: near the border the kernel is renormalised over the pixels inside the image
    (no dark rim from zero padding, any image size)."""
    x = tf.convert_to_tensor(images, tf.float32)
    sigma = validation.number_in(sigma, "sigma", 0, low_open=True)
    radius = max(1, int(math.ceil(3 * sigma)))
    t = tf.range(-radius, radius + 1, dtype=tf.float32)
    k = tf.exp(-0.5 * tf.square(t / sigma))
    k = k / tf.reduce_sum(k)
    channels = x.shape[-1]

    def separable(v, c):
        rows = tf.tile(tf.reshape(k, [-1, 1, 1, 1]), [1, 1, c, 1])
        cols = tf.tile(tf.reshape(k, [1, -1, 1, 1]), [1, 1, c, 1])
        v = tf.nn.depthwise_conv2d(v, rows, [1, 1, 1, 1], "SAME")
        return tf.nn.depthwise_conv2d(v, cols, [1, 1, 1, 1], "SAME")

    weight = separable(tf.ones_like(x[:1, :, :, :1]), 1)
    return separable(x, channels) / weight
