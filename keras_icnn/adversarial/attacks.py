"""Adversarial samples for CSG's applications (CSG §5.2, appendices I-J): white-box attacks
(FGSM, PGD, CW-L2), black-box attacks (one-pixel, local search) and the features of the
adversarial-sample detector.

Every attack is a batch of TF ops traced once per batch shape, works on images in the
model's own pixel units (``pixel_range``, 0-255 for this package's models) and takes
its budget on the [0, 1] scale the papers use (``eps=0.031`` is 8/255). Attacks are
targeted at a class (``targets``) or untargeted (``targets=None``: move away from
``labels``). :func:`random_targets` draws a random other class per image, the CSG
paper's protocol.

Example:
    >>> targets = random_targets(labels, num_classes, seed=0)
    >>> adv = pgd(model, images, labels, targets=targets, eps=0.031, step=0.0078, iterations=7)
    >>> success_rate(model, images, adv, labels, targets)

Why not a library: adversarial-robustness-toolbox 1.20.1 runs FGSM and PGD on a Keras 3
model under TensorFlow 2.21 (checked: ``TensorFlowV2Classifier`` with a Keras 3 model), but
it has no local-search attack, its one-pixel attack loops over the images around its copy of
SciPy's differential evolution, and it would add a dependency with its own; these are a few dozen
lines of batched TF each, tested against closed forms.
"""

import numpy as np
import tensorflow as tf

from keras_icnn import validation
from keras_icnn.models import heads

DEFAULT_PIXEL_RANGE = (0.0, 255.0)


def random_targets(labels, num_classes, seed=0):
    """A random class other than each label (uniform over the other ``num_classes - 1``)."""
    if validation.positive_int(num_classes, "num_classes") < 2:
        raise ValueError("`num_classes` must be >= 2 for a class other than the label. "
                         f"Received: num_classes={num_classes}")
    labels = validation.labels_np(labels, num_classes)
    rng = np.random.default_rng(seed)
    shift = rng.integers(1, num_classes, size=labels.shape)
    return ((labels + shift) % num_classes).astype(np.int64)


def _check(images, labels, targets, pixel_range):
    images = np.asarray(images, np.float32)
    if images.ndim != 4:
        raise ValueError(f"`images` must be [N, H, W, C]. Received: shape={images.shape}")
    if not np.isfinite(images).all():
        raise ValueError("`images` must be finite (no NaN or Inf)")
    lo, hi = (float(v) for v in pixel_range)
    if not hi > lo:
        raise ValueError(f"`pixel_range` must be (low, high) with high > low. Received: {pixel_range}")
    labels = validation.labels_np(labels, None, len(images), "attack")
    if targets is not None:
        targets = validation.labels_np(targets, None, len(images), "attack targets")
    return images, labels, targets, lo, hi


def _loss_sign(targets):
    """+1: climb the loss of the labels (untargeted); -1: descend the target's loss."""
    return 1.0 if targets is None else -1.0


def _cross_entropy(model, x, y):
    logits = tf.cast(model(x, training=False), tf.float32)
    return tf.nn.sparse_softmax_cross_entropy_with_logits(labels=tf.cast(y, tf.int32),
                                                          logits=logits)


def batched(fn, arrays, batch_size):
    out = []
    n = len(arrays[0])
    for a in range(0, n, batch_size):
        out.append(fn(*[tf.constant(arr[a:a + batch_size]) for arr in arrays]).numpy())
    return np.concatenate(out) if out else np.zeros_like(arrays[0])


def fgsm(model, images, labels, eps=0.031, targets=None, pixel_range=DEFAULT_PIXEL_RANGE,
         batch_size=128):
    """Fast gradient sign method (Goodfellow et al., 2015): one step of ``eps`` along the
    sign of the input gradient of the cross-entropy (up for ``labels``, down for ``targets``),
    clipped to the pixel range."""
    model = heads.as_logits(model, "fgsm")  # a softmax head: attack its logits
    images, labels, targets, lo, hi = _check(images, labels, targets, pixel_range)
    validation.number_in(eps, "eps", low=0)
    validation.positive_int(batch_size, "batch_size")
    size = float(eps) * (hi - lo)
    sign = _loss_sign(targets)
    aim = labels if targets is None else targets

    @tf.function(autograph=False, reduce_retracing=True)
    def step(x, y):
        with tf.GradientTape() as tape:
            tape.watch(x)
            loss = _cross_entropy(model, x, y)
        grad = tape.gradient(loss, x)
        return tf.clip_by_value(x + sign * size * tf.sign(grad), lo, hi)

    return batched(step, [images, aim], batch_size)


def pgd(model, images, labels, eps=0.031, step=0.0078, iterations=7, targets=None,
        random_start=True, seed=0, pixel_range=DEFAULT_PIXEL_RANGE, batch_size=128):
    """Projected gradient descent in the L-infinity ball (Madry et al., 2018): ``iterations``
    sign-gradient steps of ``step``, each projected back into the ``eps`` ball around the
    image and the pixel range; starts from a uniform point of the ball when ``random_start``."""
    model = heads.as_logits(model, "pgd")  # a softmax head: attack its logits
    images, labels, targets, lo, hi = _check(images, labels, targets, pixel_range)
    validation.positive_int(iterations, "iterations")
    validation.number_in(eps, "eps", low=0)
    validation.number_in(step, "step", low=0, low_open=True)
    validation.positive_int(batch_size, "batch_size")
    radius, size = float(eps) * (hi - lo), float(step) * (hi - lo)
    sign = _loss_sign(targets)
    aim = labels if targets is None else targets
    rng = np.random.default_rng(seed)
    start = (images + rng.uniform(-radius, radius, images.shape).astype(np.float32)
             if random_start else images)

    @tf.function(autograph=False, reduce_retracing=True)
    def run(x0, x, y):
        for _ in range(int(iterations)):  # a fixed, small count: unrolled in the graph
            with tf.GradientTape() as tape:
                tape.watch(x)
                loss = _cross_entropy(model, x, y)
            x = x + sign * size * tf.sign(tape.gradient(loss, x))
            x = tf.clip_by_value(tf.clip_by_value(x, x0 - radius, x0 + radius), lo, hi)
        return x

    start = np.clip(start, lo, hi)
    return batched(run, [images, start, aim], batch_size)


def cw_l2(model, images, labels, targets=None, iterations=100, c=1.0, learning_rate=0.01,
          kappa=0.0, pixel_range=DEFAULT_PIXEL_RANGE, batch_size=128):
    """Carlini-Wagner L2 (2017), one constant ``c``: minimise ``||x' - x||^2 + c f(x')`` over
    ``x' = lo + (hi - lo) (tanh(w) + 1) / 2`` with Adam for ``iterations`` steps, ``f`` the
    margin ``max(max_{j != t} z_j - z_t, -kappa)`` (targeted) or
    ``max(z_y - max_{j != y} z_j, -kappa)``; distances on the [0, 1] scale. Returns, per
    image, the successful sample of least L2 seen (the image itself when none succeeded)."""
    model = heads.as_logits(model, "cw_l2")  # a softmax head: attack its logits
    images, labels, targets, lo, hi = _check(images, labels, targets, pixel_range)
    validation.positive_int(iterations, "iterations")
    validation.number_in(c, "c", low=0, low_open=True)
    validation.number_in(learning_rate, "learning_rate", low=0, low_open=True)
    validation.number_in(kappa, "kappa", low=0)
    validation.positive_int(batch_size, "batch_size")
    aim = labels if targets is None else targets
    targeted = targets is not None
    span = hi - lo

    def margin(logits, y):
        onehot = tf.one_hot(tf.cast(y, tf.int32), tf.shape(logits)[-1])
        own = tf.reduce_sum(logits * onehot, -1)
        other = tf.reduce_max(logits - 1e9 * onehot, -1)
        return other - own if targeted else own - other

    @tf.function(autograph=False, reduce_retracing=True)
    def run(x, y):
        unit = tf.clip_by_value((x - lo) / span, 1e-6, 1 - 1e-6)
        w = tf.atanh(2.0 * unit - 1.0)
        m, v = tf.zeros_like(w), tf.zeros_like(w)  # Adam's moments, as plain tensors
        best, best_dist = x, tf.fill(tf.shape(x)[:1], np.inf)
        for t in range(1, int(iterations) + 1):  # unrolled: one trace per batch shape
            with tf.GradientTape() as tape:
                tape.watch(w)
                adv_unit = (tf.tanh(w) + 1.0) / 2.0
                adv = lo + span * adv_unit
                logits = tf.cast(model(adv, training=False), tf.float32)
                dist = tf.reduce_sum(tf.square(adv_unit - unit), axis=[1, 2, 3])
                f = margin(logits, y)
                loss = tf.reduce_sum(dist + c * tf.maximum(f, -kappa))
            won = f < 0 if kappa == 0 else f <= -kappa
            better = tf.logical_and(won, dist < best_dist)
            best = tf.where(better[:, None, None, None], adv, best)
            best_dist = tf.where(better, dist, best_dist)
            g = tape.gradient(loss, w)
            m = 0.9 * m + 0.1 * g
            v = 0.999 * v + 0.001 * tf.square(g)
            w = w - learning_rate * (m / (1 - 0.9 ** t)) / (tf.sqrt(v / (1 - 0.999 ** t)) + 1e-8)
        return best

    return batched(run, [images, aim], batch_size)


def probabilities(model, x, batch_size=512):
    """``model``'s probabilities on ``x`` [N, ...], in batches: [N, C] numpy, computed from its
    class scores by its head's rule (:mod:`keras_icnn.models.heads`: softmax, or sigmoid for
    sigmoid and binary heads)."""
    validation.positive_int(batch_size, "batch_size")
    kind = heads.head_of(model, "probabilities")
    model = heads.as_logits(model, "probabilities")  # the head's class scores
    out = []
    for a in range(0, len(x), batch_size):
        out.append(heads.probabilities(model(x[a:a + batch_size], training=False),
                                       kind).numpy())
    return np.concatenate(out)


def one_pixel(model, images, labels, pixels=1, population=64, generations=20, seed=0,
              pixel_range=DEFAULT_PIXEL_RANGE, targets=None):
    """One-pixel attack (Su et al., 2019): differential evolution (DE/rand/1, F = 0.5) over
    ``pixels`` (row, column, colour) candidates per image, ``population`` candidates and
    ``generations`` rounds, minimising the true class's probability (or maximising the
    target's); every image's whole population is scored in one batch. Returns the best
    candidate image found for each image."""
    images, labels, targets, lo, hi = _check(images, labels, targets, pixel_range)
    for name, value in (("pixels", pixels), ("population", population),
                        ("generations", generations)):
        validation.positive_int(value, name)
    if population < 3:
        raise ValueError("`population` must be >= 3 (DE/rand/1 mixes three candidates). "
                         f"Received: population={population}")
    n, h, w, ch = images.shape
    rng = np.random.default_rng(seed)
    genes = 2 + ch  # row, column, colour

    def random_population(size):
        pop = np.empty((n, size, pixels, genes), np.float32)
        pop[..., 0] = rng.uniform(0, h, (n, size, pixels))
        pop[..., 1] = rng.uniform(0, w, (n, size, pixels))
        pop[..., 2:] = rng.uniform(lo, hi, (n, size, pixels, ch))
        return pop

    def apply(pop):
        """Images [n * size, h, w, ch] with each candidate's pixels set."""
        size = pop.shape[1]
        out = np.repeat(images[:, None], size, axis=1).copy()
        rows = np.clip(pop[..., 0].astype(int), 0, h - 1)
        cols = np.clip(pop[..., 1].astype(int), 0, w - 1)
        ii, ss = np.meshgrid(np.arange(n), np.arange(size), indexing="ij")
        for p in range(pixels):
            out[ii, ss, rows[..., p], cols[..., p]] = np.clip(pop[..., p, 2:], lo, hi)
        return out.reshape((n * size, h, w, ch))

    aim = labels if targets is None else targets

    def fitness(pop):
        probs = probabilities(model, apply(pop)).reshape(n, pop.shape[1], -1)
        chosen = probs[np.arange(n)[:, None], np.arange(pop.shape[1])[None], aim[:, None]]
        return chosen if targets is None else -chosen  # lower is better

    pop = random_population(population)
    score = fitness(pop)
    for _ in range(int(generations)):
        picks = np.stack([rng.permutation(population)[:3] for _ in range(population)])
        a, b, c = (pop[:, picks[:, k]] for k in range(3))
        trial = a + 0.5 * (b - c)
        trial[..., 0] = np.clip(trial[..., 0], 0, h - 1e-3)
        trial[..., 1] = np.clip(trial[..., 1], 0, w - 1e-3)
        trial[..., 2:] = np.clip(trial[..., 2:], lo, hi)
        trial_score = fitness(trial)
        better = trial_score < score
        pop = np.where(better[..., None, None], trial, pop)
        score = np.where(better, trial_score, score)
    best = score.argmin(1)
    return apply(pop[np.arange(n), best][:, None]).reshape(images.shape)


def local_search(model, images, labels, rounds=30, candidates=32, per_round=5, p=2.0,
                 radius=2, seed=0, pixel_range=DEFAULT_PIXEL_RANGE, targets=None):
    """Greedy local-search black-box attack (after Narodytska & Kasiviswanathan, 2017).

    Each round scores ``candidates`` single-pixel perturbations per image (a pixel set
    to ``mid + p * half * s`` per channel, ``s`` a random sign, saturated to the range:
    a corner of the colour cube for ``p >= 1``), drawn near the pixels perturbed so far (within ``radius``, else anywhere),
    keeps the ``per_round`` that lower the true class's probability most (raise the
    target's), and stops for an image once it is misclassified (reaches the target).
    Returns the perturbed images.
    """
    images, labels, targets, lo, hi = _check(images, labels, targets, pixel_range)
    for name, value in (("rounds", rounds), ("candidates", candidates),
                        ("per_round", per_round)):
        validation.positive_int(value, name)
    validation.non_negative_int(radius, "radius")
    validation.number_in(p, "p", low=0, low_open=True)
    n, h, w, ch = images.shape
    rng = np.random.default_rng(seed)
    mid, half = (lo + hi) / 2.0, (hi - lo) / 2.0
    adv = images.copy()
    touched = [[] for _ in range(n)]
    aim = labels if targets is None else targets
    done = np.zeros(n, bool)
    for _ in range(int(rounds)):
        probs = probabilities(model, adv)
        pred = probs.argmax(-1)
        done = (pred != labels) if targets is None else (pred == targets)
        active = np.flatnonzero(~done)
        if not len(active):
            break
        rows = rng.integers(0, h, (len(active), candidates))
        cols = rng.integers(0, w, (len(active), candidates))
        for k, i in enumerate(active):
            if touched[i]:  # half of the candidates near the pixels already changed
                near = np.asarray(touched[i])[rng.integers(0, len(touched[i]), candidates // 2)]
                rows[k, :candidates // 2] = np.clip(near[:, 0] + rng.integers(-radius, radius + 1,
                                                                               candidates // 2), 0, h - 1)
                cols[k, :candidates // 2] = np.clip(near[:, 1] + rng.integers(-radius, radius + 1,
                                                                               candidates // 2), 0, w - 1)
        trial = np.repeat(adv[active][:, None], candidates, axis=1)
        aa, cc = np.meshgrid(np.arange(len(active)), np.arange(candidates), indexing="ij")
        # The paper sets a pixel to p * sign(I) (saturated for a large p): a corner of the
        # colour cube. Both ways per channel, at random: the pixel's own sign alone can
        # only strengthen what it already shows.
        signs = rng.choice([-1.0, 1.0], size=(len(active), candidates, ch))
        trial[aa, cc, rows, cols] = np.clip(mid + p * half * signs, lo, hi)
        tp = probabilities(model, trial.reshape((-1, h, w, ch))).reshape(len(active), candidates, -1)
        score = tp[np.arange(len(active))[:, None], np.arange(candidates)[None], aim[active][:, None]]
        score = score if targets is None else -score
        best = np.argsort(score, axis=1, kind="stable")[:, :per_round]
        for k, i in enumerate(active):
            for c in best[k]:
                r, q = rows[k, c], cols[k, c]
                adv[i, r, q] = trial[k, c, r, q]
                touched[i].append((r, q))
    return adv


def attack_succeeded(model, images, adversarial, labels, targets=None, batch_size=256):
    """bool [N]: the model classifies the clean image correctly and its adversarial sample
    wrongly (untargeted) or as the target (targeted) — the samples a success-only detection
    protocol keeps."""
    clean = probabilities(model, np.asarray(images, np.float32), batch_size).argmax(-1)
    adv = probabilities(model, np.asarray(adversarial, np.float32), batch_size).argmax(-1)
    labels = np.asarray(labels)
    won = adv != labels if targets is None else adv == np.asarray(targets)
    return (clean == labels) & won


def success_rate(model, images, adversarial, labels, targets=None, batch_size=256):
    """Share of the images the model classifies correctly whose adversarial sample is
    misclassified (untargeted) or classified as the target (targeted)."""
    clean = probabilities(model, np.asarray(images, np.float32), batch_size).argmax(-1)
    correct = clean == np.asarray(labels)
    if not correct.any():
        return float("nan")
    won = attack_succeeded(model, images, adversarial, labels, targets, batch_size)
    return float(np.sum(won) / np.sum(correct))
