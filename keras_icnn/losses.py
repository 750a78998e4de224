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

Implementation: the fitness scores of all templates are one float32 matmul (SPEC §1); the
approximate gradient's target template is computed from the peak's coordinates rather than
gathered; on one replica the value and gradient are each one XLA-compiled function
(``fused=None``; ``FUSE`` below); inside XLA the peak is the first unit equal to the maximum
(``peak_units(via_max=True)``). Why each, with the measurements behind it:
``docs/internals.md`` ("The filter loss's implementation choices").
"""

import functools

import tensorflow as tf

from keras_icnn import templates as templates_lib
from keras_icnn import validation
from keras_icnn.ops.peaks import peak_units

GRADIENT_FORMS = ("printed", "appendix")

FUSE = True
"""Default of ``fused=None``: compute the loss as one XLA-compiled function on one replica.
Set ``keras_icnn.losses.FUSE = False`` before building the training step on a platform whose
devices have no XLA compiler (e.g. a TensorFlow PluggableDevice such as tensorflow-metal)."""


@functools.lru_cache(maxsize=64)
def standard_constants(h, w, beta=templates_lib.DEFAULT_BETA, tau=None):
    """The paper's template matrix ``[hw, hw+1]`` and uniform log priors ``[hw+1]`` (numpy,
    float32), built once per map size and template parameters."""
    templates = templates_lib.template_matrix(h, w, beta=beta, tau=tau)
    log_priors = templates_lib.uniform_log_priors(h, w)
    templates.setflags(write=False)
    log_priors.setflags(write=False)
    return templates, log_priors


def _constants(h, w, templates, log_priors, beta, tau, dtype=tf.float32):
    if templates is None or log_priors is None:
        standard_t, standard_p = standard_constants(h, w, float(beta), tau)
        templates = standard_t if templates is None else templates
        log_priors = standard_p if log_priors is None else log_priors
    templates = tf.cast(tf.convert_to_tensor(templates), dtype)
    log_priors = tf.cast(tf.convert_to_tensor(log_priors), dtype)
    return templates, log_priors


def _check_form(form):
    if form not in GRADIENT_FORMS:
        raise ValueError(f"`form` must be one of {GRADIENT_FORMS}. Received: form={form!r}")


def _check_feature_maps(x):
    x = tf.convert_to_tensor(x)
    if x.shape.rank != 4:
        raise ValueError(
            "The filter loss expects feature maps of rank 4 "
            f"[batch, height, width, filters]. Received: shape={x.shape}"
        )
    h, w = x.shape[1], x.shape[2]
    if h is None or w is None:
        raise ValueError(
            "The filter loss needs a static feature-map height and width. "
            f"Received: shape={x.shape}"
        )
    if h < 2 or w < 2:
        raise ValueError(
            "The filter loss needs feature maps of at least 2x2. "
            f"Received: shape={x.shape}"
        )
    # float32 whatever the compute dtype (mixed precision); float64 stays float64.
    dtype = tf.float64 if x.dtype == tf.float64 else tf.float32
    return tf.cast(x, dtype), int(h), int(w)


def template_scores(x, templates):
    """Fitness ``s_T(x) = sum_ij x_ij T_ij`` of every image, filter and template.

    Args:
        x: float32 ``[B, h, w, K]``.
        templates: float32 ``[h*w, T]`` (see ``templates.template_matrix``).

    Returns:
        float32 ``[B, K, T]``, computed as one matmul.
    """
    x, templates = tf.convert_to_tensor(x), tf.convert_to_tensor(templates)
    if x.shape.rank != 4:
        raise ValueError("`x` must be feature maps of rank 4 [batch, height, width, filters]. "
                         f"Received: x of shape {x.shape}")
    rows = (x.shape[1] * x.shape[2]) if None not in (x.shape[1], x.shape[2]) else None
    if templates.shape.rank != 2 or (rows is not None and templates.shape[0] not in (None, rows)):
        raise ValueError(f"`templates` must be a [h*w, T] matrix for {x.shape[1]}x{x.shape[2]} "
                         f"maps. Received: templates of shape {templates.shape}")
    shape = tf.shape(x)
    flat = tf.reshape(x, [shape[0], shape[1] * shape[2], shape[3]])
    return tf.einsum("bpk,pt->bkt", flat, templates)


def _replica_context():
    """The replica context when more than one replica shares the batch, else None."""
    ctx = tf.distribute.get_replica_context()
    if ctx is None or ctx.num_replicas_in_sync == 1:
        return None
    return ctx


def batch_logsumexp(scores):
    """``logsumexp`` over the images of the **global** batch, ``[1, ...]``.

    Inside a ``tf.distribute`` replica context with several replicas, each
    replica's ``logsumexp`` is gathered (``all_gather``, differentiable) and
    combined, so ``p(x|T)`` is normalised over every image of the step, not
    only over the replica's share.
    """
    local = tf.reduce_logsumexp(scores, axis=0, keepdims=True)
    ctx = _replica_context()
    if ctx is None:
        return local
    return tf.reduce_logsumexp(ctx.all_gather(local, axis=0), axis=0, keepdims=True)


def batch_sum(values):
    """Sum over the images of the global batch of per-image ``values`` (axis 0)."""
    local = tf.reduce_sum(values, axis=0)
    ctx = _replica_context()
    return local if ctx is None else ctx.all_reduce(tf.distribute.ReduceOp.SUM, local)


def mutual_information_terms(scores, log_priors):
    """``log p(x|T)`` [B,K,T], ``log p(x)`` [B,K] and ``-MI`` per filter [K] from fitness scores.

    ``p(x|T)`` is a softmax over the images of the global batch (all replicas
    under a ``tf.distribute`` strategy; see :func:`batch_logsumexp`). Two
    exponentials of the score table in all: the batch ``logsumexp``, and
    ``e = exp(log p(x|T) + log p(T) - m)`` with ``m`` the max over templates,
    which gives both ``log p(x) = m + log sum_T e`` and
    ``-MI = -sum_x exp(m) sum_T e (log p(x|T) - log p(x))``. ``m <= 0``, so
    ``exp(m)`` cannot overflow; it underflows only for an image whose every
    ``p(T) p(x|T)`` is below 1e-38, whose terms are then that small. ``m``
    cancels out of both, so it carries no gradient.
    """
    log_p_x_given_t = scores - batch_logsumexp(scores)
    joint = log_p_x_given_t + log_priors  # log p(T) p(x|T) <= 0
    m = tf.stop_gradient(tf.reduce_max(joint, axis=-1, keepdims=True))
    e = tf.exp(joint - m)  # in (0, 1], 1 at the max
    log_p_x = m[..., 0] + tf.math.log(tf.reduce_sum(e, axis=-1))
    inner = tf.reduce_sum(e * (log_p_x_given_t - log_p_x[..., None]), axis=-1)  # [B, K]
    return log_p_x_given_t, log_p_x, -batch_sum(tf.exp(m[..., 0]) * inner)


def _exact_value(x, templates, log_priors):
    return mutual_information_terms(template_scores(x, templates), log_priors)[2]


@tf.function(jit_compile=True, autograph=False)
def _fused_exact(x, templates, log_priors):
    """Value [K] and ``d value_k / d x[..., k]`` in one XLA-compiled function."""
    value = _exact_value(x, templates, log_priors)
    # Filter k's loss depends only on map k: the gradient of the sum holds every
    # filter's own gradient in its channel. (tf.gradients, not a tape: this runs
    # inside tf.custom_gradient, where tapes are paused.)
    return value, tf.gradients(tf.reduce_sum(value), x)[0]


def fused_by_default():
    """Whether ``fused=None`` fuses here: ``FUSE`` is set and at most one replica shares the
    batch (the collectives of several stay ordinary ops)."""
    return FUSE and _replica_context() is None


def _use_fused(fused):
    """``fused`` resolved: None follows :func:`fused_by_default`; True needs a single replica."""
    if fused is None:
        return fused_by_default()
    if fused and _replica_context() is not None:
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
            ctx = _replica_context()
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
            collectives instead, or ``keras_icnn.losses.FUSE`` is False.

    Returns:
        float32 ``[K]``: ``-MI`` of each filter. A batch of one gives 0.

    Example:
        >>> x = tf.random.uniform([8, 6, 6, 16])
        >>> mutual_information_loss(x).shape
        TensorShape([16])
    """
    x, h, w = _check_feature_maps(x)
    templates, log_priors = _constants(h, w, templates, log_priors, beta, tau, x.dtype)
    if not _use_fused(fused):
        return _exact_value(x, templates, log_priors)
    return _with_gradient(lambda maps: _fused_exact(maps, templates, log_priors), x)


def _peak_targets(x, labels, target_classes, via_max=False):
    """``(positive [B,K] bool, mu_i, mu_j, idx)``: whether image b is of filter k's class, its
    peak row and column (int32 [B, K]) and the column of its target template."""
    shape = tf.shape(x)
    hw = shape[1] * shape[2]
    i, j, _ = peak_units(x, via_max)
    labels = tf.cast(tf.reshape(labels, [-1]), tf.int32)
    target_classes = tf.cast(target_classes, tf.int32)
    positive = tf.equal(labels[:, None], target_classes[None, :])
    idx = tf.where(positive, i * shape[2] + j, tf.fill(tf.shape(i), hw))
    return positive, i, j, idx


def target_template_indices(x, labels, target_classes):
    """Column of the target template ``T^`` for every image and filter.

    Args:
        x: ``[B, h, w, K]`` feature maps.
        labels: int ``[B]`` image labels.
        target_classes: int ``[K]`` target class of each filter.

    Returns:
        int32 ``[B, K]``: the flattened argmax location ``mu^`` where the image
        belongs to the filter's class, else ``h*w`` (the negative template).
    """
    return _peak_targets(x, labels, target_classes)[3]


def target_templates(positive, mu_i, mu_j, h, w, beta=templates_lib.DEFAULT_BETA, tau=None,
                     dtype=tf.float32):
    """The paper's target template ``T^`` of every image and filter, ``[B, h, w, K]``.

    ``tau * max(1 - beta * ||(i, j) - mu^||_1 / n, -1)`` (``n = max(h, w)``)
    where ``positive``, else ``-tau``: column ``idx`` of
    ``templates.template_matrix(h, w, beta, tau)``, computed from the peak's
    coordinates instead of gathered, so it is made in ``x``'s layout.

    Args:
        positive: bool ``[B, K]``; mu_i, mu_j: int32 ``[B, K]`` peak row and column.
        h, w: map size; beta, tau: template parameters (``tau`` default ``0.5 / n**2``).
    """
    h, w = validation.positive_int(h, "h"), validation.positive_int(w, "w")
    if tf.convert_to_tensor(positive).shape.rank != 2:
        raise ValueError("`positive` must be a bool [batch, filters] matrix. Received: positive "
                         f"of shape {tf.convert_to_tensor(positive).shape}")
    n = float(max(h, w))
    tau = templates_lib.default_tau(h, w) if tau is None else float(tau)
    ii = tf.range(h, dtype=tf.int32)[None, :, None, None]
    jj = tf.range(w, dtype=tf.int32)[None, None, :, None]
    dist = tf.abs(ii - mu_i[:, None, None, :]) + tf.abs(jj - mu_j[:, None, None, :])
    shaped = tau * tf.maximum(1.0 - (float(beta) / n) * tf.cast(dist, dtype), -1.0)
    return tf.where(positive[:, None, None, :], shaped, tf.constant(-tau, dtype))


def approximate_coefficients(x, labels, target_classes, templates, log_priors, form="printed",
                             via_max=False):
    """The filter loss and eq. (5) in factored form: ``dLoss_f/dx = coeff * T^``.

    Args:
        x: float ``[B, h, w, K]``; labels: int ``[B]``; target_classes: int ``[K]``.
        templates, log_priors: the ``[h*w, T]`` template matrix and ``[T]`` log priors.
        form: ``"printed"`` or ``"appendix"``; via_max: as in ``peak_units``.

    Returns:
        ``(value [K], coeff [B, K], positive, mu_i, mu_j, idx)``: ``-MI`` per filter,
        ``-p(T^) p(x|T^) [1 + log p(x|T^) - log p(x)]`` (``form="appendix"``: without
        ``1 +``), and the target template of every image and filter as in
        :func:`_peak_targets`, so that ``T^`` is ``templates[:, idx]`` (or, for the paper's
        family, :func:`target_templates` of ``positive, mu_i, mu_j``).
    """
    log_p_x_given_t, log_p_x, value = mutual_information_terms(
        template_scores(x, templates), log_priors)
    positive, mu_i, mu_j, idx = _peak_targets(x, labels, target_classes, via_max)
    log_p_hat = tf.gather(log_p_x_given_t, idx, axis=2, batch_dims=2)  # [B, K]
    prior_hat = tf.exp(tf.gather(log_priors, idx))  # [B, K]
    bracket = log_p_hat - log_p_x
    if form == "printed":
        bracket = 1.0 + bracket
    coeff = -prior_hat * tf.exp(log_p_hat) * bracket  # [B, K]
    return value, coeff, positive, mu_i, mu_j, idx


def _approximate_terms(x, labels, target_classes, templates, log_priors, form, beta, tau,
                       via_max=False):
    """``(-MI [K], eq. (5)'s dLoss_f/dx [B,h,w,K])``. ``beta`` None: ``T^`` is gathered from
    ``templates`` (any template family), else computed (the paper's family)."""
    h, w = int(x.shape[1]), int(x.shape[2])
    value, coeff, positive, mu_i, mu_j, idx = approximate_coefficients(
        x, labels, target_classes, templates, log_priors, form, via_max)
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
    _check_form(form)
    x, h, w = _check_feature_maps(x)
    custom = templates is not None
    templates, log_priors = _constants(h, w, templates, log_priors, beta, tau, x.dtype)
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
    _check_form(form)
    x, h, w = _check_feature_maps(x)
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
    x, h, w = _check_feature_maps(x)
    x = tf.cast(tf.stop_gradient(x), tf.float32)
    templates, log_priors = _constants(h, w, None, None, beta, tau)
    scores = template_scores(x, templates)  # [B, K, T]
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
    ctx = _replica_context()
    if ctx is not None:
        units = ctx.all_reduce(tf.distribute.ReduceOp.SUM, units)
    mean = batch_sum(total) / units  # [K]
    return tf.math.divide_no_nan(x, mean)
