"""The explainer network's architecture (Zhang et al., "Unsupervised Learning of Neural
Networks to Explain Neural Networks", §3): what it reads, what it reconstructs, its layers.

The explainer reads the performer's feature map at ``target_layer`` and stands
in parallel to the performer's top conv layer (the last conv above it). Its
encoder has an interpretable track (two ``InterpretableConv``: conv-interp-1,
conv-interp-2, each ReLU + mask) and an ordinary track (conv + ReLU), each
followed by a ``NormLayer``; ``x_enc = p * x_interp + (1 - p) * x_ordin`` with
``p = sigmoid(p_scale * w_p)``.

The decoder reconstructs the performer's *hidden* features above the top conv
(:func:`plan_head`): for a head with hidden FC layers (fc6/fc7 of a VGG or
AlexNet) it is a trainable copy of the head up to the last hidden FC layer,
each hidden FC output a reconstruction target; for a head with no hidden FC
(top conv -> global pooling -> classifier, as keras.applications' VGG-16 with a
new classifier) it is the head up to the pooling plus a learnable per-channel
:class:`ChannelScale`, and the pooled feature is the target. The classifier and
whatever follows the last target are never copied: they stay the performer's,
frozen, and classify the reconstruction (``ExplainerDistiller.classify``).

Training lives in :mod:`keras_icnn.models.distiller`.
"""

import dataclasses
import math

import keras
import tensorflow as tf

from keras_icnn.layers.interpretable_conv import InterpretableConv
from keras_icnn.layers.norm_layer import NormLayer


def _chain(layers):
    """Every layer has one inbound node with one input tensor (a head the explainer can cut)."""
    return all(len(layer._inbound_nodes) == 1 and len(layer._inbound_nodes[0].input_tensors) == 1
               for layer in layers)


def split_performer(performer, target_layer):
    """The layer the explainer stands in for above ``target_layer`` and the head above it.

    A plain performer (VGG, AlexNet, MobileNet's last conv): the top conv, the last conv layer
    above ``target_layer``, with a chain of single-input layers after it. A residual performer
    (ResNet; beyond the paper, issue 48): the last residual block, skip included, ending at the
    first layer after which the head is a chain (its merge's activation, e.g. ResNet-50's
    ``conv5_block3_out``); ``target_layer`` must be that block's input (everything between
    them reads only it), and the explainer reconstructs the block's output.

    Returns:
        ``(top, head_layers)``: ``top`` the layer whose output the explainer stands in for,
        ``head_layers`` the layers after it, in order (pooling/flatten, dense, dropout, ...,
        classifier).

    Raises:
        ValueError: no such layer, no conv above it, a block that reads more than
            ``target_layer``, or a head that does not end in a Dense classifier.
    """
    names = [layer.name for layer in performer.layers]
    if target_layer not in names:
        raise ValueError(f"No layer named {target_layer!r} in performer {performer.name!r}. "
                         f"Layers: {names}")
    start = names.index(target_layer)
    convs = [i for i in range(start + 1, len(names))
             if isinstance(performer.layers[i], keras.layers.Conv2D)]
    if not convs:
        raise ValueError(f"The performer has no conv layer after {target_layer!r}: the explainer "
                         "stands in for the top conv layer above its target layer")
    top = convs[-1]
    while top < len(names) - 1 and not _chain(performer.layers[top + 1:]):
        top += 1  # a residual performer: the last block ends where the head becomes a chain
    if top != convs[-1]:
        # The block's output is its merge's activation (ResNet's ReLU after the Add).
        while top + 1 < len(names) and isinstance(performer.layers[top + 1],
                                                  (keras.layers.ReLU, keras.layers.Activation)):
            top += 1
        try:
            keras.Model(performer.get_layer(target_layer).output, performer.layers[top].output)
        except ValueError as err:
            raise ValueError(
                f"The explainer stands in for the performer's last residual block (up to "
                f"{names[top]!r}); its input must be {target_layer!r}, but the block reads "
                f"other layers too: pick the block's input, the layer right before its first "
                f"conv and its skip connection ({err})") from None
    head = performer.layers[top + 1:]
    classifier = head[-2] if len(head) >= 2 and is_softmax_layer(head[-1]) else (
        head[-1] if head else None)
    if not isinstance(classifier, keras.layers.Dense):
        raise ValueError("The performer must end with a Dense classifier after its top conv "
                         "(a softmax as its activation or as one more layer is read through)")
    return performer.layers[top], head


def source_conv(performer, target_layer, top):
    """The conv layer conv-interp-1 is initialised from: ``top`` itself for a plain performer,
    the last conv of the block for a residual one."""
    if isinstance(top, keras.layers.Conv2D):
        return top
    names = [layer.name for layer in performer.layers]
    convs = [layer for layer in performer.layers[names.index(target_layer) + 1:
                                                 names.index(top.name)]
             if isinstance(layer, keras.layers.Conv2D)]
    return convs[-1]


def is_softmax_layer(layer):
    """A ``Softmax`` layer or ``Activation("softmax")``: a performer's probabilities, which
    the explainer reads through to the logits before it."""
    return isinstance(layer, keras.layers.Softmax) or (
        isinstance(layer, keras.layers.Activation)
        and getattr(layer.activation, "__name__", "") == "softmax")


@dataclasses.dataclass(frozen=True)
class HeadPlan:
    """How the explainer splits the performer's head (see :func:`plan_head`).

    Attributes:
        top: the performer's top conv layer (the explainer stands in for it).
        head: the performer's layers after the top conv, in order.
        decoder_end: ``head[:decoder_end]`` is copied into the decoder;
            ``head[decoder_end:]`` (the classifier, with any dropout before it)
            stays the performer's and classifies the reconstruction.
        targets: indices into ``head`` whose performer outputs are reconstructed.
        pooled: True when the head has no hidden FC layer: the target is the
            pooled feature, behind a learnable :class:`ChannelScale`.
    """

    top: object
    head: tuple
    decoder_end: int
    targets: tuple
    pooled: bool

    @property
    def decoder_layers(self):
        return self.head[:self.decoder_end]

    @property
    def classifier_layers(self):
        return self.head[self.decoder_end:]


def _rank(layer):
    return len(layer.output.shape)


def plan_head(performer, target_layer):
    """Which performer features the decoder reconstructs and what classifies them.

    * Hidden FC layers (every Dense layer of the head but the classifier):
      their outputs are the targets (the paper's fc6/fc7); the decoder copies
      the head up to the last of them.
    * No hidden FC: the first layer that turns the maps into a vector (global
      pooling or flatten) gives the target; layers before it are copied
      (BatchNorm etc. become trainable decoder layers), and a
      :class:`ChannelScale` after it lets the decoder restore the performer's scale.

    The classifier is never a target and never copied.

    Example:
        >>> plan = plan_head(vgg_backbone((64, 64, 3), 6), "block3_pool")
        >>> [plan.head[i].name for i in plan.targets], [l.name for l in plan.classifier_layers]
        (['fc1'], ['dropout', 'logits'])
    """
    top, head = split_performer(performer, target_layer)
    head = tuple(head)
    # The classifier is the last Dense (a softmax layer after it is not part of the body).
    body = head[:-1] if is_softmax_layer(head[-1]) else head
    hidden = [i for i, layer in enumerate(body[:-1]) if isinstance(layer, keras.layers.Dense)]
    if hidden:
        return HeadPlan(top, head, hidden[-1] + 1, tuple(hidden), False)
    vectors = [i for i, layer in enumerate(body[:-1]) if _rank(layer) == 2]
    if not vectors:
        raise ValueError(
            "The performer's head must turn its top conv's maps into a vector (global pooling "
            f"or flatten) before its classifier; head: {[layer.name for layer in head]}")
    pool = vectors[0]
    return HeadPlan(top, head, pool + 1, (pool,), True)


@keras.saving.register_keras_serializable(package="keras_icnn")
class ChannelScale(keras.layers.Layer):
    """``y = x * gamma`` with a learnable per-channel ``gamma`` (initialised to ones).

    The last decoder layer of an explainer whose performer has no hidden FC
    layer: the norm-layers take the magnitude out of ``x_enc``; this scale lets
    the decoder give the pooled reconstruction the performer's back.

    Example:
        >>> ChannelScale()(keras.ops.ones((2, 4))).shape
        (2, 4)
    """

    def build(self, input_shape):
        self.gamma = self.add_weight(name="gamma", shape=(int(input_shape[-1]),),
                                     initializer="ones")
        self.built = True

    def call(self, inputs):
        return inputs * tf.cast(self.gamma, inputs.dtype)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)


DEFAULT_P_SCALE = 10.0
# Issue 26: without a floor a dying channel's alpha decays to ~0 and blows up the
# reconstruction; 0.1 was at least as good as 0 and 0.01 on both validation splits.
DEFAULT_ALPHA_FLOOR = 0.1


@keras.saving.register_keras_serializable(package="keras_icnn")
class Explainer(keras.Model):
    """The explainer network (encoder with two tracks + decoder).

    Args:
        filters: D, filters of every explainer conv layer (the performer's top conv's).
        num_classes: categories of the interpretable filters (the performer's classes).
        head_configs: serialized layers of the decoder (from :func:`decoder_configs`:
            the performer's head up to its last hidden FC layer, or up to its
            pooling followed by a :class:`ChannelScale`).
        target_indices: which decoder layers' outputs are reconstruction targets.
        norm_momentum: momentum of the two NormLayers.
        p_init: initial ``w_p``.
        p_scale: ``p = sigmoid(p_scale * w_p)`` (10; equivalent to a larger learning
            rate for ``w_p``).
        interp_kwargs: extra ``InterpretableConv`` options (``gradient``, ``mu``, ...).
        alpha_floor: the two norm-layers divide by at least this fraction of their
            mean ``alpha`` (:class:`~keras_icnn.layers.NormLayer`; default 0.1, chosen
            on two validation splits in issue 26; 0 is the paper's x / alpha).

    Call arguments:
        inputs: the performer's ``target_layer`` feature map.

    Returns (call):
        The list of reconstructed hidden features of the performer (never its
        logits: ``ExplainerDistiller.classify`` feeds the last one to the
        performer's own frozen classifier).

    Example:
        >>> explainer, distiller = keras_icnn.models.build_explainer(performer, "block3_pool")
        >>> distiller.compile(keras.optimizers.Adam(1e-3))
        >>> distiller.fit(images, epochs=3)          # no labels needed
        >>> distiller.explain(images)["part_locations"]

    Reference:
        Zhang et al. Unsupervised Learning of Neural Networks to Explain Neural Networks, §3.
    """

    def __init__(self, filters, num_classes, head_configs, target_indices, norm_momentum=0.9,
                 p_init=0.0, p_scale=DEFAULT_P_SCALE, interp_kwargs=None, alpha_floor=DEFAULT_ALPHA_FLOOR,
                 **kwargs):
        super().__init__(**kwargs)
        self.filters, self.num_classes = int(filters), int(num_classes)
        self.head_configs = list(head_configs)
        self.target_indices = [int(i) for i in target_indices]
        self.norm_momentum, self.p_init = float(norm_momentum), float(p_init)
        self.p_scale, self.alpha_floor = float(p_scale), float(alpha_floor)
        self.interp_kwargs = dict(interp_kwargs or {})
        common = dict(num_classes=self.num_classes, loss_weight=0.0, **self.interp_kwargs)
        self.conv_interp_1 = InterpretableConv(self.filters, 3, name="conv_interp_1", **common)
        self.conv_interp_2 = InterpretableConv(self.filters, 3, name="conv_interp_2", **common)
        self.conv_ordin = keras.layers.Conv2D(self.filters, 3, padding="same", activation="relu",
                                              name="conv_ordin")
        self.norm_interp = NormLayer(self.norm_momentum, alpha_floor=self.alpha_floor,
                                     name="norm_interp")
        self.norm_ordin = NormLayer(self.norm_momentum, alpha_floor=self.alpha_floor,
                                    name="norm_ordin")
        self.decoder = [keras.layers.deserialize(c) for c in self.head_configs]
        self.w_p = self.add_weight(name="w_p", shape=(), autocast=False,
                                   initializer=keras.initializers.Constant(self.p_init))
        # Running mean magnitude of the performer's top-conv channels (what the norm-layers
        # divide out): the decoder sees x_enc * alpha, on the performer's scale. Only its
        # statistic is used; the distiller updates it with the norm-layers' rule.
        self.norm_performer = NormLayer(self.norm_momentum, name="norm_performer")

    @property
    def p(self):
        return tf.sigmoid(self.p_logit)

    @property
    def p_logit(self):
        """``p_scale * w_p``: the scale lets Adam move p at a useful speed (an Adam step
        is about the learning rate whatever the gradient, so w_p alone crawls)."""
        return self.p_scale * tf.convert_to_tensor(self.w_p)

    def build(self, input_shape):
        input_shape = tuple(input_shape)
        if len(input_shape) != 4:
            raise ValueError("The explainer reads a 4D feature map [batch, h, w, channels]. "
                             f"Received: input_shape={input_shape}")
        # conv_relu is called directly (not through __call__): build these two by hand.
        self.conv_interp_1.build(input_shape)
        self.conv_interp_2.build(input_shape[:-1] + (self.filters,))
        self.norm_performer.build(input_shape[:-1] + (self.filters,))
        self.call(tf.zeros((1,) + input_shape[1:]))  # builds every other sublayer
        self.built = True

    @property
    def performer_alpha(self):
        """The running ``alpha`` of the performer's top-conv maps (zeros before training)."""
        return self.norm_performer.alpha

    def encode(self, inputs, labels=None, training=False, selected=None):
        """Both tracks: dict with pre-mask maps ``x1``, ``x2``, normalised ``interp`` and
        ``ordin``, ``p`` and ``enc``. In training, updates the filters' target classes
        (given ``labels``) and the norm-layers' ``alpha`` (on the ``selected`` images)."""
        x1 = self.conv_interp_1.conv_relu(inputs)
        if training and labels is not None:
            self.conv_interp_1.update_targets(x1, labels)
        h = self.conv_interp_1.part_mask(x1)
        x2 = self.conv_interp_2.conv_relu(h)
        if training and labels is not None:
            self.conv_interp_2.update_targets(x2, labels)
        interp = self.norm_interp(self.conv_interp_2.part_mask(x2), training=training,
                                  selected=selected)
        ordin = self.norm_ordin(self.conv_ordin(inputs), training=training, selected=selected)
        p = tf.cast(self.p, interp.dtype)
        return {"x1": x1, "x2": x2, "interp": interp, "ordin": ordin, "p": p,
                "enc": p * interp + (1.0 - p) * ordin}

    def rescale(self, enc):
        """``x_enc * performer_alpha`` per channel (identity where alpha is still 0)."""
        alpha = tf.convert_to_tensor(self.performer_alpha)
        alpha = tf.where(alpha > 0, alpha, tf.ones_like(alpha))
        return enc * tf.cast(alpha, enc.dtype)

    def decode(self, enc, training=False):
        outputs, x = [], self.rescale(enc)
        for i, layer in enumerate(self.decoder):
            x = layer(x, training=training)
            if i in self.target_indices:
                outputs.append(x)
        return outputs

    def call(self, inputs, training=False):
        return self.decode(self.encode(inputs, training=training)["enc"], training=training)

    def get_config(self):
        config = super().get_config()
        config.update({"filters": self.filters, "num_classes": self.num_classes,
                       "head_configs": self.head_configs, "target_indices": self.target_indices,
                       "norm_momentum": self.norm_momentum, "p_init": self.p_init,
                       "p_scale": self.p_scale, "alpha_floor": self.alpha_floor,
                       "interp_kwargs": self.interp_kwargs})
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config.setdefault("alpha_floor", 0.0)  # saved before the floor existed: as they were
        return cls(**config)


def decoder_configs(plan):
    """``(configs, target_indices)`` of the decoder for a :class:`HeadPlan`."""
    configs = [keras.layers.serialize(layer) for layer in plan.decoder_layers]
    targets = list(plan.targets)
    if plan.pooled:
        configs.append(keras.layers.serialize(ChannelScale(name="channel_scale")))
        targets = [len(configs) - 1]
    return configs, targets


def logit_p(p, p_scale=DEFAULT_P_SCALE):
    """``w_p`` giving the mixing weight ``p`` (in (0, 1)) when ``p = sigmoid(p_scale w_p)``."""
    if not 0.0 < float(p) < 1.0:
        raise ValueError(f"`initial_p` must lie in (0, 1). Received: initial_p={p}")
    if not float(p_scale) > 0.0:
        raise ValueError(f"`p_scale` must be > 0. Received: p_scale={p_scale}")
    return math.log(p / (1.0 - p)) / float(p_scale)
