"""NormLayer: the explainer network's running-magnitude channel normalisation."""

import keras
import tensorflow as tf


@keras.saving.register_keras_serializable(package="keras_icnn")
class NormLayer(keras.layers.Layer):
    """Divides each channel by its average activation magnitude.

    ``x_hat[..., k] = x[..., k] / alpha_k`` with ``alpha_k`` the running mean
    over images of ``sum_ij max(x_ijk, 0)``, updated in training like
    BatchNormalization's moving statistics
    (``alpha <- momentum * alpha + (1 - momentum) * batch_mean``) and frozen in
    inference. A channel whose ``alpha`` is (still) zero passes through
    unscaled instead of dividing by zero.

    Args:
        momentum: moving-average momentum (default 0.99).
        epsilon: ``alpha`` below this counts as zero.
        **kwargs: base layer arguments.

    Call arguments:
        inputs: [B, h, w, K] feature maps.
        training: update ``alpha`` from the batch when True.

    Example:
        >>> norm = keras_icnn.layers.NormLayer(momentum=0.9)
        >>> y = norm(features, training=True)

    Reference:
        Zhang et al. Unsupervised Learning of Neural Networks to Explain
        Neural Networks, §3.1 (norm-layer).
    """

    def __init__(self, momentum=0.99, epsilon=1e-6, **kwargs):
        super().__init__(**kwargs)
        if not 0.0 <= float(momentum) < 1.0:
            raise ValueError(f"`momentum` must lie in [0, 1). Received: momentum={momentum}")
        self.momentum = float(momentum)
        self.epsilon = float(epsilon)

    def build(self, input_shape):
        if len(input_shape) != 4:
            raise ValueError("NormLayer expects a 4D input [batch, height, width, channels]. "
                             f"Received: input_shape={tuple(input_shape)}")
        self.alpha = self.add_weight(
            name="alpha", shape=(input_shape[-1],), initializer="zeros", trainable=False,
            aggregation="mean", autocast=False)
        self.initialized = self.add_weight(
            name="initialized", shape=(), initializer="zeros", trainable=False,
            aggregation="mean", autocast=False)
        self.built = True

    def batch_alpha(self, inputs):
        """``mean over the batch of sum_ij max(x, 0)`` per channel (float32)."""
        return tf.reduce_mean(tf.reduce_sum(tf.nn.relu(tf.cast(inputs, tf.float32)), axis=[1, 2]),
                              axis=0)

    def call(self, inputs, training=None):
        if training:
            batch = self.batch_alpha(inputs)
            old = tf.convert_to_tensor(self.alpha)
            first = tf.convert_to_tensor(self.initialized) > 0
            # The first batch sets alpha (no bias towards the zero initial value).
            new = tf.where(first, self.momentum * old + (1.0 - self.momentum) * batch, batch)
            self.alpha.assign(new)
            self.initialized.assign(1.0)
            alpha = new
        else:
            alpha = tf.convert_to_tensor(self.alpha)
        safe = tf.where(alpha > self.epsilon, alpha, tf.ones_like(alpha))
        return inputs / tf.cast(safe, inputs.dtype)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self):
        config = super().get_config()
        config.update({"momentum": self.momentum, "epsilon": self.epsilon})
        return config
