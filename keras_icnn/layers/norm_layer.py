"""NormLayer: the explainer network's running-magnitude channel normalisation."""

import keras
import tensorflow as tf

from keras_icnn import validation


@keras.saving.register_keras_serializable(package="keras_icnn")
class NormLayer(keras.layers.Layer):
    """Divides each channel by its average activation magnitude.

    ``x_hat[..., k] = x[..., k] / alpha_k`` with ``alpha_k`` the running mean
    over images of ``sum_ij max(x_ijk, 0)``, updated in training like
    BatchNormalization's moving statistics
    (``alpha <- momentum * alpha + (1 - momentum) * batch_mean``) and frozen in
    inference. ``alpha`` is a statistic, not a parameter: no gradient flows
    through it (the input is divided by a constant, in training as in
    inference). A channel whose ``alpha`` is (still) zero passes through
    unscaled instead of dividing by zero.

    ``alpha_floor`` bounds the division from below by a fraction of the
    layer's mean ``alpha``: ``x_k / max(alpha_k, alpha_floor * mean_c alpha_c)``.
    Without it a channel that is dying has an ``alpha_k`` that decays
    geometrically with the running average (to 1e-9 within five epochs in issue
    26's birds run), and the one image on which it still fires is multiplied
    by up to ``1 / alpha_k``: the explainer's reconstruction loss jumped from
    0.05 to 10, the validation loss to 2e3, p fell back, and the jumps' gradients
    killed most of conv-interp-1's filters. The floor is scale-free (a
    fraction of the layer's own mean), so a channel is amplified at most
    ``1 / alpha_floor`` times more than the layer's average channel.

    ``selected`` restricts the estimate to some images of the batch: the
    explainer paper estimates ``alpha`` of a single-category performer's
    explainer on the images the performer predicts positive (appendix), so
    that ``p`` measures the interpretable track's share where its filters
    fire. A batch with no selected image leaves ``alpha`` unchanged.

    Args:
        momentum: moving-average momentum (default 0.99).
        epsilon: ``alpha`` below this counts as zero.
        alpha_floor: divide by at least this fraction of the mean ``alpha``
            over channels (0: the paper's rule, no floor).
        **kwargs: base layer arguments.

    Call arguments:
        inputs: [B, h, w, K] feature maps.
        training: update ``alpha`` from the batch when True.
        selected: optional bool [B]: the images ``alpha`` is estimated on
            (default: all).

    Example:
        >>> norm = keras_icnn.layers.NormLayer(momentum=0.9)
        >>> y = norm(features, training=True)

    Reference:
        Zhang et al. Unsupervised Learning of Neural Networks to Explain
        Neural Networks, §3.1 (norm-layer).
    """

    def __init__(self, momentum=0.99, epsilon=1e-6, alpha_floor=0.0, **kwargs):
        super().__init__(**kwargs)
        if not 0.0 <= float(momentum) < 1.0:
            raise ValueError(f"`momentum` must lie in [0, 1). Received: momentum={momentum}")
        if not 0.0 <= float(alpha_floor) <= 1.0:
            raise ValueError(f"`alpha_floor` must lie in [0, 1]. Received: alpha_floor={alpha_floor}")
        validation.number_in(epsilon, "epsilon", low=0, low_open=True)
        self.momentum = float(momentum)
        self.epsilon = float(epsilon)
        self.alpha_floor = float(alpha_floor)

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

    def batch_alpha(self, inputs, selected=None):
        """``(alpha, count)``: mean over the (selected) images of the batch of
        ``sum_ij max(x, 0)`` per channel (float32, no gradient) and how many images."""
        sums = tf.reduce_sum(tf.nn.relu(tf.cast(tf.stop_gradient(inputs), tf.float32)), axis=[1, 2])
        if selected is None:
            count = tf.cast(tf.shape(sums)[0], tf.float32)
            return tf.reduce_sum(sums, axis=0) / tf.maximum(count, 1.0), count
        weight = tf.cast(tf.reshape(selected, [-1, 1]), tf.float32)
        count = tf.reduce_sum(weight)
        return tf.reduce_sum(sums * weight, axis=0) / tf.maximum(count, 1.0), count

    def update(self, inputs, selected=None):
        """Update the running ``alpha`` from a batch; returns the new value."""
        batch, count = self.batch_alpha(inputs, selected)
        old = tf.convert_to_tensor(self.alpha)
        first = tf.convert_to_tensor(self.initialized) <= 0
        # The first batch sets alpha (no bias towards the zero initial value).
        new = tf.where(first, batch, self.momentum * old + (1.0 - self.momentum) * batch)
        # A batch with NaN/Inf maps never reaches the running alpha (issue 31): a NaN alpha
        # would stay NaN through every later batch.
        # (The inputs are checked, not the sums: XLA's max, hence ReLU, maps NaN to 0.)
        finite = tf.reduce_all(tf.math.is_finite(tf.cast(tf.stop_gradient(inputs), tf.float32)))
        usable = tf.logical_and(count > 0, finite)
        new = tf.where(usable, new, old)
        self.alpha.assign(new)
        self.initialized.assign(tf.where(usable, 1.0, tf.convert_to_tensor(self.initialized)))
        return new

    def call(self, inputs, training=None, selected=None):
        if training:
            alpha = self.update(inputs, selected)
        else:
            alpha = tf.convert_to_tensor(self.alpha)
        return inputs / tf.cast(self.divisor(alpha), inputs.dtype)

    def divisor(self, alpha=None):
        """What each channel is divided by: ``max(alpha, alpha_floor * mean(alpha))``,
        or 1 where that is (still) below ``epsilon``."""
        alpha = tf.convert_to_tensor(self.alpha if alpha is None else alpha)
        if self.alpha_floor > 0.0:
            alpha = tf.maximum(alpha, self.alpha_floor * tf.reduce_mean(alpha))
        return tf.where(alpha > self.epsilon, alpha, tf.ones_like(alpha))

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self):
        config = super().get_config()
        config.update({"momentum": self.momentum, "epsilon": self.epsilon,
                       "alpha_floor": self.alpha_floor})
        return config
