"""The mutual-information filter loss of Interpretable CNNs (ICNN eq. 1-5).

For one filter, ``Loss_f = -MI(X; T) = -sum_T p(T) sum_x p(x|T) log(p(x|T)/p(x))``
with ``p(x|T) = exp(s_T(x)) / Z_T``. The mini-batch estimator used here takes
``p(x|T)`` as a softmax of the fitness scores ``s_T(x)`` over the images of
the batch (per filter and template). Everything is computed in the log
domain: ``log p(x|T) = s - logsumexp_batch(s)`` and
``log p(x) = logsumexp_T(log p(T) + log p(x|T))``; no raw score is ever
exponentiated.

Under a ``tf.distribute`` strategy the mini-batch is the **global** batch: the
per-replica ``logsumexp`` over images is gathered across replicas and the sum
over images is all-reduced, so the loss and its gradient do not depend on how
many replicas share the batch.

Two gradients:

* :func:`mutual_information_loss` — the exact value, differentiated by autodiff.
* :func:`approximate_mutual_information_loss` — the same value with the
  paper's approximate gradient (eq. 5) through ``tf.custom_gradient``. Only
  the target template ``T^`` contributes: ``T_mu^`` (``mu^`` = argmax of the
  map) when the image belongs to the filter's target class, else ``T-``::

      dLoss_f/dx_ij = -p(T^) p(x|T^) [1 + log p(x|T^) - log p(x)] T^_ij

  ``form="appendix"`` drops the ``1 +`` (the appendix derivation with
  ``Z_T`` held constant).

Both take ``x`` of shape ``[B, h, w, K]`` (post-ReLU, ``x >= 0``) and return
the per-filter loss, shape ``[K]``, in float32 whatever the input dtype.

Implementation: the fitness scores of all templates are one float32 matmul (SPEC §1), or, for
the paper's templates on maps of at least ``ops.pyramid.MIN_UNITS`` units under XLA, a
correlation with one L1 pyramid as box sums (``keras_icnn.ops.pyramid``, measured faster there); the
approximate gradient's target template is computed from the peak's coordinates rather than
gathered; on one replica the value and gradient are each one XLA-compiled function
(``fused=None``; ``fused=False`` for a device with no XLA compiler); inside XLA the peak is the first unit equal to the maximum
(``peak_units(via_max=True)``). Why each, with the measurements behind it:
``docs/internals.md`` ("The filter loss's implementation choices").
"""


import tensorflow as tf

from keras_icnn.ops import templates as templates_lib
from keras_icnn import _lazy, validation
from keras_icnn.ops.filter_loss import (  # noqa: F401  (public names of this module)
    GRADIENT_FORMS, approximate_coefficients, batch_logsumexp, batch_sum, check_feature_maps,
    check_form, constants, exact_value, mutual_information_terms, replica_context,
    standard_constants, target_template_indices, target_templates, template_scores)



@tf.function(jit_compile=True, autograph=False)
def _fused_exact(x, templates, log_priors, beta, tau):
    """Value [K] and ``d value_k / d x[..., k]`` in one XLA-compiled function."""
    value = exact_value(x, templates, log_priors, beta, tau)
    # Filter k's loss depends only on map k: the gradient of the sum holds every
    # filter's own gradient in its channel. (tf.gradients, not a tape: this runs
    # inside tf.custom_gradient, where tapes are paused.)
    return value, tf.gradients(tf.reduce_sum(value), x)[0]


def fused_by_default():
    """Whether ``fused=None`` fuses here: at most one replica shares the batch (the
    collectives of several stay ordinary ops). On a device with no XLA compiler pass
    ``fused=False`` (the layers' ``fused=False``)."""
    return replica_context() is None


def _use_fused(fused):
    """``fused`` resolved: None follows :func:`fused_by_default`; True needs a single replica."""
    if fused is None:
        return fused_by_default()
    if fused and replica_context() is not None:
        raise ValueError("fused=True needs a single replica: the filter loss of several "
                         "replicas gathers the batch across them. Use fused=None.")
    return bool(fused)


def _with_gradient(terms, x):
    """``terms(x)[0]`` whose gradient is ``upstream[k] * terms(x)[1][..., k]``.

    ``terms`` maps ``x`` to ``(value [K], g [B,h,w,K])``; it runs inside the
    ``tf.custom_gradient`` function, so no other gradient path reaches ``x``.
    """

    @tf.custom_gradient
    def _value(maps):
        value, g = terms(maps)

        def grad_fn(upstream):
            # Every replica holds the same global value; like the exact form's
            # collectives, the gradient reaching each replica's maps is the sum of
            # the replicas' upstream gradients (Keras scales each copy by 1/R).
            ctx = replica_context()
            if ctx is not None:
                upstream = ctx.all_reduce(tf.distribute.ReduceOp.SUM, upstream)
            return tf.reshape(tf.cast(upstream, g.dtype), [1, 1, 1, -1]) * g

        return value, grad_fn

    return _value(x)


def mutual_information_loss(
    x, templates=None, log_priors=None, beta=templates_lib.DEFAULT_BETA, tau=None,
    fused=None,
):
    """Exact mini-batch ``-MI(X; T)`` per filter.

    Args:
        x: feature maps ``[B, h, w, K]``, ``x >= 0`` (any float dtype).
        templates: optional ``[h*w, h*w+1]`` template matrix; built from
            ``beta`` and ``tau`` when omitted.
        log_priors: optional ``[h*w+1]`` log template priors; uniform when
            omitted.
        beta, tau: template parameters used when ``templates`` is omitted.
        fused: compute the value and its gradient in one XLA-compiled
            function (the gradient is then evaluated with the value, even when
            nobody asks for it). ``None`` (default): fused unless several
            replicas share the batch, where autodiff runs through the
            collectives instead.

    Returns:
        float32 ``[K]``: ``-MI`` of each filter. A batch of one gives 0.

    Example:
        >>> x = tf.random.uniform([8, 6, 6, 16])
        >>> mutual_information_loss(x).shape
        TensorShape([16])
    """
    x, h, w = check_feature_maps(x)
    # The paper's family (no templates given) may skip the dense table (ops/pyramid.py).
    family = (None, None) if templates is not None else (
        float(beta), None if tau is None else float(tau))
    templates, log_priors = constants(h, w, templates, log_priors, beta, tau, x.dtype,
                                      build_templates=False)
    if not _use_fused(fused):
        return exact_value(x, templates, log_priors, *family)
    return _with_gradient(lambda maps: _fused_exact(maps, templates, log_priors, *family), x)


def _approximate_terms(x, labels, target_classes, templates, log_priors, form, beta, tau,
                       via_max=False):
    """``(-MI [K], eq. (5)'s dLoss_f/dx [B,h,w,K])``. ``beta`` None: ``T^`` is gathered from
    ``templates`` (any template family), else computed (the paper's family)."""
    h, w = int(x.shape[1]), int(x.shape[2])
    value, coeff, positive, mu_i, mu_j, idx = approximate_coefficients(
        x, labels, target_classes, templates, log_priors, form, via_max, beta, tau)
    if beta is None:
        # T^ gathered for every image and filter: [B, h*w, K], the size of x itself.
        t_hat = tf.reshape(tf.transpose(tf.gather(templates, idx, axis=1), [1, 0, 2]),
                           tf.shape(x))
    else:
        t_hat = target_templates(positive, mu_i, mu_j, h, w, beta, tau, x.dtype)
    return value, coeff[:, None, None, :] * t_hat


@tf.function(jit_compile=True, autograph=False)
def _fused_approximate(x, labels, target_classes, templates, log_priors, form, beta, tau):
    return _approximate_terms(x, labels, target_classes, templates, log_priors, form, beta, tau,
                              via_max=True)


def approximate_terms(x, labels, target_classes, templates=None, log_priors=None,
                      beta=templates_lib.DEFAULT_BETA, tau=None, form="printed", fused=None):
    """The filter loss ``-MI`` [K] and the paper's approximate gradient (eq. 5) [B,h,w,K].

    Arguments as in :func:`approximate_mutual_information_loss` (labels unchecked).
    Nothing here is differentiated: the gradient is a tensor of the forward pass.
    """
    check_form(form)
    x, h, w = check_feature_maps(x)
    custom = templates is not None
    templates, log_priors = constants(h, w, templates, log_priors, beta, tau, x.dtype,
                                      build_templates=False)
    labels = tf.convert_to_tensor(labels)
    target_classes = tf.convert_to_tensor(target_classes)
    args = (x, labels, target_classes, templates, log_priors, form,
            None if custom else float(beta), None if tau is None else float(tau))
    if _use_fused(fused):
        return _fused_approximate(*args)
    return _approximate_terms(*args)


def approximate_mutual_information_loss(
    x,
    labels,
    target_classes,
    templates=None,
    log_priors=None,
    beta=templates_lib.DEFAULT_BETA,
    tau=None,
    form="printed",
    num_classes=None,
    check_labels=True,
    fused=None,
):
    """``-MI(X; T)`` per filter whose gradient is the paper's approximation.

    The value equals :func:`mutual_information_loss`; the gradient with respect
    to ``x`` is ``upstream[k] * g[..., k]`` with ``g`` from eq. (5). Labels are
    where the class enters: images of a filter's target class are pulled
    towards ``T_mu^``, all others towards the negative template.

    Args:
        x: feature maps ``[B, h, w, K]``, ``x >= 0``.
        labels: int ``[B]`` class of each image.
        target_classes: int ``[K]`` target class of each filter.
        templates, log_priors, beta, tau: as in :func:`mutual_information_loss`.
            With ``templates`` given, ``T^`` is taken from its columns; without,
            it is computed from ``beta`` and ``tau`` (:func:`target_templates`).
        form: ``"printed"`` (eq. 5 as printed, with ``1 +``) or
            ``"appendix"`` (without it).
        num_classes: when given, labels must lie in ``[0, num_classes)``
            (otherwise only ``>= 0``); labels must be whole numbers, one per
            image, whatever their dtype.
        check_labels: add those checks (callers that checked already pass False).
        fused: as in :func:`mutual_information_loss`.

    Returns:
        float32 ``[K]``.

    Example:
        >>> x = tf.random.uniform([8, 7, 7, 16])
        >>> loss = approximate_mutual_information_loss(x, labels=tf.range(8) % 2,
        ...                                            target_classes=tf.range(16) % 2)
    """
    check_form(form)
    x, h, w = check_feature_maps(x)
    if check_labels:
        labels = validation.labels_tf(
            labels, num_classes,
            batch_size=x.shape[0] if x.shape[0] is not None else tf.shape(x)[0],
            where="approximate_mutual_information_loss")
    classes_shape = tf.convert_to_tensor(target_classes).shape
    if classes_shape.rank != 1 or (classes_shape[0] is not None
                                   and x.shape[-1] is not None
                                   and classes_shape[0] != x.shape[-1]):
        raise ValueError(f"`target_classes` must give one class per filter: shape "
                         f"[{x.shape[-1]}] for maps of {x.shape[-1]} filters. Received: "
                         f"shape={tuple(classes_shape)}")
    return _with_gradient(
        lambda maps: approximate_terms(maps, labels, target_classes, templates, log_priors,
                                       beta, tau, form, fused), x)


def filter_statistics(x, beta=templates_lib.DEFAULT_BETA, tau=None):
    """What the filter loss sees on a batch of maps: is there anything to separate?

    ``p(x|T)`` is a softmax of the fitness scores ``s_T(x)`` over the images of the
    batch: when the scores of a template differ across images by much less than 1, it
    is nearly uniform, ``MI(X; T)`` is near 0, and the loss has little to say. These
    statistics tell a weak loss from a weak weight (issue 26).

    Args:
        x: feature maps ``[B, h, w, K]`` (post-ReLU).
        beta, tau: template parameters.

    Returns:
        dict of float32 scalars: ``neg_mi`` (``-MI`` summed over filters, the exact
        value), ``score_spread`` (std over the batch of ``s_T(x)``, mean over filters
        and templates), ``mean_peak`` (mean over images and filters of ``max_ij x``) and
        ``dead`` (fraction of filters with no positive unit in the batch).

    Example:
        >>> stats = filter_statistics(tf.random.uniform([16, 8, 8, 4]))
        >>> sorted(stats)
        ['dead', 'mean_peak', 'neg_mi', 'score_spread']
    """
    x, h, w = check_feature_maps(x)
    x = tf.cast(tf.stop_gradient(x), tf.float32)
    _, log_priors = constants(h, w, None, None, beta, tau, build_templates=False)
    scores = template_scores(x, None, float(beta), tau)  # [B, K, T]
    neg_mi = mutual_information_terms(scores, log_priors)[2]
    peaks = tf.reduce_max(x, axis=[1, 2])  # [B, K]
    return {"neg_mi": tf.reduce_sum(neg_mi),
            "score_spread": tf.reduce_mean(tf.math.reduce_std(scores, axis=0)),
            "mean_peak": tf.reduce_mean(peaks),
            "dead": tf.reduce_mean(tf.cast(tf.reduce_max(peaks, axis=0) <= 0, tf.float32))}


def unit_mean_maps(x):
    """``x`` rescaled per filter to a mean activation of 1 over the global batch.

    ``x_f * h * w * B / sum_{b,ij} x_f`` (a filter with no activation stays 0), with the
    normaliser differentiated: a loss of the result ignores the filter's overall scale,
    and its gradient has no component along ``x_f`` itself. The explainer's filter losses
    can see their maps this way (``ExplainerDistiller(loss_scale="unit_mean")``): its
    reconstruction goes through a norm-layer, so only the filter loss acts on the maps'
    scale, and on raw maps eq. (5)'s pull towards the negative template shrinks them until
    the templates no longer tell the images apart (issue 26).

    Args:
        x: ``[B, h, w, K]`` non-negative maps.

    Returns:
        float32 ``[B, h, w, K]``.

    Example:
        >>> y = unit_mean_maps(3.0 * tf.ones([2, 4, 4, 1]))
        >>> float(tf.reduce_mean(y))
        1.0
    """
    x = tf.cast(x, tf.float32)
    units = tf.cast(tf.shape(x)[0] * tf.shape(x)[1] * tf.shape(x)[2], tf.float32)
    total = tf.reduce_sum(x, axis=[1, 2])  # [B, K]
    ctx = replica_context()
    if ctx is not None:
        units = ctx.all_reduce(tf.distribute.ReduceOp.SUM, units)
    mean = batch_sum(total) / units  # [K]
    return tf.math.divide_no_nan(x, mean)


_lazy.retired_switches(__name__, {
    "FUSE": "the layers' fused=False (InterpretableConv(..., fused=False)) or the loss "
            "functions' fused=False"})
