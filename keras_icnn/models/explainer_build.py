"""Building an explainer for a performer: :func:`build_explainer` (the :class:`Explainer` with
weights copied from the performer, and its :class:`ExplainerDistiller`) and
:func:`p_scale_for`."""
import keras
import numpy as np

from keras_icnn.models import graph
from keras_icnn.models.distiller import ExplainerDistiller
from keras_icnn.models.explainer import (
    DEFAULT_ALPHA_FLOOR, DEFAULT_P_SCALE, Explainer, decoder_configs, logit_p, plan_head,
    source_conv)


def p_scale_for(lr, p_lr):
    """The ``p_scale`` under which Adam at ``lr`` moves p as Adam at ``p_lr`` would
    with the default scale: ``DEFAULT_P_SCALE * p_lr / lr`` (Adam is invariant to a
    constant reparametrisation of a variable, up to its epsilon).

    Example:
        >>> p_scale_for(1e-4, 1e-3)  # the network at 1e-4, p as fast as at 1e-3
        100.0
    """
    lr, p_lr = float(lr), float(p_lr)
    if not (lr > 0.0 and p_lr > 0.0):
        raise ValueError(f"learning rates must be > 0. Received: lr={lr}, p_lr={p_lr}")
    return DEFAULT_P_SCALE * p_lr / lr


def silent_filters(model, layer_name, images):
    """bool [F]: the filters of ``layer_name`` with no positive unit on any of ``images`` (an
    array [N, H, W, 3] or an iterable of such batches, or of ``(images, ...)`` tuples): after
    a ReLU they are zero everywhere, and a ReLU that never fires gets no gradient.

    Example:
        >>> silent_filters(performer, "top_conv", x_train[:256]).mean()  # share of dead filters
    """
    probe = keras.Model(model.inputs, model.get_layer(layer_name).output)
    batches = [images] if hasattr(images, "shape") else images
    peak = None
    for batch in batches:
        if isinstance(batch, (tuple, list)):
            batch = batch[0]
        if isinstance(batch, dict):
            batch = batch["image"]
        maps = np.asarray(probe.predict_on_batch(np.asarray(batch, np.float32)), np.float32)
        top = maps.max(axis=(0, 1, 2))
        peak = top if peak is None else np.maximum(peak, top)
    if peak is None:
        raise ValueError("`images` holds no image to probe the filters with")
    return peak <= 0.0


def build_explainer(performer, target_layer, copy_weights=True, norm_momentum=0.9, p_init=0.0,
                    interp_kwargs=None, initial_p=None, p_scale=DEFAULT_P_SCALE,
                    alpha_floor=DEFAULT_ALPHA_FLOOR, single_category=False, positive_class=1,
                    probe_images=None, **distiller_kwargs):
    """An :class:`Explainer` for ``performer`` at ``target_layer`` and its distiller.

    conv-interp-1 starts from the performer's top conv weights (a residual performer: the
    explainer stands in for its last block, reconstructs the block's output, skip included,
    and conv-interp-1 starts from the block's last conv when the shapes agree) and the decoder
    from the performer's head up to the last reconstructed layer (both when
    ``copy_weights``); the performer itself is frozen and never changed: its
    classifier stays its own and classifies the reconstruction.

    Args:
        performer: a functional Keras classifier whose head above its top conv
            is a chain of layers ending in a Dense classifier (a ``Sequential`` or a
            model with nested sub-models is read through a flat copy with its weights).
        target_layer: the layer whose maps the explainer reads (below the top conv): a
            unique name or a path (``"vgg16/block5_conv2"``).
        initial_p: the starting mixing weight p in (0, 1) (overrides ``p_init``,
            the raw ``w_p``).
        p_scale: ``p = sigmoid(p_scale * w_p)``. An Adam step moves ``w_p`` by
            about the learning rate whatever the gradient's size, so ``p``'s logit
            moves ``p_scale * lr`` per step: with ``lr`` 1e-4 and the default 10, p
            can travel at most 0.76 in logit over 760 steps (0.5 -> 0.68). Scale
            it with the learning rate to keep p's speed
            (:func:`p_scale_for`).
        alpha_floor: the norm-layers divide by at least this fraction of their
            mean ``alpha`` (:class:`~keras_icnn.layers.NormLayer`; default 0.1; 0 is
            the paper's rule).
        probe_images: a few training images (or a batch iterable of them): the performer's
            top-conv filters silent on all of them (no positive unit: a dead ReLU, which
            no gradient can revive) are *not* copied into conv-interp-1, whose own fresh
            initialisation they keep; ``None`` copies every filter (the paper's rule).
            A performer trained from scratch can have most of its top filters silent
            (57% on our birds): copied, they start conv-interp-1 dead.
        single_category: the performer classifies one category (``positive_class``)
            against the rest: every interpretable filter belongs to that category
            and the norm-layers' alpha is estimated on predicted positives.
        **distiller_kwargs: :class:`ExplainerDistiller` options (``eta``,
            ``filter_fraction``, ``objective``, ...).

    Returns:
        ``(explainer, distiller)``; compile and ``fit`` the distiller.

    Example:
        >>> explainer, distiller = build_explainer(performer, "block3_pool", initial_p=0.5)
        >>> distiller.compile(keras.optimizers.Adam(1e-3))
        >>> distiller.fit(train_images, epochs=20)
    """
    if isinstance(performer, keras.Sequential) or graph.has_sub_models(performer):
        # A nested performer (a keras.applications base in a Sequential): read through a flat
        # copy with its weights; the performer is frozen, so nothing needs its layer objects.
        target_layer = graph.flat_layer_name(performer, target_layer, "build_explainer")
        performer = graph.flat_copy(performer, "build_explainer")
    plan = plan_head(performer, target_layer)
    top = plan.top
    in_shape = tuple(performer.get_layer(target_layer).output.shape[1:])
    top_shape = tuple(top.output.shape[1:])
    if in_shape[:2] != top_shape[:2]:
        raise ValueError(
            f"The explainer keeps the spatial size of {target_layer!r} {in_shape[:2]}, but the "
            f"performer's top conv {top.name!r} has {top_shape[:2]}: pick the layer right below "
            "the top conv (same map size).")
    configs, targets = decoder_configs(plan)
    num_classes = int(performer.outputs[0].shape[-1])
    if initial_p is not None:
        p_init = logit_p(initial_p, p_scale)
    interp_kwargs = dict(interp_kwargs or {})
    if single_category:
        interp_kwargs.update(single_category=True, positive_class=int(positive_class))
    explainer = Explainer(int(top_shape[-1]), num_classes, configs, targets,
                          norm_momentum=norm_momentum, p_init=p_init, p_scale=p_scale,
                          alpha_floor=alpha_floor,
                          interp_kwargs=interp_kwargs,
                          name=f"{performer.name}_explainer")
    explainer.build((None,) + in_shape)
    if copy_weights:
        source = source_conv(performer, target_layer, top)
        conv = explainer.conv_interp_1
        if tuple(source.kernel.shape) == tuple(conv.kernel.shape):
            # A residual block's conv is followed by BatchNorm and the skip: "silent" is not
            # defined there, so every filter of it is copied.
            copy = (~silent_filters(performer, top.name, probe_images)
                    if probe_images is not None and source is top
                    else np.ones(int(source.filters), bool))
            conv.kernel.assign(np.where(copy, np.asarray(source.kernel), np.asarray(conv.kernel)))
            if source.use_bias:
                conv.bias.assign(np.where(copy, np.asarray(source.bias), np.asarray(conv.bias)))
            explainer.copied_filters = int(copy.sum())
        for mine, theirs in zip(explainer.decoder, plan.decoder_layers):
            if theirs.weights:
                mine.set_weights(theirs.get_weights())
    distiller = ExplainerDistiller(performer, explainer, target_layer, **distiller_kwargs)
    return explainer, distiller
