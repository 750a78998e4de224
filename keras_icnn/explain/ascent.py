"""Gradient-ascent pictures: what a filter or a class responds to (the survey's §3.2.1, eq. 5).

``argmax_I S(I) - lambda ||I - centre||²`` from a seeded grey-plus-noise start, with the
usual regularisers (Yosinski et al. 2015; Olah et al. 2017): a random jitter (roll) of the
image before each step, a light Gaussian blur every few steps, and clipping to the model's
input range. ``S`` is a filter's mean activation over its map (:func:`filter_images`) or a
class logit (:func:`class_images`). Every filter (class) gets its own image and all of them
are optimised together, one batch, one ``tf.function``; the same seed gives the same images.

Steps are normalised gradient steps: each image moves ``learning_rate x (its value range)``
per step along its gradient divided by the gradient's mean absolute value, so one setting
works for any input range and any layer. An image on which its unit is silent (a ReLU at 0
everywhere: no gradient) follows the redirected-ReLU gradient (Olah et al. 2017;
:mod:`keras_icnn.ops.relu_gradients`) until the unit responds.

Example:
    >>> pictures = keras_icnn.ascent.filter_images(model, steps=128, seed=0)
    >>> pictures.shape                       # [F, H, W, C] in the model's input range
    >>> keras_icnn.ascent.class_images(model, classes=[0, 3]).shape
"""
import keras
import numpy as np
import tensorflow as tf

from keras_icnn import validation
from keras_icnn.ops.imaging import gaussian_blur
from keras_icnn.models import graph, heads
from keras_icnn.ops.relu_gradients import redirected_relu_gradients


def _settings(steps, learning_rate, l2, jitter, blur_every, blur_sigma, value_range, batch_size):
    validation.positive_int(steps, "steps")
    validation.number_in(learning_rate, "learning_rate", 0, low_open=True)
    validation.number_in(l2, "l2", 0)
    validation.non_negative_int(jitter, "jitter")
    validation.non_negative_int(blur_every, "blur_every")
    validation.number_in(blur_sigma, "blur_sigma", 0, low_open=True)
    validation.positive_int(batch_size, "batch_size")
    try:
        low, high = (float(v) for v in value_range)
    except (TypeError, ValueError):
        raise ValueError("`value_range` must be (low, high) of the model's input. Received: "
                         f"{value_range!r}") from None
    if not (np.isfinite([low, high]).all() and low < high):
        raise ValueError(f"`value_range` must be finite with low < high. Received: {value_range}")
    return low, high


def _indices(values, num, name, what):
    """``values`` (an index or a list of them) as int64 [k] in [0, num): floats that are not
    whole numbers and booleans are refused (never truncated), as is an empty list."""
    arr = np.asarray(values)
    if arr.size == 0:
        raise ValueError(f"`{name}` must hold at least one index in [0, {num}) {what}. "
                         f"Received: {values!r}")
    return validation.labels_np(arr.reshape(-1), num, name=name)


def _ascend(objective, shape, ids, steps, learning_rate, l2, jitter, blur_every, blur_sigma,
            low, high, seed, batch_size):
    """Images [len(ids), *shape] maximising ``objective(x, index) -> [b]`` (index: position in
    ``ids``, the filter / class each image serves), in batches of ``batch_size``."""
    ids = tf.constant(np.asarray(ids, np.int64))
    count = int(ids.shape[0])
    centre, span = (low + high) / 2.0, high - low

    def gain_of(x, index):
        response = objective(x, index)
        return response, response - l2 * tf.reduce_mean(tf.square((x - centre) / span),
                                                         axis=[1, 2, 3])

    @tf.function(autograph=False, reduce_retracing=True)
    def step(x, index, shift, blur):
        x = tf.roll(x, shift, axis=[1, 2])
        with tf.GradientTape() as tape:
            tape.watch(x)
            response, gain = gain_of(x, index)
        g = tape.gradient(gain, x)
        # An image on which its unit is silent (its ReLU at 0 everywhere) has no gradient to
        # climb: it follows the redirected-ReLU gradient until the unit responds (a second
        # forward and backward pass, of the silent images only, on steps where there are any).
        silent = tf.where(response <= 0)[:, 0]

        def redirected():
            xs = tf.gather(x, silent)
            with tf.GradientTape() as again:
                again.watch(xs)
                gain_s = gain_of(xs, tf.gather(index, silent))[1]
            with redirected_relu_gradients():
                woken = again.gradient(gain_s, xs)
            return tf.tensor_scatter_nd_update(g, silent[:, None], woken)

        g = tf.cond(tf.size(silent) > 0, redirected, lambda: g)
        scale = tf.reduce_mean(tf.abs(g), axis=[1, 2, 3], keepdims=True)
        x = tf.roll(x + learning_rate * span * g / (scale + 1e-12), -shift, axis=[1, 2])
        x = tf.cond(blur, lambda: gaussian_blur(x, blur_sigma), lambda: x)
        return tf.clip_by_value(x, low, high), response

    shifts = np.random.default_rng(seed).integers(-jitter, jitter + 1, size=(steps, 2))
    shifts = shifts.astype(np.int32)
    out = []
    for a in range(0, count, batch_size):
        index = tf.range(a, min(count, a + batch_size), dtype=tf.int32)
        # Each start depends on the seed and on the filter / class it serves only.
        # A loop over the few start images, not vectorized_map: pfor cannot vectorise a
        # stateless draw whose seed differs per image, and fell back to this same loop
        # with a warning in the middle of evaluate's progress bars (issue 49).
        x = best = centre + span * tf.map_fn(
            lambda i: tf.random.stateless_uniform(shape, tf.stack([seed, i]), -0.05, 0.05),
            tf.gather(ids, index), fn_output_signature=tf.float32)
        best_response = tf.fill(tf.shape(index), -float("inf"))
        for s in range(steps):  # iterations, each one traced step over the whole batch
            blur = bool(blur_every) and (s + 1) % blur_every == 0 and s + 1 < steps
            new, response = step(x, index, tf.constant(shifts[s]), tf.constant(blur))
            # Keep each image's best so far (the response of x, measured in this step).
            better = response > best_response
            best = tf.where(tf.reshape(better, [-1, 1, 1, 1]), x, best)
            best_response = tf.maximum(best_response, response)
            x = new
        out.append(best.numpy())
    return np.concatenate(out)


def filter_images(model, layer=None, filters=None, steps=256, learning_rate=0.02, l2=0.01,
                  jitter=2, blur_every=8, blur_sigma=0.5, value_range=(0.0, 255.0), seed=0,
                  batch_size=64):
    """One gradient-ascent image per filter of ``layer``: ``argmax_I mean_ij A_f(I)_ij -
    l2 * mean((I - centre) / range)²`` (module docstring).

    Args:
        model: a Keras model taking images (nested sub-models are read through).
        layer: the conv layer (name or path; default: the top conv layer, as :func:`explain`).
        filters: which filters (default: all), in that order.
        steps: ascent steps.
        learning_rate: step size as a fraction of the value range (normalised gradients).
        l2: weight of the penalty on the distance from mid-range (eq. 5's lambda).
        jitter: largest random shift (pixels) before each step; 0 for none.
        blur_every: blur every this many steps (Gaussian, ``blur_sigma`` px); 0 for never.
        value_range: (low, high) of the model's input (default raw pixels 0-255).
        seed: seed of the start images and the jitter.
        batch_size: images optimised at once.

    Returns:
        float32 [len(filters), H, W, C] images in ``value_range``.

    Example:
        >>> imgs = filter_images(model, "top_conv", filters=[3, 7], seed=0)
    """
    from keras_icnn.explain import default_layer

    low, high = _settings(steps, learning_rate, l2, jitter, blur_every, blur_sigma, value_range,
                          batch_size)
    flat = graph.flatten(model, "filter_images")
    name = graph.flat_layer_name(model, layer, "filter_images") if layer else default_layer(flat)
    maps = graph.layer_output(flat, name)
    if len(getattr(maps, "shape", ())) != 4:
        raise ValueError(f"filter_images: `layer` must have 4D maps [batch, h, w, filters]. "
                         f"Received: layer={layer or name!r} with output shape {maps.shape}")
    num = int(maps.shape[-1])
    chosen = np.arange(num) if filters is None else _indices(filters, num, "filters",
                                                              f"of {name!r}'s filters")
    probe = keras.Model(flat.inputs[0], maps)
    which = tf.constant(chosen.astype(np.int32))

    def objective(x, index):
        a = tf.cast(probe(x, training=False), tf.float32)
        per_filter = tf.reduce_mean(a, axis=[1, 2])  # [b, F]
        return tf.gather(per_filter, tf.gather(which, index), axis=1, batch_dims=1)

    shape = [int(d) for d in flat.inputs[0].shape[1:]]
    return _ascend(objective, shape, chosen, int(steps), float(learning_rate), float(l2),
                   int(jitter), int(blur_every), float(blur_sigma), low, high, int(seed),
                   int(batch_size))


def class_images(model, classes=None, steps=256, learning_rate=0.02, l2=0.01, jitter=2,
                 blur_every=8, blur_sigma=0.5, value_range=(0.0, 255.0), seed=0, batch_size=64):
    """One gradient-ascent image per class: eq. 5 on the class *logit* ``S_c`` (a softmax head
    is read through, as everywhere). Arguments as :func:`filter_images`.

    Example:
        >>> imgs = class_images(model, classes=[0, 1], steps=64)
    """
    low, high = _settings(steps, learning_rate, l2, jitter, blur_every, blur_sigma, value_range,
                          batch_size)
    logits = heads.as_logits(model, "class_images")
    num = int(logits.outputs[0].shape[-1])
    chosen = np.arange(num) if classes is None else _indices(classes, num, "classes",
                                                              "of the model's classes")
    which = tf.constant(chosen.astype(np.int32))

    def objective(x, index):
        z = tf.cast(logits(x, training=False), tf.float32)
        return tf.gather(z, tf.gather(which, index), axis=1, batch_dims=1)

    shape = [int(d) for d in logits.inputs[0].shape[1:]]
    return _ascend(objective, shape, chosen, int(steps), float(learning_rate), float(l2),
                   int(jitter), int(blur_every), float(blur_sigma), low, high, int(seed),
                   int(batch_size))
