"""PartMask: keep a filter's activations around its strongest location."""

import keras
import tensorflow as tf

from keras_icnn.ops import templates as templates_lib
from keras_icnn.ops.peaks import peak_units

MU_RULES = ("argmax", "centroid")


def validate_feature_map_shape(shape, what):
    """Raise a ValueError unless ``shape`` is ``[batch, h >= 2, w >= 2, channels]``."""
    shape = tuple(shape)
    if len(shape) != 4:
        raise ValueError(
            f"{what} expects a 4D input [batch, height, width, channels]. "
            f"Received: input_shape={shape}"
        )
    h, w = shape[1], shape[2]
    if h is None or w is None:
        raise ValueError(
            f"{what} needs a static feature-map height and width (the part "
            f"templates depend on them). Received: input_shape={shape}"
        )
    if h < 2 or w < 2:
        raise ValueError(
            f"{what} needs feature maps of at least 2x2 to place part "
            f"templates; the input image is too small for this network. "
            f"Received: feature map {h}x{w} (input_shape={shape})"
        )


def part_locations(x, mu="argmax", via_max=False):
    """Part location ``mu^`` of every image and filter.

    Args:
        x: ``[B, h, w, K]`` non-negative maps.
        mu: ``"argmax"`` (strongest unit) or ``"centroid"`` (activation-weighted
            centroid rounded to the grid, as the official MATLAB code; maps
            that are all zero fall back to the argmax).
        via_max: as in ``ops.peaks.peak_units`` (for XLA-compiled callers).

    Returns:
        Two int32 tensors ``[B, K]``: row ``i`` and column ``j`` of ``mu^``.
    """
    shape = tf.shape(x)
    h, w = shape[1], shape[2]
    mu_i, mu_j, _ = peak_units(x, via_max)
    if mu == "centroid":
        xf = tf.cast(x, tf.float32)
        total = tf.reduce_sum(xf, axis=[1, 2])
        ii = tf.cast(tf.range(h), tf.float32)[None, :, None, None]
        jj = tf.cast(tf.range(w), tf.float32)[None, None, :, None]
        safe = tf.maximum(total, 1e-12)
        ci = tf.reduce_sum(xf * ii, axis=[1, 2]) / safe
        cj = tf.reduce_sum(xf * jj, axis=[1, 2]) / safe
        has_mass = total > 0
        mu_i = tf.where(has_mass, tf.cast(tf.round(ci), tf.int32), mu_i)
        mu_j = tf.where(has_mass, tf.cast(tf.round(cj), tf.int32), mu_j)
    return tf.stop_gradient(mu_i), tf.stop_gradient(mu_j)


def part_masks(mu_i, mu_j, h, w, beta):
    """Masks ``max(1 - beta * ||(i, j) - mu||_1 / n, 0)`` as ``[B, h, w, K]``.

    ``beta`` is a scalar or a per-filter ``[K]`` tensor.
    """
    n = float(max(h, w))
    ii = tf.range(h, dtype=tf.int32)[None, :, None, None]
    jj = tf.range(w, dtype=tf.int32)[None, None, :, None]
    dist = tf.abs(ii - mu_i[:, None, None, :]) + tf.abs(jj - mu_j[:, None, None, :])
    dist = tf.cast(dist, tf.float32)
    return tf.nn.relu(1.0 - tf.cast(beta, tf.float32) * dist / n)


@keras.saving.register_keras_serializable(package="keras_icnn")
class PartMask(keras.layers.Layer):
    """Masks each feature map with the part template at its peak.

    For every image and filter the part location ``mu^`` is found (the
    strongest unit, or the activation-weighted centroid) and the map is
    multiplied by ``max(1 - beta * ||(i, j) - mu^||_1 / n, 0)``: the positive
    template of ICNN §3 without its ``tau`` factor, so values stay in [0, 1]
    times the input. The location and the mask are constants for
    back-propagation. The mask is applied in training and inference alike.

    Args:
        beta: template sharpness (default 4).
        mu: ``"argmax"`` or ``"centroid"``.
        learnable_beta: learn one ``beta`` per filter, initialised to ``beta``.
            It learns from the task loss through the mask width (the filter
            loss keeps the fixed-``beta`` templates).
        **kwargs: base layer arguments.

    Call arguments:
        inputs: ``[B, h, w, K]`` non-negative feature maps (``h, w >= 2``).

    Example:
        >>> layer = keras_icnn.layers.PartMask()
        >>> layer(tf.random.uniform([2, 7, 7, 16])).shape
        TensorShape([2, 7, 7, 16])

    Reference:
        Zhang, Wu, Zhu. Interpretable Convolutional Neural Networks. CVPR 2018, §3.
    """

    def __init__(self, beta=templates_lib.DEFAULT_BETA, mu="argmax",
                 learnable_beta=False, **kwargs):
        super().__init__(**kwargs)
        if mu not in MU_RULES:
            raise ValueError(f"`mu` must be one of {MU_RULES}. Received: mu={mu!r}")
        if not float(beta) > 0:
            raise ValueError(f"`beta` must be positive. Received: beta={beta}")
        self.beta = float(beta)
        self.mu = mu
        self.learnable_beta = bool(learnable_beta)

    def build(self, input_shape):
        validate_feature_map_shape(input_shape, "PartMask")
        if self.learnable_beta:
            self.beta_weight = self.add_weight(
                name="beta",
                shape=(input_shape[-1],),
                initializer=keras.initializers.Constant(self.beta),
                constraint=keras.constraints.NonNeg(),
                trainable=True,
            )
        self.built = True

    def mask(self, inputs):
        """The ``[B, h, w, K]`` mask for ``inputs`` (float32)."""
        h, w = int(inputs.shape[1]), int(inputs.shape[2])
        mu_i, mu_j = part_locations(inputs, self.mu)
        beta = tf.cast(self.beta_weight, tf.float32) if self.learnable_beta else self.beta
        mask = part_masks(mu_i, mu_j, h, w, beta)
        if not self.learnable_beta:
            mask = tf.stop_gradient(mask)
        return mask

    def call(self, inputs):
        return inputs * tf.cast(self.mask(inputs), inputs.dtype)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self):
        config = super().get_config()
        config.update(
            {"beta": self.beta, "mu": self.mu, "learnable_beta": self.learnable_beta}
        )
        return config
