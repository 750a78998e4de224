"""InterpretableConv: conv -> ReLU -> filter loss -> PartMask (ICNN §3)."""

import keras
import tensorflow as tf

from keras_icnn import losses as losses_lib
from keras_icnn.ops import templates as templates_lib
from keras_icnn import validation
from keras_icnn.layers import label_context
from keras_icnn.layers.filter_pass import (
    class_statistics, fused_training_pass, mix_filter_gradient, training_gradient)
from keras_icnn.layers.part_mask import MU_RULES, PartMask, validate_feature_map_shape

GRADIENT_MODES = ("approximate", "exact")
LOSS_SCHEDULES = ("constant", "paper", "inverse_epoch", "grad_ratio")


@keras.saving.register_keras_serializable(package="keras_icnn")
class InterpretableConv(keras.layers.Layer):
    """A conv layer whose filters learn to fire on one part of one category.

    conv -> ReLU -> mutual-information filter loss on the post-ReLU map ->
    :class:`PartMask`. During training the layer adds
    ``lambda * sum_f Loss_f`` to the model's losses (``add_loss``), where
    ``Loss_f = -MI(X; T)`` over the images of the batch. The labels come
    from ``labels=`` or, inside ``keras_icnn.models.InterpretableModel.fit``,
    automatically from the training step, so no custom ``train_step`` is needed.

    Each filter's target category is the argmax over classes of a running mean
    (EMA, ``target_decay``) of its spatial maximum on images of that class, a
    non-trainable weight updated only when ``training=True``.

    On one replica, a training call's work after the conv (filter loss, target
    statistics, finite check, part mask) is one XLA-compiled function and its
    gradient another, also in models compiled without XLA (``training_pass``;
    same values as the ordinary ops, tested). Several replicas, ``learnable_beta``,
    the ``grad_ratio`` schedule or ``fused=False`` take the ordinary path; inference
    always does.

    Args:
        filters: number of filters K.
        kernel_size: int or pair. Default 3.
        strides: int or pair. Default 1.
        padding: ``"same"`` (default) or ``"valid"``.
        num_classes: number of classes C (required unless ``single_category``).
        single_category: every filter belongs to ``positive_class``; all other
            images are negatives (ICNN's single-category classification).
        positive_class: the positive label in single-category mode (default 1).
        gradient: ``"approximate"`` (eq. 5 via ``tf.custom_gradient``, default)
            or ``"exact"`` (autodiff of the mini-batch MI).
        gradient_form: ``"printed"`` (eq. 5 with ``1 +``, default) or
            ``"appendix"``.
        mu: ``"argmax"`` or ``"centroid"`` part location for the mask.
        beta: template sharpness (default 4).
        learnable_beta: learn a per-filter mask ``beta`` (see ``PartMask``).
        loss_weight: the constant ``c`` of the schedule (default 0.05, chosen by
            ``benchmarks/tune_defaults.py --study=icnn`` on validation data).
        loss_schedule: ``"constant"`` (lambda = c), ``"paper"``
            (lambda = c * mean_x max_ij x_ij, online), ``"inverse_epoch"``
            (lambda = c / epoch) or ``"grad_ratio"`` (the filter-loss gradient
            of each filter is c times the norm of the task gradient on its map).
        target_decay: EMA decay of the per-class activation statistics (0.9).
        use_bias, kernel_initializer, bias_initializer, kernel_regularizer:
            as in ``keras.layers.Conv2D``.
        fused: run a training call's filter loss, statistics and mask as one XLA-compiled
            function where it can (default True); False: ordinary ops only (a device with no
            XLA compiler, e.g. tensorflow-metal).
        **kwargs: base layer arguments.

    Call arguments:
        inputs: ``[B, H, W, C_in]`` feature maps.
        labels: optional int ``[B]`` labels; defaults to the labels of the
            enclosing ``InterpretableModel`` training step.
        training: the filter loss and the target-class update run only when
            ``True`` and labels are available.

    Example:
        >>> inputs = keras.Input((32, 32, 3))
        >>> x = keras.layers.Conv2D(32, 3, strides=2, activation="relu")(inputs)
        >>> x = keras_icnn.layers.InterpretableConv(64, num_classes=6)(x)
        >>> outputs = keras.layers.Dense(6)(keras.layers.GlobalMaxPooling2D()(x))
        >>> model = keras_icnn.models.InterpretableModel(inputs, outputs)
        >>> model.compile("adam", keras.losses.SparseCategoricalCrossentropy(True))
        >>> model.fit(images, labels)  # labels reach the filter loss by themselves

    Reference:
        Zhang, Wu, Zhu. Interpretable Convolutional Neural Networks. CVPR 2018,
        eq. (1)-(5).
    """

    def __init__(self, filters, kernel_size=3, strides=1, padding="same", num_classes=None,
                 single_category=False, positive_class=1, gradient="approximate",
                 gradient_form="printed", mu="argmax", beta=templates_lib.DEFAULT_BETA,
                 learnable_beta=False, loss_weight=0.05, loss_schedule="constant",
                 target_decay=0.9, use_bias=True, kernel_initializer="glorot_uniform",
                 bias_initializer="zeros", kernel_regularizer=None, fused=True, **kwargs):
        super().__init__(**kwargs)
        self.filters = validation.positive_int(filters, "filters")
        self.kernel_size = self._pair(kernel_size, "kernel_size")
        self.strides = self._pair(strides, "strides")
        if padding not in ("same", "valid"):
            raise ValueError(
                f"`padding` must be 'same' or 'valid'. Received: padding={padding!r}"
            )
        self.padding = padding
        self.single_category = bool(single_category)
        if num_classes is not None:
            validation.positive_int(num_classes, "num_classes")
        if self.single_category:
            num_classes = max(int(num_classes or 2), int(positive_class) + 1)
        elif num_classes is None or int(num_classes) < 2:
            raise ValueError(
                "`num_classes` must be an integer >= 2 (or set "
                f"single_category=True). Received: num_classes={num_classes}"
            )
        self.num_classes = int(num_classes)
        self.positive_class = int(positive_class)
        if not 0 <= self.positive_class < self.num_classes:
            raise ValueError(
                f"`positive_class` must lie in [0, num_classes={self.num_classes}). "
                f"Received: positive_class={positive_class}"
            )
        if gradient not in GRADIENT_MODES:
            raise ValueError(
                f"`gradient` must be one of {GRADIENT_MODES}. Received: gradient={gradient!r}"
            )
        if gradient_form not in losses_lib.GRADIENT_FORMS:
            raise ValueError(
                f"`gradient_form` must be one of {losses_lib.GRADIENT_FORMS}. "
                f"Received: gradient_form={gradient_form!r}"
            )
        if mu not in MU_RULES:
            raise ValueError(f"`mu` must be one of {MU_RULES}. Received: mu={mu!r}")
        if loss_schedule not in LOSS_SCHEDULES:
            raise ValueError(
                f"`loss_schedule` must be one of {LOSS_SCHEDULES}. "
                f"Received: loss_schedule={loss_schedule!r}"
            )
        if gradient == "exact" and loss_schedule == "grad_ratio":
            raise ValueError(
                "loss_schedule='grad_ratio' shapes the approximate gradient; "
                "use gradient='approximate'. Received: gradient='exact'"
            )
        if not float(loss_weight) >= 0:
            raise ValueError(f"`loss_weight` must be >= 0. Received: loss_weight={loss_weight}")
        if not 0.0 <= float(target_decay) < 1.0:
            raise ValueError(
                f"`target_decay` must lie in [0, 1). Received: target_decay={target_decay}"
            )
        self.gradient = gradient
        self.gradient_form = gradient_form
        self.mu = mu
        self.beta = float(beta)
        self.learnable_beta = bool(learnable_beta)
        self.loss_weight = float(loss_weight)
        self.loss_schedule = loss_schedule
        self.target_decay = float(target_decay)
        self.fused = bool(fused)
        self.use_bias = bool(use_bias)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.bias_initializer = keras.initializers.get(bias_initializer)
        self.kernel_regularizer = keras.regularizers.get(kernel_regularizer)
        self.part_mask = PartMask(
            beta=self.beta, mu=self.mu, learnable_beta=self.learnable_beta,
            dtype=self.dtype_policy, name="part_mask",
        )

    @staticmethod
    def _pair(value, name):
        pair = (value, value) if isinstance(value, int) else tuple(value)
        if len(pair) != 2 or any(int(v) < 1 for v in pair):
            raise ValueError(
                f"`{name}` must be a positive int or a pair of them. Received: {name}={value}"
            )
        return tuple(int(v) for v in pair)

    def _output_hw(self, h, w):
        out = []
        for size, k, s in zip((h, w), self.kernel_size, self.strides):
            if size is None:
                out.append(None)
            elif self.padding == "same":
                out.append(-(-size // s))
            else:
                out.append((size - k) // s + 1)
        return tuple(out)

    def compute_output_shape(self, input_shape):
        h, w = self._output_hw(input_shape[1], input_shape[2])
        return (input_shape[0], h, w, self.filters)

    def build(self, input_shape):
        if len(input_shape) != 4:
            raise ValueError(
                f"{type(self).__name__} expects a 4D input [batch, height, width, "
                f"channels]. Received: input_shape={tuple(input_shape)}"
            )
        out_shape = self.compute_output_shape(input_shape)
        validate_feature_map_shape(out_shape, type(self).__name__)
        self.kernel = self.add_weight(
            name="kernel",
            shape=self.kernel_size + (input_shape[-1], self.filters),
            initializer=self.kernel_initializer,
            regularizer=self.kernel_regularizer,
        )
        if self.use_bias:
            self.bias = self.add_weight(
                name="bias", shape=(self.filters,), initializer=self.bias_initializer
            )
        self._build_filter_state(out_shape)

    def _build_filter_state(self, out_shape):
        """Target-class statistics and the mask of maps ``out_shape`` (the filter loss's
        templates are cached by map size in ``keras_icnn.losses``)."""
        # Running per-class mean of each filter's spatial max (target classes).
        self.class_activation = self.add_weight(
            name="class_activation", shape=(self.num_classes, self.filters),
            initializer="zeros", trainable=False, aggregation="mean", autocast=False,
        )
        self.class_seen = self.add_weight(
            name="class_seen", shape=(self.num_classes,),
            initializer="zeros", trainable=False, aggregation="mean", autocast=False,
        )
        self.epoch = self.add_weight(
            name="epoch", shape=(), initializer="ones", trainable=False,
            aggregation="only_first_replica", autocast=False,
        )
        self.part_mask.build(out_shape)
        self.built = True

    @property
    def target_classes(self):
        """int32 ``[K]``: each filter's target category."""
        if self.single_category:
            return tf.fill([self.filters], self.positive_class)
        return tf.argmax(
            tf.convert_to_tensor(self.class_activation), axis=0, output_type=tf.int32
        )

    def update_targets(self, maps, labels):
        """Update the per-class running peak statistics from ``maps`` [B,h,w,K] (training only)."""
        if self.single_category:
            return
        old_activation = tf.convert_to_tensor(self.class_activation)
        old_seen = tf.convert_to_tensor(self.class_seen)
        peaks = tf.cast(maps, tf.float32)
        finite = tf.reduce_all(tf.math.is_finite(peaks))
        activation, seen = class_statistics(
            tf.reduce_max(peaks, axis=[1, 2]), labels, old_activation, old_seen,
            self.num_classes, self.target_decay)
        # Non-finite maps never reach the running statistics (issue 31).
        self.class_activation.assign(tf.where(finite, activation, old_activation))
        self.class_seen.assign(tf.where(finite, seen, old_seen))

    def _checked_labels(self, labels, inputs):
        # Single-category: any label other than positive_class is a negative.
        return validation.labels_tf(
            labels, None if self.single_category else self.num_classes,
            batch_size=inputs.shape[0] if inputs.shape[0] is not None else tf.shape(inputs)[0],
            where=f"InterpretableConv {self.name!r}")

    def filter_loss_weight(self, maps=None, mean_peak=None):
        """lambda of the filter loss now: ``loss_weight`` (constant), ``/ epoch``
        (inverse_epoch), or ``x`` the maps' mean peak (paper: needs ``maps`` or ``mean_peak``)."""
        if self.loss_schedule == "paper":
            if mean_peak is None:
                mean_peak = tf.reduce_mean(tf.reduce_max(tf.cast(maps, tf.float32), axis=[1, 2]))
            return self.loss_weight * tf.stop_gradient(mean_peak)
        if self.loss_schedule == "inverse_epoch":
            return self.loss_weight / tf.maximum(tf.convert_to_tensor(self.epoch), 1.0)
        return tf.constant(self.loss_weight, tf.float32)

    def filter_loss_per_filter(self, maps, labels):
        """Unweighted ``-MI`` per filter [K] of ``maps``, with this layer's gradient mode."""
        if self.gradient == "exact":
            return losses_lib.mutual_information_loss(maps, beta=self.beta,
                                                      fused=None if self.fused else False)
        return losses_lib.approximate_mutual_information_loss(
            maps, labels, self.target_classes, beta=self.beta, form=self.gradient_form,
            check_labels=False, fused=None if self.fused else False)  # labels checked in call

    def conv_relu(self, inputs):
        """The layer's post-ReLU, pre-mask maps."""
        x = tf.nn.convolution(
            inputs, tf.cast(self.kernel, inputs.dtype), strides=self.strides,
            padding=self.padding.upper(),
        )
        if self.use_bias:  # BiasAdd (not AddV2): its gradient fuses into the conv's backprop
            x = tf.nn.bias_add(x, tf.cast(self.bias, x.dtype))
        return tf.nn.relu(x)

    def _filter_loss(self, maps, labels, scope):
        """Adds the weighted filter loss; returns maps (re-wired for grad_ratio)."""
        if self.loss_schedule == "grad_ratio":
            per_filter, g = losses_lib.approximate_terms(
                tf.stop_gradient(maps), labels, self.target_classes, beta=self.beta,
                form=self.gradient_form, fused=None if self.fused else False)
            maps = mix_filter_gradient(maps, g, self.loss_weight)
            per_filter = tf.stop_gradient(per_filter)
        else:
            per_filter = self.filter_loss_per_filter(maps, labels)
        total = tf.reduce_sum(per_filter)
        if self.loss_schedule != "grad_ratio":
            self.add_loss(self.filter_loss_weight(maps) * total)
        if scope is not None:
            scope.filter_losses.append(tf.stop_gradient(total))
            scope.finite_maps.append(
                (self.name, tf.reduce_all(tf.math.is_finite(tf.stop_gradient(maps)))))
        return maps

    def _fuses_training(self):
        """Whether a training call runs as one XLA function
        (:func:`~keras_icnn.layers.filter_pass.training_pass`): ``fused``, on one replica,
        unless ``learnable_beta`` (the mask then carries a gradient) or the ``grad_ratio``
        schedule (it re-wires the maps' gradient)."""
        return (self.fused and losses_lib.fused_by_default() and not self.learnable_beta
                and self.loss_schedule != "grad_ratio")

    def _fused_training(self, x, labels, scope):
        """The training call after the conv: filter loss, target statistics, finite check and
        part mask from one XLA function; returns the masked maps. Same values and gradients as
        ``update_targets`` + ``_filter_loss`` + ``part_mask``."""
        activation = tf.convert_to_tensor(self.class_activation)
        seen = tf.convert_to_tensor(self.class_seen)
        side = {}

        @tf.custom_gradient
        def _loss_and_mask(maps):
            value, masked, loss_grad, mask_mu, *rest = fused_training_pass(
                maps, labels, activation, seen,
                None if self.single_category else self.num_classes, self.target_decay,
                self.positive_class, self.gradient, self.gradient_form, self.beta, self.mu)
            side.update(zip(("activation", "seen", "finite", "mean_peak"), rest))

            def grad_fn(up_value, up_masked):
                if up_value is None:
                    up_value = tf.zeros_like(value)
                if up_masked is None:
                    up_masked = tf.zeros_like(masked)
                return tf.cast(training_gradient(up_value, up_masked, loss_grad, mask_mu,
                                                  self.beta), maps.dtype)

            return (value, masked), grad_fn

        per_filter, masked = _loss_and_mask(x)
        if not self.single_category:
            self.class_activation.assign(side["activation"])
            self.class_seen.assign(side["seen"])
        total = tf.reduce_sum(per_filter)
        self.add_loss(self.filter_loss_weight(mean_peak=side["mean_peak"]) * total)
        if scope is not None:
            scope.filter_losses.append(tf.stop_gradient(total))
            scope.finite_maps.append((self.name, side["finite"]))
        return masked

    def call(self, inputs, labels=None, training=None):
        x = self.conv_relu(inputs)
        scope = label_context.current_scope()
        if labels is None and scope is not None:
            labels = scope.labels
        if training and labels is not None:
            labels = self._checked_labels(labels, inputs)
            if self._fuses_training():
                return self._fused_training(x, labels, scope)
            self.update_targets(x, labels)
            x = self._filter_loss(x, labels, scope)
        return self.part_mask(x)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "filters": self.filters,
                "kernel_size": self.kernel_size,
                "strides": self.strides,
                "padding": self.padding,
                "num_classes": self.num_classes,
                "single_category": self.single_category,
                "positive_class": self.positive_class,
                "gradient": self.gradient,
                "gradient_form": self.gradient_form,
                "mu": self.mu,
                "beta": self.beta,
                "learnable_beta": self.learnable_beta,
                "loss_weight": self.loss_weight,
                "loss_schedule": self.loss_schedule,
                "target_decay": self.target_decay,
                "use_bias": self.use_bias,
                "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
                "bias_initializer": keras.initializers.serialize(self.bias_initializer),
                "kernel_regularizer": keras.regularizers.serialize(self.kernel_regularizer),
                "fused": self.fused,
            }
        )
        return config
