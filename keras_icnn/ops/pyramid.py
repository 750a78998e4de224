"""The score table of the paper's templates without the dense matmul (issue 49).

Every positive template is the same function of the offset ``i - mu`` (SPEC §1):
``T_mu[i] = tau * max(1 - beta * |i - mu|_1 / n, -1) = tau * (-1 + (beta / n) * relu(D - |i - mu|_1))``
with ``n = max(h, w)`` and ``D = 2n / beta``, and ``T-`` is ``-tau`` everywhere. So the score
table of a map ``x`` is

    s_mu(x) = tau * (-sum(x) + (beta / n) * P_D(x)[mu]),   s_-(x) = -tau * sum(x),

with ``P_D(x)[mu] = sum_i x_i relu(D - |i - mu|_1)``: a correlation of the map with one
L1 pyramid. For an integer radius ``d`` the pyramid is ``d`` nested rectangles
``|di| <= d - t, |dj| <= t - 1`` (``t = 1..d``; offset ``(a, b)`` lies in
``max(d - |a| - |b|, 0)`` of them), each a four-lookup box sum of one summed-area table:
``O(4 d hw)`` additions per map instead of the matmul's ``O(hw^2)`` products (the "staircase").
A fractional radius ``D = k + f`` is ``(1 - f) P_k + f P_(k+1)`` (exact for integer distances).
The pyramid matrix is symmetric, so the table's gradient is the same staircase applied to
the upstream gradient (written by hand: XLA's autodiff of the slices took 13.4x the
matmul's step at 56x56x64).

When it pays (``benchmarks/bench_scores.py``, batch 32 x 64 filters, 2 CPU cores): the whole
table forward + backward under XLA (``results/scores_crossover.json``) is 1.37x the dense
matmul's at 32x32, 0.92x at 36x36 and 42x42, 0.63x at 48x48 and 0.32x at 56x56; at 28x28 the
bare staircase with its adjoint was 1.50x (``results/scores_adjoint.json``); without XLA it is
4.85x at 56x56 (dozens of separate slice kernels). :func:`use_staircase` is that rule: XLA,
maps of at least :data:`MIN_UNITS` units (40x40, a margin over the measured crossover), the
paper's template family.
"""
import numpy as np
import tensorflow as tf

from keras_icnn.ops import templates as templates_lib

# The crossover measured by bench_scores.py (the table forward + backward under XLA, batch
# 32 x 64 filters): 1.37x the dense table at 32x32, 0.92x at 36x36, 0.32x at 56x56.
MIN_UNITS = 40 * 40
TABLE_METHODS = ("auto", "dense", "staircase")


def in_xla_context():
    """Whether the graph being traced is compiled by XLA (``tf.function(jit_compile=True)``,
    a Keras model compiled with ``jit_compile=True``)."""
    if tf.executing_eagerly():
        return False
    from tensorflow.python.ops import control_flow_util  # no public API says this
    return bool(control_flow_util.GraphOrParentsInXlaContext(tf.compat.v1.get_default_graph()))


def radius(h, w, beta):
    """The pyramid's radius ``D = 2 max(h, w) / beta``."""
    return 2.0 * max(int(h), int(w)) / float(beta)


def supported(h, w, beta):
    """Whether the staircase handles this family: a radius of at most ``max(h, w)`` (beta >= 2;
    a wider pyramid is mostly its linear part, and the dense table is no larger)."""
    return (beta is not None and float(beta) > 0
            and 0 < radius(h, w, beta) <= max(int(h), int(w)))


def use_staircase(h, w, beta, method="auto"):
    """Which table :func:`template_scores` computes: ``method`` "dense" or "staircase", or
    "auto": the staircase under XLA for maps of at least :data:`MIN_UNITS` units of the
    paper's family (``beta`` given), else the dense matmul."""
    if method not in TABLE_METHODS:
        raise ValueError(f"`method` must be one of {TABLE_METHODS}. Received: method={method!r}")
    if method == "dense":
        return False
    if not supported(h, w, beta):
        if method == "staircase":
            raise ValueError("The staircase needs the paper's templates with beta >= 2 (a radius "
                             f"2n/beta of at most n). Received: beta={beta} for {h}x{w} maps")
        return False
    return method == "staircase" or (int(h) * int(w) >= MIN_UNITS and in_xla_context())


def staircase(x, d):
    """``P_d(x)[mu] = sum_i x_i max(d - |i - mu|_1, 0)`` for maps ``x`` ``[N, h, w]`` and an
    integer radius ``d >= 0`` (``[N, h, w]``, ``x``'s dtype).

    Example:
        >>> x = tf.reshape(tf.one_hot(4, 9), [1, 3, 3])  # one unit at (1, 1) of a 3x3 map
        >>> staircase(x, 2).numpy()[0]
        array([[0., 1., 0.],
               [1., 2., 1.],
               [0., 1., 0.]], dtype=float32)
    """
    h, w = int(x.shape[1]), int(x.shape[2])
    if d <= 0:
        return tf.zeros_like(x)
    rows = tf.constant(np.triu(np.ones((h, h))), x.dtype)
    cols = tf.constant(np.triu(np.ones((w, w))), x.dtype)
    table = tf.einsum("nqj,qi->nij", x, rows)
    table = tf.einsum("niq,qj->nij", table, cols)  # inclusive 2-D prefix sums
    # Lookups before the map read 0, beyond it the last row / column (the sum stops there).
    table = tf.pad(table, [[0, 0], [d, 0], [d, 0]])
    if d > 1:
        table = tf.concat([table, tf.repeat(table[:, -1:, :], d - 1, axis=1)], axis=1)
        table = tf.concat([table, tf.repeat(table[:, :, -1:], d - 1, axis=2)], axis=2)
    out = tf.zeros_like(x)
    for t in range(1, d + 1):  # d rectangles of the kernel (not filters, images or templates)
        a, b = d - t, t - 1
        hi_i, lo_i, hi_j, lo_j = d + a, d - a - 1, d + b, d - b - 1
        out += (table[:, hi_i:hi_i + h, hi_j:hi_j + w] - table[:, lo_i:lo_i + h, hi_j:hi_j + w]
                - table[:, hi_i:hi_i + h, lo_j:lo_j + w] + table[:, lo_i:lo_i + h, lo_j:lo_j + w])
    return out


def pyramid_correlation(x, radius_):
    """``sum_i x_i relu(D - |i - mu|_1)`` for a real radius ``D >= 0``: ``[N, h, w]`` maps in
    and out, ``(1 - f) P_k + f P_(k+1)`` for ``D = k + f``."""
    k = int(np.floor(radius_))
    f = float(radius_) - k
    out = staircase(x, k)
    if f > 1e-12:
        out = (1.0 - f) * out + f * staircase(x, k + 1)
    return out


def template_scores(x, beta, tau=None):
    """The paper's score table ``[B, K, h*w + 1]`` of maps ``x`` ``[B, h, w, K]`` by the
    staircase, equal to ``template_scores(x, template_matrix(h, w, beta, tau))``; its gradient
    is the same staircase on the upstream (exact).

    Example:
        >>> from keras_icnn.ops import filter_loss, templates
        >>> x = tf.random.uniform([2, 6, 6, 3])
        >>> dense = filter_loss.template_scores(x, templates.template_matrix(6, 6))
        >>> bool(tf.reduce_max(tf.abs(template_scores(x, 4.0) - dense)) < 1e-6)
        True
    """
    h, w = int(x.shape[1]), int(x.shape[2])
    n = max(h, w)
    tau = templates_lib.default_tau(h, w) if tau is None else float(tau)
    scale = tau * float(beta) / n
    d = radius(h, w, beta)

    def to_maps(v):  # [B, h, w, K] -> [B*K, h, w]
        return tf.reshape(tf.transpose(v, [0, 3, 1, 2]), [-1, h, w])

    @tf.custom_gradient
    def table(maps):
        shape = tf.shape(maps)
        total = tf.reduce_sum(maps, axis=[1, 2])  # [B, K]
        p = tf.reshape(pyramid_correlation(to_maps(maps), d), [shape[0], shape[3], h * w])
        positive = scale * p - tau * total[..., None]
        scores = tf.concat([positive, -tau * total[..., None]], axis=-1)

        def grad_fn(up):  # [B, K, hw + 1]
            up_maps = tf.reshape(up[..., :h * w], [-1, h, w])
            g = scale * pyramid_correlation(up_maps, d)  # the pyramid is symmetric
            g = tf.transpose(tf.reshape(g, [shape[0], shape[3], h, w]), [0, 2, 3, 1])
            return g - tau * tf.reduce_sum(up, axis=-1)[:, None, None, :]

        return scores, grad_fn

    return table(x)
