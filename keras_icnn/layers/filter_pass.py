"""The interpretable conv layer's training pass as TF functions (ICNN §3, eq. 5): the
target-class statistics, the filter loss and its gradient in the form the layer's backward
pass takes, the part mask, compiled by XLA as one function per layer; and the explainer's
gradient mix (a filter loss carrying a set fraction of the task gradient)."""
import tensorflow as tf

from keras_icnn import losses as losses_lib
from keras_icnn.layers.part_mask import part_locations, part_masks
from keras_icnn.ops.peaks import peak_units


def mix_filter_gradient(maps, g, fraction):
    """Identity on ``maps`` whose backward pass adds the filter-loss gradient.

    Per filter ``f`` the added term is ``fraction * ||up_f|| * g_f / ||g_f||``
    (norms over batch and space), so the filter loss always carries a set
    fraction of the task gradient's magnitude: the explainer paper's rule for
    lambda_f. It scales with ``up``, so loss scaling and replica scaling apply.
    """

    @tf.custom_gradient
    def _identity(x):
        def grad_fn(up):
            up32 = tf.cast(up, tf.float32)
            up_norm = tf.sqrt(tf.reduce_sum(tf.square(up32), axis=[0, 1, 2]))
            g_norm = tf.sqrt(tf.reduce_sum(tf.square(g), axis=[0, 1, 2]))
            extra = fraction * (up_norm / (g_norm + 1e-12)) * g
            return tf.cast(up32 + extra, up.dtype)

        return tf.identity(x), grad_fn

    return _identity(maps)


def class_statistics(peak, labels, activation, seen, num_classes, decay):
    """One EMA step of the per-class mean peak of every filter.

    Args:
        peak: float32 ``[B, K]`` spatial maximum of each image's maps.
        labels: int32 ``[B]``.
        activation: float32 ``[C, K]`` running means; seen: float32 ``[C]``,
            1 where the class has been seen.
        num_classes: C; decay: EMA decay.

    Returns:
        ``(activation, seen)`` after the step: classes present in the batch move
        to ``decay * old + (1 - decay) * batch mean`` (the batch mean on first sight),
        the others keep their values.
    """
    onehot = tf.one_hot(labels, num_classes, dtype=tf.float32)  # [B, C]
    counts = tf.reduce_sum(onehot, axis=0)  # [C]
    means = tf.matmul(onehot, peak, transpose_a=True) / tf.maximum(counts, 1.0)[:, None]
    ema = decay * activation + (1.0 - decay) * means
    present = (counts > 0)[:, None]
    new = tf.where(present, tf.where(seen[:, None] > 0, ema, means), activation)
    return new, tf.maximum(seen, tf.cast(counts > 0, tf.float32))


def training_pass(x, labels, activation, seen, num_classes, decay, positive_class,
                   gradient, form, beta, mu):
    """Everything a training step of one layer computes from its maps ``x`` [B,h,w,K].

    Returns ``(value [K], masked [B,h,w,K], loss_grad, mask_mu, activation, seen, finite,
    mean_peak)``: the filter loss, the masked maps (as :class:`PartMask`), the filter
    loss's gradient in the form :func:`training_gradient` takes (exact: ``(g,)``;
    approximate: eq. (5)'s ``(coeff, positive, mu_i, mu_j)``, so that no ``[B,h,w,K]``
    gradient is written in the forward pass), the mask's part locations ``(mu_i, mu_j)``,
    the target-class statistics after this batch (``num_classes`` None: single category,
    targets ``positive_class``, no statistics), whether the maps are finite, and the mean
    spatial peak (the "paper" schedule). Compiled by XLA as one function
    (:data:`fused_training_pass`): without XLA on the whole step, these are several dozen
    small ops per layer, a visible share of a step on small maps (issue 17).
    """
    x32 = tf.cast(x, tf.float32)
    h, w, k = int(x.shape[1]), int(x.shape[2]), int(x.shape[3])
    # Every peak below is this one (XLA merges the identical computations).
    peak = peak_units(x32, via_max=True)[2]  # [B, K]
    old_activation, old_seen = activation, seen
    if num_classes is None:
        targets = tf.fill([k], positive_class)
    else:
        activation, seen = class_statistics(peak, labels, activation, seen, num_classes, decay)
        targets = tf.argmax(activation, axis=0, output_type=tf.int32)
    if gradient == "exact":
        value = losses_lib.mutual_information_loss(x32, beta=beta, fused=False)
        loss_grad = (tf.gradients(tf.reduce_sum(value), x32)[0],)  # filters are independent
    else:
        _, log_priors = losses_lib.constants(h, w, None, None, beta, None, build_templates=False)
        value, coeff, positive, mu_i, mu_j, _ = losses_lib.approximate_coefficients(
            x32, labels, targets, None, log_priors, form, via_max=True, beta=beta)
        loss_grad = (coeff, positive, mu_i, mu_j)
    mask_mu = part_locations(x32, mu, via_max=True)
    mask = part_masks(*mask_mu, h, w, beta)
    # A NaN or +Inf anywhere in map k makes every score of its image NaN or +-Inf, so
    # -MI_k is NaN: checking the K values checks the maps without another pass over them
    # (tested in test_interpretable_conv; XLA's max does not propagate NaN, the sums do).
    finite = tf.reduce_all(tf.math.is_finite(value))
    if num_classes is not None:
        # Non-finite maps never reach the running class statistics (issue 31): keep the old.
        activation = tf.where(finite, activation, old_activation)
        seen = tf.where(finite, seen, old_seen)
    return (value, x * tf.cast(mask, x.dtype), loss_grad, mask_mu, activation, seen, finite,
            tf.reduce_mean(peak))


fused_training_pass = tf.function(training_pass, jit_compile=True, autograph=False)


@tf.function(jit_compile=True, autograph=False)
def training_gradient(up_value, up_masked, loss_grad, mask_mu, beta):
    """d/dmaps of ``value . up_value + masked . up_masked`` (float32; the mask is a constant),
    from :func:`training_pass`'s ``loss_grad`` and ``mask_mu``: the mask and eq. (5)'s
    ``T^`` are rebuilt here, in the one pass that writes the gradient."""
    h, w = int(up_masked.shape[1]), int(up_masked.shape[2])
    if len(loss_grad) == 1:
        g = loss_grad[0]
    else:
        coeff, positive, mu_i, mu_j = loss_grad
        g = coeff[:, None, None, :] * losses_lib.target_templates(positive, mu_i, mu_j, h, w, beta)
    return (tf.cast(up_masked, tf.float32) * part_masks(*mask_mu, h, w, beta)
            + tf.reshape(tf.cast(up_value, tf.float32), [1, 1, 1, -1]) * g)
