"""Explainer networks (Zhang et al., "Unsupervised Learning of Neural Networks to Explain
Neural Networks"): distil a frozen performer's features into interpretable part features.

The explainer reads the performer's feature map at ``target_layer`` and stands
in parallel to the performer's top conv layer (the first conv after it). Its
encoder has an interpretable track (two ``InterpretableConv``: conv-interp-1,
conv-interp-2, each ReLU + mask) and an ordinary track (conv + ReLU), each
followed by a ``NormLayer``; ``x_enc = p * x_interp + (1 - p) * x_ordin`` with
``p = sigmoid(p_scale * w_p)``. The decoder copies the performer's head (its pooling /
flatten and dense layers) and reconstructs the performer's upper features:
the output of every dense layer of its head (hidden FC layers and logits).
The performer's pooling is applied to ``x_enc`` (both tracks must share a
shape to be mixed).
"""

import math

import keras
import numpy as np
import tensorflow as tf

from keras_icnn.layers.interpretable_conv import InterpretableConv
from keras_icnn.layers.norm_layer import NormLayer


def split_performer(performer, target_layer):
    """The performer's top conv after ``target_layer`` and its head as a layer chain.

    Returns:
        ``(top_conv, head_layers)``: ``head_layers`` are the layers after the
        top conv, in order (pooling/flatten, dense, dropout, ..., classifier).
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
    head = performer.layers[top + 1:]
    for layer in head:
        if len(layer._inbound_nodes) != 1 or len(layer._inbound_nodes[0].input_tensors) != 1:
            raise ValueError("The performer's head after its top conv must be a chain of "
                             f"single-input layers; layer {layer.name!r} is not")
    if not head or not isinstance(head[-1], keras.layers.Dense):
        raise ValueError("The performer must end with a Dense classifier after its top conv")
    return performer.layers[top], head


def reconstruction_targets(head):
    """Indices into ``head`` whose outputs the decoder reconstructs: every Dense layer.

    For a VGG/AlexNet-style head that is the hidden FC outputs and the logits
    (the paper's fc6/fc7 pair); for a global-pool performer, the logits. The
    pooled feature itself is not a target: between the norm-layers and it
    there is no learnable layer to restore the performer's scale.
    """
    return [i for i, layer in enumerate(head) if isinstance(layer, keras.layers.Dense)]


DEFAULT_P_SCALE = 10.0


@keras.saving.register_keras_serializable(package="keras_icnn")
class Explainer(keras.Model):
    """The explainer network (encoder with two tracks + decoder).

    Args:
        filters: D, filters of every explainer conv layer (the performer's top conv's).
        num_classes: categories of the interpretable filters (the performer's classes).
        head_configs: serialized layers of the decoder (the performer's head
            up to its last reconstruction target, from :func:`build_explainer`).
        target_indices: which decoder layers' outputs are reconstruction targets.
        norm_momentum: momentum of the two NormLayers.
        p_init: initial ``w_p``.
        p_scale: ``p = sigmoid(p_scale * w_p)`` (10; equivalent to a larger learning
            rate for ``w_p``).
        interp_kwargs: extra ``InterpretableConv`` options (``gradient``, ``mu``, ...).

    Call arguments:
        inputs: the performer's ``target_layer`` feature map.

    Returns (call):
        The list of reconstructed upper features.

    Example:
        >>> explainer, distiller = keras_icnn.models.build_explainer(performer, "block3_pool")
        >>> distiller.compile(keras.optimizers.Adam(1e-3))
        >>> distiller.fit(images, epochs=3)          # no labels needed
        >>> distiller.explain(images)["part_locations"]

    Reference:
        Zhang et al. Unsupervised Learning of Neural Networks to Explain Neural Networks, §3.
    """

    def __init__(self, filters, num_classes, head_configs, target_indices, norm_momentum=0.9,
                 p_init=0.0, p_scale=DEFAULT_P_SCALE, interp_kwargs=None, **kwargs):
        super().__init__(**kwargs)
        self.filters, self.num_classes = int(filters), int(num_classes)
        self.head_configs = list(head_configs)
        self.target_indices = [int(i) for i in target_indices]
        self.norm_momentum, self.p_init = float(norm_momentum), float(p_init)
        self.p_scale = float(p_scale)
        self.interp_kwargs = dict(interp_kwargs or {})
        common = dict(num_classes=self.num_classes, loss_weight=0.0, **self.interp_kwargs)
        self.conv_interp_1 = InterpretableConv(self.filters, 3, name="conv_interp_1", **common)
        self.conv_interp_2 = InterpretableConv(self.filters, 3, name="conv_interp_2", **common)
        self.conv_ordin = keras.layers.Conv2D(self.filters, 3, padding="same", activation="relu",
                                              name="conv_ordin")
        self.norm_interp = NormLayer(self.norm_momentum, name="norm_interp")
        self.norm_ordin = NormLayer(self.norm_momentum, name="norm_ordin")
        self.decoder = [keras.layers.deserialize(c) for c in self.head_configs]
        self.w_p = self.add_weight(name="w_p", shape=(), autocast=False,
                                   initializer=keras.initializers.Constant(self.p_init))
        # Running mean magnitude of the performer's top-conv channels (what the norm-layers
        # divide out): the decoder sees x_enc * performer_alpha, on the performer's scale.
        self.performer_alpha = self.add_weight(
            name="performer_alpha", shape=(self.filters,), initializer="zeros", trainable=False,
            aggregation="mean", autocast=False)

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
        self.call(tf.zeros((1,) + input_shape[1:]))  # builds every other sublayer
        self.built = True

    def encode(self, inputs, labels=None, training=False):
        """Both tracks: dict with pre-mask maps ``x1``, ``x2``, normalised ``interp`` and
        ``ordin``, ``p`` and ``enc``. Updates target classes when training with labels."""
        x1 = self.conv_interp_1.conv_relu(inputs)
        if training and labels is not None:
            self.conv_interp_1.update_targets(x1, labels)
        h = self.conv_interp_1.part_mask(x1)
        x2 = self.conv_interp_2.conv_relu(h)
        if training and labels is not None:
            self.conv_interp_2.update_targets(x2, labels)
        interp = self.norm_interp(self.conv_interp_2.part_mask(x2), training=training)
        ordin = self.norm_ordin(self.conv_ordin(inputs), training=training)
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
                       "p_scale": self.p_scale,
                       "interp_kwargs": self.interp_kwargs})
        return config

    @classmethod
    def from_config(cls, config):
        return cls(**config)


def _norm_per_filter(g):
    return tf.sqrt(tf.reduce_sum(tf.square(tf.cast(g, tf.float32)), axis=[0, 1, 2]))


@keras.saving.register_keras_serializable(package="keras_icnn")
class ExplainerDistiller(keras.Model):
    """Trains an :class:`Explainer` over a frozen performer with ``fit`` (no labels).

    Loss per batch: ``sum_l lambda_l * rec_l - eta * log p + sum_f lambda_f Loss_f``:

    * ``rec_l = mean_b ||x_l - x_l*||^2 / mean_b ||x_l*||^2`` (scale-free; the
      paper's ``5e4 / E||x*||`` assumes MatConvNet sums), ``lambda_l`` = ``recon_weight``.
    * ``-eta * log p`` pushes information through the interpretable track.
    * ``lambda_f`` by the paper's online gradient-ratio rule:
      ``lambda_f = c / N * E||d rec / d x_f|| / E||d Loss_f / d x_f||`` per filter
      and batch (``c = filter_fraction``, ``N`` the epoch when
      ``fraction_decay``), for conv-interp-1 and conv-interp-2.
    * Appendix trick (``mix_trick``, default off): conv-interp-2's filter loss
      is on ``p * x_f + (1 - p) * stop_gradient(x_ordin_f)``, so it trains p
      and the interpretable filters but never the ordinary track. Off by
      default: its gradient on p is not bounded by the gradient-ratio rule and
      drove p to 0.999 with a 0.53 Δerror (``benchmarks/tune_defaults.py``).

    Filter categories come from the performer's predictions. Metrics:
    ``loss`` (``sum_l lambda_l rec_l - eta log p``), ``rec_<i>`` per
    reconstructed layer, ``p``, ``filter_loss`` (unweighted ``sum_f Loss_f``).
    """

    def __init__(self, performer, explainer, target_layer, eta=1.0, recon_weight=1.0,
                 filter_fraction=0.1, fraction_decay=False, mix_trick=False, **kwargs):
        super().__init__(**kwargs)
        self.performer, self.explainer = performer, explainer
        self.target_layer = target_layer
        self.eta, self.recon_weight = float(eta), float(recon_weight)
        self.filter_fraction, self.fraction_decay = float(filter_fraction), bool(fraction_decay)
        self.mix_trick = bool(mix_trick)
        performer.trainable = False
        top, head = split_performer(performer, target_layer)
        self.top_layer_name = top.name
        targets = reconstruction_targets(head)
        outputs = ([performer.get_layer(target_layer).output, top.output]
                   + [head[i].output for i in targets] + [performer.outputs[0]])
        self._probe = keras.Model(performer.inputs[0], outputs, name="performer_probe")
        self.epoch = self.add_weight(name="epoch", shape=(), initializer="ones", trainable=False,
                                     aggregation="only_first_replica", autocast=False)
        self.rec_trackers = [keras.metrics.Mean(name=f"rec_{i}") for i in range(len(targets))]
        self.p_tracker = keras.metrics.Mean(name="p")
        self.filter_tracker = keras.metrics.Mean(name="filter_loss")
        self.loss_tracker = keras.metrics.Mean(name="loss")

    def performer_outputs(self, images, with_top=False):
        """(target features, reconstruction targets, logits) of the frozen performer
        (and its top-conv maps first when ``with_top``)."""
        out = self._probe(images, training=False)
        if with_top:
            return out[1], out[0], out[2:-1], out[-1]
        return out[0], out[2:-1], out[-1]

    def _reconstruction(self, recon, targets):
        terms = []
        for r, t in zip(recon, targets):
            r = tf.reshape(tf.cast(r, tf.float32), [tf.shape(r)[0], -1])
            t = tf.reshape(tf.cast(t, tf.float32), [tf.shape(t)[0], -1])
            scale = tf.stop_gradient(tf.reduce_mean(tf.reduce_sum(tf.square(t), -1))) + 1e-12
            terms.append(tf.reduce_mean(tf.reduce_sum(tf.square(r - t), -1)) / scale)
        return terms

    def call(self, images, training=False):
        feats, _, _ = self.performer_outputs(images)
        return self.explainer(feats, training=training)

    def train_step(self, data):
        images = data[0] if isinstance(data, (tuple, list)) else data
        top, feats, targets, logits = self.performer_outputs(images, with_top=True)
        feats, targets = tf.stop_gradient(feats), [tf.stop_gradient(t) for t in targets]
        labels = tf.argmax(logits, axis=-1, output_type=tf.int32)
        ex = self.explainer
        batch_alpha = tf.reduce_mean(tf.reduce_sum(tf.nn.relu(tf.cast(top, tf.float32)), [1, 2]), 0)
        old = tf.convert_to_tensor(ex.performer_alpha)
        momentum = ex.norm_momentum
        ex.performer_alpha.assign(tf.where(tf.reduce_any(old > 0),
                                           momentum * old + (1.0 - momentum) * batch_alpha,
                                           batch_alpha))
        with tf.GradientTape(persistent=True) as tape:
            parts = ex.encode(feats, labels=labels, training=True)
            x1, x2 = parts["x1"], parts["x2"]
            rec_terms = self._reconstruction(ex.decode(parts["enc"], training=True), targets)
            rec = self.recon_weight * tf.add_n(rec_terms)
            x2_loss_input = x2
            if self.mix_trick:
                p = tf.cast(parts["p"], x2.dtype)
                x2_loss_input = p * x2 + (1.0 - p) * tf.stop_gradient(parts["ordin"])
            l1 = ex.conv_interp_1.filter_loss_per_filter(x1, labels)
            l2 = ex.conv_interp_2.filter_loss_per_filter(x2_loss_input, labels)
            log_p = tf.math.log_sigmoid(ex.p_logit)
        # lambda_f: the paper's online gradient-ratio rule, per filter and batch.
        fraction = self.filter_fraction
        if self.fraction_decay:
            fraction = fraction / tf.maximum(tf.convert_to_tensor(self.epoch), 1.0)
        g_rec = tape.gradient(rec, [x1, x2], unconnected_gradients="zero")
        g_f = [tape.gradient(tf.reduce_sum(l1), x1, unconnected_gradients="zero"),
               tape.gradient(tf.reduce_sum(l2), x2, unconnected_gradients="zero")]
        lambdas = [tf.stop_gradient(fraction * _norm_per_filter(gr) / (_norm_per_filter(gf) + 1e-12))
                   for gr, gf in zip(g_rec, g_f)]
        with tape:
            filter_term = tf.reduce_sum(lambdas[0] * l1) + tf.reduce_sum(lambdas[1] * l2)
            loss = rec - self.eta * log_p + filter_term
            replicas = tf.distribute.get_strategy().num_replicas_in_sync
            scaled = self.optimizer.scale_loss(loss / replicas)
        variables = ex.trainable_variables
        grads = tape.gradient(scaled, variables)
        del tape
        self.optimizer.apply(grads, variables)
        for tracker, term in zip(self.rec_trackers, rec_terms):
            tracker.update_state(term)
        self.p_tracker.update_state(ex.p)
        self.filter_tracker.update_state(tf.reduce_sum(l1) + tf.reduce_sum(l2))
        # lambda_f * Loss_f has the gradient the rule asks for, but its value grows as
        # 1 / ||dLoss_f/dx||: log the rest of the objective, and Loss_f unweighted.
        self.loss_tracker.update_state(rec - self.eta * log_p)
        return {m.name: m.result() for m in
                [self.loss_tracker, *self.rec_trackers, self.p_tracker, self.filter_tracker]}

    def test_step(self, data):
        images = data[0] if isinstance(data, (tuple, list)) else data
        feats, targets, _ = self.performer_outputs(images)
        rec_terms = self._reconstruction(self.explainer(feats, training=False), targets)
        for tracker, term in zip(self.rec_trackers, rec_terms):
            tracker.update_state(term)
        self.loss_tracker.update_state(self.recon_weight * tf.add_n(rec_terms))
        return {m.name: m.result() for m in [self.loss_tracker, *self.rec_trackers]}

    def fit(self, *args, callbacks=None, **kwargs):
        callbacks = list(callbacks or []) + [_EpochCounter()]
        return super().fit(*args, callbacks=callbacks, **kwargs)

    def explain(self, images, batch_size=64):
        """Per-filter part location (image pixels), activation and category of conv-interp-2.

        Returns:
            dict: ``part_locations`` [N, F, 2] (x, y) of each filter's peak,
            ``part_scores`` [N, F] peak activations (after mask and norm),
            ``filter_classes`` [F], ``p`` (float).
        """
        from keras_icnn.metrics.receptive_field import receptive_field

        rf = receptive_field(self.performer, self.target_layer)
        locs, scores = [], []
        for a in range(0, len(images), batch_size):
            feats, _, _ = self.performer_outputs(tf.convert_to_tensor(images[a:a + batch_size]))
            interp = self.explainer.encode(feats, training=False)["interp"].numpy()
            flat = interp.reshape(len(interp), -1, interp.shape[-1])
            idx = flat.argmax(1)
            i, j = np.divmod(idx, interp.shape[2])
            x, y = rf.centers(i, j)
            locs.append(np.stack([x, y], -1))
            scores.append(flat.max(1))
        return {"part_locations": np.concatenate(locs).astype(np.float32),
                "part_scores": np.concatenate(scores),
                "filter_classes": self.explainer.conv_interp_2.target_classes.numpy(),
                "p": float(self.explainer.p)}

    def reconstructed_logits(self, images, batch_size=128):
        """The performer's classifier applied to the explainer's reconstruction."""
        _, head = split_performer(self.performer, self.target_layer)
        last = reconstruction_targets(head)[-1]
        out = []
        for a in range(0, len(images), batch_size):
            feats, _, _ = self.performer_outputs(tf.convert_to_tensor(images[a:a + batch_size]))
            x = self.explainer(feats, training=False)[-1]
            for layer in head[last + 1:]:
                x = layer(x, training=False)
            out.append(np.asarray(x))
        return np.concatenate(out)


class _EpochCounter(keras.callbacks.Callback):
    def on_epoch_begin(self, epoch, logs=None):
        self.model.epoch.assign(float(epoch + 1))


def build_explainer(performer, target_layer, copy_weights=True, norm_momentum=0.9, p_init=0.0,
                    interp_kwargs=None, initial_p=None, **distiller_kwargs):
    """An :class:`Explainer` for ``performer`` at ``target_layer`` and its distiller.

    conv-interp-1 starts from the performer's top conv weights and the
    decoder from the performer's head (both when ``copy_weights``); the
    performer itself is frozen and never changed. ``initial_p`` (in (0, 1))
    sets the starting mixing weight p and overrides ``p_init`` (the raw ``w_p``).

    Returns:
        ``(explainer, distiller)``; compile and ``fit`` the distiller.
    """
    top, head = split_performer(performer, target_layer)
    targets = reconstruction_targets(head)
    decoder_layers = head[:targets[-1] + 1]
    configs = [keras.layers.serialize(layer) for layer in decoder_layers]
    num_classes = int(performer.outputs[0].shape[-1])
    if initial_p is not None:
        if not 0.0 < float(initial_p) < 1.0:
            raise ValueError(f"`initial_p` must lie in (0, 1). Received: initial_p={initial_p}")
        p_init = math.log(initial_p / (1.0 - initial_p)) / DEFAULT_P_SCALE
    explainer = Explainer(int(top.filters), num_classes, configs, targets,
                          norm_momentum=norm_momentum, p_init=p_init, interp_kwargs=interp_kwargs,
                          name=f"{performer.name}_explainer")
    explainer.build((None,) + tuple(performer.get_layer(target_layer).output.shape[1:]))
    if copy_weights:
        if tuple(top.kernel.shape[:2]) == (3, 3) and tuple(top.kernel.shape) == tuple(
                explainer.conv_interp_1.kernel.shape):
            explainer.conv_interp_1.kernel.assign(top.kernel)
            if top.use_bias:
                explainer.conv_interp_1.bias.assign(top.bias)
        for mine, theirs in zip(explainer.decoder, decoder_layers):
            if theirs.weights:
                mine.set_weights(theirs.get_weights())
    distiller = ExplainerDistiller(performer, explainer, target_layer, **distiller_kwargs)
    return explainer, distiller
