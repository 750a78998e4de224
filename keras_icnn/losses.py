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
"""

import tensorflow as tf

from keras_icnn import templates as templates_lib
from keras_icnn import validation
from keras_icnn.receptive_field import peak_units

GRADIENT_FORMS = ("printed", "appendix")


def _constants(h, w, templates, log_priors, beta, tau, dtype=tf.float32):
    if templates is None:
        templates = templates_lib.template_matrix(h, w, beta=beta, tau=tau)
    if log_priors is None:
        log_priors = templates_lib.uniform_log_priors(h, w)
    templates = tf.cast(tf.convert_to_tensor(templates), dtype)
    log_priors = tf.cast(tf.convert_to_tensor(log_priors), dtype)
    return templates, log_priors


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


def log_likelihoods(scores, log_priors):
    """``log p(x|T)`` [B, K, T] and ``log p(x)`` [B, K] from fitness scores.

    ``p(x|T)`` is a softmax over the images of the global batch (all
    replicas under a ``tf.distribute`` strategy; see :func:`batch_logsumexp`).
    """
    log_p_x_given_t = scores - batch_logsumexp(scores)
    log_p_x = tf.reduce_logsumexp(log_p_x_given_t + log_priors, axis=-1)
    return log_p_x_given_t, log_p_x


def negative_mutual_information(log_p_x_given_t, log_p_x, log_priors):
    """``-MI`` per filter [K] from ``log p(x|T)`` [B,K,T], ``log p(x)`` [B,K], log priors [T]."""
    # p(x|T) = exp(log p(x|T)) <= 1: a normalised probability, never a raw score.
    p_x_given_t = tf.exp(log_p_x_given_t)
    pointwise = p_x_given_t * (log_p_x_given_t - log_p_x[..., None])
    mi = tf.reduce_sum(batch_sum(pointwise) * tf.exp(log_priors), -1)
    return -mi


def mutual_information_loss(
    x, templates=None, log_priors=None, beta=templates_lib.DEFAULT_BETA, tau=None
):
    """Exact mini-batch ``-MI(X; T)`` per filter.

    Args:
        x: feature maps ``[B, h, w, K]``, ``x >= 0`` (any float dtype).
        templates: optional ``[h*w, h*w+1]`` template matrix; built from
            ``beta`` and ``tau`` when omitted.
        log_priors: optional ``[h*w+1]`` log template priors; uniform when
            omitted.
        beta, tau: template parameters used when ``templates`` is omitted.

    Returns:
        float32 ``[K]``: ``-MI`` of each filter. A batch of one gives 0.

    Example:
        >>> x = tf.random.uniform([8, 6, 6, 16])
        >>> mutual_information_loss(x).shape
        TensorShape([16])
    """
    x, h, w = _check_feature_maps(x)
    templates, log_priors = _constants(h, w, templates, log_priors, beta, tau, x.dtype)
    scores = template_scores(x, templates)
    log_p_x_given_t, log_p_x = log_likelihoods(scores, log_priors)
    return negative_mutual_information(log_p_x_given_t, log_p_x, log_priors)


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
    shape = tf.shape(x)
    hw = shape[1] * shape[2]
    i, j, _ = peak_units(x)
    mu = i * shape[2] + j
    labels = tf.cast(tf.reshape(labels, [-1]), tf.int32)
    target_classes = tf.cast(target_classes, tf.int32)
    positive = tf.equal(labels[:, None], target_classes[None, :])
    return tf.where(positive, mu, tf.fill(tf.shape(mu), hw))


def approximate_gradient(x, labels, target_classes, templates, log_priors, form):
    """The paper's approximate gradient (eq. 5) ``dLoss_f/dx``, shape of ``x``."""
    x, _, _ = _check_feature_maps(x)
    templates = tf.cast(templates, x.dtype)
    log_priors = tf.cast(log_priors, x.dtype)
    scores = template_scores(x, templates)
    log_p_x_given_t, log_p_x = log_likelihoods(scores, log_priors)
    idx = target_template_indices(x, labels, target_classes)  # [B, K]
    log_p_hat = tf.gather(log_p_x_given_t, idx, axis=2, batch_dims=2)  # [B, K]
    prior_hat = tf.exp(tf.gather(log_priors, idx))  # [B, K]
    bracket = log_p_hat - log_p_x
    if form == "printed":
        bracket = 1.0 + bracket
    coeff = -prior_hat * tf.exp(log_p_hat) * bracket  # [B, K]
    # T^ for every image and filter: [B, h*w, K], the size of x itself.
    t_hat = tf.transpose(tf.gather(templates, idx, axis=1), [1, 0, 2])
    grad = coeff[:, None, :] * t_hat
    return tf.reshape(grad, tf.shape(x)), log_p_x_given_t, log_p_x


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
        form: ``"printed"`` (eq. 5 as printed, with ``1 +``) or
            ``"appendix"`` (without it).
        num_classes: when given, labels must lie in ``[0, num_classes)``
            (otherwise only ``>= 0``); labels must be whole numbers, one per
            image, whatever their dtype.
        check_labels: add those checks (callers that checked already pass False).

    Returns:
        float32 ``[K]``.
    """
    if form not in GRADIENT_FORMS:
        raise ValueError(
            f"`form` must be one of {GRADIENT_FORMS}. Received: form={form!r}"
        )
    x, h, w = _check_feature_maps(x)
    templates, log_priors = _constants(h, w, templates, log_priors, beta, tau, x.dtype)
    if check_labels:
        labels = validation.labels_tf(
            labels, num_classes,
            batch_size=x.shape[0] if x.shape[0] is not None else tf.shape(x)[0],
            where="approximate_mutual_information_loss")
    else:
        labels = tf.convert_to_tensor(labels)
    target_classes = tf.convert_to_tensor(target_classes)

    @tf.custom_gradient
    def _loss(maps):
        g, log_p_x_given_t, log_p_x = approximate_gradient(
            maps, labels, target_classes, templates, log_priors, form
        )
        value = negative_mutual_information(log_p_x_given_t, log_p_x, log_priors)

        def grad_fn(upstream):
            # Every replica holds the same global value; like the exact form's
            # collectives, the gradient reaching each replica's maps is the sum of
            # the replicas' upstream gradients (Keras scales each copy by 1/R).
            ctx = _replica_context()
            if ctx is not None:
                upstream = ctx.all_reduce(tf.distribute.ReduceOp.SUM, upstream)
            return tf.reshape(tf.cast(upstream, g.dtype), [1, 1, 1, -1]) * g

        return value, grad_fn

    return _loss(x)

