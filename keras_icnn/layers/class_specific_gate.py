"""ClassSpecificGate: a learnable class-by-filter gate matrix (CSG, Liang et al. 2020)."""

import keras
import numpy as np
import tensorflow as tf

from keras_icnn import validation
from keras_icnn.layers import label_context

SPARSITY_NORMS = ("l1", "l2", "smooth_l1")


def project_gate(gate):
    """CSG's projection: each filter's column divided by its max over classes, clipped to [0, 1].

    A column that is all zero (or negative) becomes all ones rather than NaN.
    """
    gate = tf.convert_to_tensor(gate)
    peak = tf.reduce_max(gate, axis=0, keepdims=True)
    safe = tf.where(peak > 0, peak, tf.ones_like(peak))
    projected = tf.where(peak > 0, gate / safe, tf.ones_like(gate))
    return tf.clip_by_value(projected, 0.0, 1.0)


@keras.saving.register_keras_serializable(package="keras_icnn")
class GateProjection(keras.constraints.Constraint):
    """Weight constraint applying :func:`project_gate` after every optimizer update."""

    def __call__(self, w):
        return project_gate(w)

    def get_config(self):
        return {}


def fixed_gate_matrix(num_classes, filters_per_class, shared_filters):
    """Fixed-gate mode (CSG §4.3): class c owns ``filters_per_class`` filters, the rest shared.

    Returns:
        float32 [C, C * m1 + m2]: ones where a class may use a filter.
    """
    c, m1, m2 = int(num_classes), int(filters_per_class), int(shared_filters)
    gate = np.zeros((c, c * m1 + m2), np.float32)
    for k in range(c):  # C is small; the layer maths stays vectorised
        gate[k, k * m1:(k + 1) * m1] = 1.0
    gate[:, c * m1:] = 1.0
    return gate


@keras.saving.register_keras_serializable(package="keras_icnn")
class ClassSpecificGate(keras.layers.Layer):
    """Gates feature maps by the row of a learnable matrix G [C, K] indexed by the label.

    In the CSG path (``labels`` given) the output is ``features * G[y]``
    broadcast over height and width; in the STD path and at inference
    (``labels=None``) the layer is the identity. G starts at ones and is
    projected after every update (``GateProjection``: each column divided by
    its max, clipped to [0, 1]). :meth:`sparsity_loss` is
    ``psi(relu(||G||_1 - g))`` with ``g = density * C * K``.

    Args:
        num_classes: C.
        density: target L1-density; ``g = density * C * K`` (must be >= 1/C so
            that ``g >= K``). Default 0.2.
        sparsity: ``"l1"``, ``"l2"`` or ``"smooth_l1"`` norm psi.
        fixed: fixed-gate mode: G is constant, each class owns
            ``filters_per_class`` filters and ``shared_filters`` are shared
            (needs ``K == C * filters_per_class + shared_filters``).
        filters_per_class, shared_filters: m1 and m2 of fixed mode.
        **kwargs: base layer arguments.

    Call arguments:
        inputs: [B, h, w, K] features.
        labels: int [B] labels for the CSG path, or ``None`` for the STD path
            (inside ``label_scope(y, use_gate=True)``, as ``CSGModel``'s CSG
            step opens, the scope's labels are used).

    Example:
        >>> gate = keras_icnn.layers.ClassSpecificGate(num_classes=10)
        >>> gated = gate(features, labels=y)     # CSG path
        >>> plain = gate(features)               # STD path: identity

    Reference:
        Liang et al. Training Interpretable Convolutional Neural Networks by
        Differentiating Class-specific Filters. ECCV 2020, §3, Algorithm 1.
    """

    def __init__(self, num_classes, density=0.2, sparsity="l1", fixed=False,
                 filters_per_class=None, shared_filters=0, **kwargs):
        super().__init__(**kwargs)
        if validation.positive_int(num_classes, "num_classes") < 2:
            raise ValueError(f"`num_classes` must be >= 2. Received: num_classes={num_classes}")
        if not 1.0 / int(num_classes) <= float(density) <= 1.0:
            raise ValueError(
                f"`density` must lie in [1/num_classes, 1] = [{1.0 / int(num_classes):.4f}, 1] "
                f"so that g >= K. Received: density={density}")
        if sparsity not in SPARSITY_NORMS:
            raise ValueError(
                f"`sparsity` must be one of {SPARSITY_NORMS}. Received: sparsity={sparsity!r}")
        if fixed and (filters_per_class is None or int(filters_per_class) < 1):
            raise ValueError("Fixed-gate mode needs `filters_per_class` >= 1. "
                             f"Received: filters_per_class={filters_per_class}")
        self.num_classes = int(num_classes)
        self.density = float(density)
        self.sparsity = sparsity
        self.fixed = bool(fixed)
        self.filters_per_class = None if filters_per_class is None else int(filters_per_class)
        self.shared_filters = int(shared_filters)

    def build(self, input_shape):
        if len(input_shape) != 4:
            raise ValueError("ClassSpecificGate expects a 4D input [batch, height, width, "
                             f"filters]. Received: input_shape={tuple(input_shape)}")
        k = int(input_shape[-1])
        if self.fixed:
            expected = self.num_classes * self.filters_per_class + self.shared_filters
            if k != expected:
                raise ValueError(
                    f"Fixed-gate mode needs K = num_classes * filters_per_class + shared_filters "
                    f"= {expected} filters. Received: K={k}")
            init = keras.initializers.Constant(
                fixed_gate_matrix(self.num_classes, self.filters_per_class, self.shared_filters))
        else:
            init = "ones"
        self.gate = self.add_weight(
            name="gate", shape=(self.num_classes, k), initializer=init,
            constraint=None if self.fixed else GateProjection(), trainable=not self.fixed,
            autocast=False)
        self.built = True

    @property
    def target_l1(self):
        """The sparsity bound g = density * C * K."""
        return self.density * self.num_classes * int(self.gate.shape[-1])

    def project(self):
        """Apply the projection to G now (the constraint does it after every update)."""
        self.gate.assign(project_gate(self.gate))

    def sparsity_loss(self):
        """``psi(relu(||G||_1 - g))`` (float32 scalar)."""
        excess = tf.nn.relu(tf.reduce_sum(tf.abs(tf.convert_to_tensor(self.gate)))
                            - self.target_l1)
        if self.sparsity == "l2":
            return tf.square(excess)
        if self.sparsity == "smooth_l1":
            return tf.where(excess < 1.0, 0.5 * tf.square(excess), excess - 0.5)
        return excess

    def l1_density(self):
        """``||G||_1 / (C * K)``."""
        return tf.reduce_mean(tf.abs(tf.convert_to_tensor(self.gate)))

    def call(self, inputs, labels=None):
        if labels is None:
            scope = label_context.current_scope()
            if scope is not None and scope.use_gate:
                labels = scope.labels
        if labels is None:
            return inputs
        labels = validation.labels_tf(
            labels, self.num_classes,
            batch_size=inputs.shape[0] if inputs.shape[0] is not None else tf.shape(inputs)[0],
            where=f"ClassSpecificGate {self.name!r}")
        rows = tf.gather(tf.convert_to_tensor(self.gate), labels)  # [B, K]
        return inputs * tf.cast(rows, inputs.dtype)[:, None, None, :]

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self):
        config = super().get_config()
        config.update({"num_classes": self.num_classes, "density": self.density,
                       "sparsity": self.sparsity, "fixed": self.fixed,
                       "filters_per_class": self.filters_per_class,
                       "shared_filters": self.shared_filters})
        return config
