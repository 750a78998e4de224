"""The filter loss's maths (ICNN eq. 1-5) as TF functions: template scores, the mini-batch
``-MI`` terms in the log domain over the global batch, the approximate gradient's target
templates and coefficients. :mod:`keras_icnn.losses` builds the public losses (values with
their exact or approximate gradients, fused or not) on these."""
import functools

import tensorflow as tf

from keras_icnn.ops import pyramid, templates as templates_lib
from keras_icnn import validation
from keras_icnn.ops.peaks import peak_units

GRADIENT_FORMS = ("printed", "appendix")


@functools.lru_cache(maxsize=64)
def standard_constants(h, w, beta=templates_lib.DEFAULT_BETA, tau=None):
    """The paper's template matrix ``[hw, hw+1]`` and uniform log priors ``[hw+1]`` (numpy,
    float32), built once per map size and template parameters."""
    templates = templates_lib.template_matrix(h, w, beta=beta, tau=tau)
    log_priors = templates_lib.uniform_log_priors(h, w)
    templates.setflags(write=False)
    log_priors.setflags(write=False)
    return templates, log_priors


def constants(h, w, templates, log_priors, beta, tau, dtype=tf.float32, build_templates=True):
    """``(templates, log_priors)`` as tensors of ``dtype``: the given ones, or the standard
    ones (:func:`standard_constants`) where None. ``build_templates=False`` leaves absent
    templates None (:func:`template_scores` builds the ``[hw, hw+1]`` matrix only if the dense
    table is the one computed: 39 MB at 56x56, 630 MB at 112x112)."""
    if log_priors is None:
        log_priors = templates_lib.uniform_log_priors(h, w)
    if templates is None and build_templates:
        templates = standard_constants(h, w, float(beta), tau)[0]
    if templates is not None:
        templates = tf.cast(tf.convert_to_tensor(templates), dtype)
    log_priors = tf.cast(tf.convert_to_tensor(log_priors), dtype)
    return templates, log_priors


def check_form(form):
    if form not in GRADIENT_FORMS:
        raise ValueError(f"`form` must be one of {GRADIENT_FORMS}. Received: form={form!r}")


def check_feature_maps(x):
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


def template_scores(x, templates, beta=None, tau=None, method="auto"):
    """Fitness ``s_T(x) = sum_ij x_ij T_ij`` of every image, filter and template.

    Args:
        x: float32 ``[B, h, w, K]``.
        templates: float32 ``[h*w, T]`` (see ``templates.template_matrix``), or None for the
            paper's family of ``beta`` and ``tau`` (built here if the dense table is chosen).
        beta, tau: when ``beta`` is given, ``templates`` is the paper's family
            ``template_matrix(h, w, beta, tau)``, which the table may then be computed
            without (:mod:`keras_icnn.ops.pyramid`); None: any template matrix.
        method: ``"auto"`` (the staircase where it is measured faster: under XLA, maps of
            at least ``pyramid.MIN_UNITS`` units; else one matmul), ``"dense"`` or
            ``"staircase"``.

    Returns:
        float32 ``[B, K, T]``.
    """
    x = tf.convert_to_tensor(x)
    if x.shape.rank != 4:
        raise ValueError("`x` must be feature maps of rank 4 [batch, height, width, filters]. "
                         f"Received: x of shape {x.shape}")
    rows = (x.shape[1] * x.shape[2]) if None not in (x.shape[1], x.shape[2]) else None
    if templates is None:
        if beta is None or rows is None:
            raise ValueError("`templates` may be omitted only for the paper's family (`beta` "
                             f"given) on maps of a static size. Received: beta={beta}, x of "
                             f"shape {x.shape}")
        if pyramid.use_staircase(x.shape[1], x.shape[2], beta, method):
            return pyramid.template_scores(x, beta, tau)
        templates = standard_constants(int(x.shape[1]), int(x.shape[2]), float(beta), tau)[0]
        templates = tf.constant(templates, x.dtype)
    templates = tf.convert_to_tensor(templates)
    if templates.shape.rank != 2 or (rows is not None and templates.shape[0] not in (None, rows)):
        raise ValueError(f"`templates` must be a [h*w, T] matrix for {x.shape[1]}x{x.shape[2]} "
                         f"maps. Received: templates of shape {templates.shape}")
    if rows is not None and pyramid.use_staircase(x.shape[1], x.shape[2], beta, method):
        return tf.cast(pyramid.template_scores(x, beta, tau), templates.dtype)
    shape = tf.shape(x)
    flat = tf.reshape(x, [shape[0], shape[1] * shape[2], shape[3]])
    return tf.einsum("bpk,pt->bkt", flat, templates)


def replica_context():
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
    ctx = replica_context()
    if ctx is None:
        return local
    return tf.reduce_logsumexp(ctx.all_gather(local, axis=0), axis=0, keepdims=True)


def batch_sum(values):
    """Sum over the images of the global batch of per-image ``values`` (axis 0)."""
    local = tf.reduce_sum(values, axis=0)
    ctx = replica_context()
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


def exact_value(x, templates, log_priors, beta=None, tau=None):
    """``-MI`` per filter [K]; ``beta``, ``tau`` as in :func:`template_scores`."""
    return mutual_information_terms(template_scores(x, templates, beta, tau), log_priors)[2]


def peak_targets(x, labels, target_classes, via_max=False):
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
    return peak_targets(x, labels, target_classes)[3]


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
                             via_max=False, beta=None, tau=None):
    """The filter loss and eq. (5) in factored form: ``dLoss_f/dx = coeff * T^``.

    Args:
        x: float ``[B, h, w, K]``; labels: int ``[B]``; target_classes: int ``[K]``.
        templates, log_priors: the ``[h*w, T]`` template matrix and ``[T]`` log priors.
        form: ``"printed"`` or ``"appendix"``; via_max: as in ``peak_units``.
        beta, tau: as in :func:`template_scores` (given: ``templates`` is the paper's family).

    Returns:
        ``(value [K], coeff [B, K], positive, mu_i, mu_j, idx)``: ``-MI`` per filter,
        ``-p(T^) p(x|T^) [1 + log p(x|T^) - log p(x)]`` (``form="appendix"``: without
        ``1 +``), and the target template of every image and filter as in
        :func:`_peak_targets`, so that ``T^`` is ``templates[:, idx]`` (or, for the paper's
        family, :func:`target_templates` of ``positive, mu_i, mu_j``).
    """
    log_p_x_given_t, log_p_x, value = mutual_information_terms(
        template_scores(x, templates, beta, tau), log_priors)
    positive, mu_i, mu_j, idx = peak_targets(x, labels, target_classes, via_max)
    log_p_hat = tf.gather(log_p_x_given_t, idx, axis=2, batch_dims=2)  # [B, K]
    prior_hat = tf.exp(tf.gather(log_priors, idx))  # [B, K]
    bracket = log_p_hat - log_p_x
    if form == "printed":
        bracket = 1.0 + bracket
    coeff = -prior_hat * tf.exp(log_p_hat) * bracket  # [B, K]
    return value, coeff, positive, mu_i, mu_j, idx
