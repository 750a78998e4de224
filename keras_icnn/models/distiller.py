"""Distilling a frozen performer into an :class:`~keras_icnn.models.explainer.Explainer`.

:class:`ExplainerDistiller` trains the explainer with ``fit`` (no labels) and
evaluates it the paper's way: the reconstruction of the performer's hidden
features is fed back to the performer's own frozen classifier (``classify``),
and Δerror is the rise in its error. ``objective="classification"`` gives the
paper's Explainer+cls baseline (appendix, Table 7). :func:`~keras_icnn.models.explainer_build.build_explainer`
builds both pieces.
"""

import keras
import numpy as np
import tensorflow as tf

from keras_icnn import losses as losses_lib
from keras_icnn.models import guard, heads
from keras_icnn.models.explainer import decoder_configs, is_softmax_layer, plan_head
from keras_icnn.ops.distillation import gradient_ratio, per_image_norms, relative_squared_error
from keras_icnn.models.receptive_field import peak_locations, receptive_field

OBJECTIVES = ("reconstruction", "classification")
# The scale at which the filter losses see conv-interp-1/2's maps (issue 26): "unit_mean"
# (losses.unit_mean_maps: scale-free) or "raw" (the maps as they are).
LOSS_SCALES = ("unit_mean", "raw")
# The paper's lambda_f = 1 / (300 N) E||dLoss_rec/dx_f|| / E||dLoss_f/dx_f|| at epoch N:
# filter_fraction=PAPER_FILTER_FRACTION with fraction_decay=True.
PAPER_FILTER_FRACTION = 1.0 / 300.0


@keras.saving.register_keras_serializable(package="keras_icnn")
class ExplainerDistiller(guard.GuardedModel, keras.Model):
    """Trains an :class:`Explainer` over a frozen performer with ``fit``.

    Loss per batch: ``Loss_task - eta * log p + sum_f lambda_f Loss_f``:

    * ``objective="reconstruction"`` (the explainer; no labels are used):
      ``Loss_task = recon_weight * sum_l rec_l`` with
      ``rec_l = mean_b ||x_l - x_l*||^2 / mean_b ||x_l*||^2`` over the
      performer's hidden features ``x_l*`` (fc6/fc7, or the pooled feature of a
      head without hidden FC layers; never the logits).
    * ``objective="classification"`` (the paper's Explainer+cls baseline):
      ``Loss_task`` = cross-entropy of the performer's frozen classifier on the
      decoder's output against the dataset's labels (``fit`` needs them).
    * ``-eta * log p`` pushes information through the interpretable track.
    * ``lambda_f`` by the paper's online rule, per filter and batch:
      ``lambda_f = c E_x||dLoss_task/dx_f|| / E_x||dLoss_f/dx_f||`` (per-image
      gradient norms, :func:`gradient_ratio`), ``c = filter_fraction``, divided
      by the epoch N when ``fraction_decay`` (the paper: ``c = 1/300`` with the
      decay, :data:`PAPER_FILTER_FRACTION`), for conv-interp-1 and conv-interp-2.
      The last batch's values are in ``lambda_interp_1`` / ``lambda_interp_2``.
    * Appendix trick (``mix_trick``, default off): conv-interp-2's filter loss
      is on ``p * x_f + (1 - p) * stop_gradient(x_ordin_f)``, so it trains p
      and the interpretable filters but never the ordinary track. Off by
      default: its gradient on p is not bounded by the gradient-ratio rule and
      drove p to 0.999 with a 0.53 Δerror (``benchmarks/tune_defaults.py``).
    * ``loss_scale``: the maps each ``Loss_f`` sees. ``"raw"`` (default): as they
      are. ``"unit_mean"``: at mean activation 1 per filter over the batch
      (:func:`keras_icnn.losses.unit_mean_maps`), so ``Loss_f`` cannot act on their
      scale. The reconstruction reads the maps through a norm-layer and does not hold
      their scale; on raw maps eq. (5)'s pull towards the negative template shrinks
      them until ``-MI`` is ~1e-4 and ``lambda_f`` spikes to ~3e4 (issue 26). Unit mean
      keeps ``-MI`` near -3 and ``lambda_f`` below 0.05, but it did not lower location
      instability on the birds' validation split (0.90x vs 0.82x), so it is not the
      default (``benchmarks/tune_explainer.py``).

    Filter categories come from the performer's predictions. For a
    single-category explainer (``single_category`` filters), the norm-layers'
    ``alpha`` is estimated on the images the performer predicts positive.

    Metrics: ``loss`` (the task loss ``- eta log p``), ``rec_<i>`` per
    reconstructed layer (or ``cls``), ``p``, ``filter_loss`` (unweighted
    ``sum_f Loss_f``).

    Example:
        >>> explainer, distiller = build_explainer(performer, "block3_pool")
        >>> distiller.compile(keras.optimizers.Adam(1e-3))
        >>> distiller.fit(images, epochs=20)
        >>> logits = distiller.reconstructed_logits(images)   # performer's classifier
    """

    def __init__(self, performer, explainer, target_layer, eta=1.0, recon_weight=1.0,
                 filter_fraction=0.1, fraction_decay=False, mix_trick=False,
                 objective="reconstruction", loss_scale="raw", **kwargs):
        super().__init__(**kwargs)
        if objective not in OBJECTIVES:
            raise ValueError(f"`objective` must be one of {OBJECTIVES}. Received: {objective!r}")
        if loss_scale not in LOSS_SCALES:
            raise ValueError(f"`loss_scale` must be one of {LOSS_SCALES}. Received: "
                             f"{loss_scale!r}")
        self.loss_scale = loss_scale
        self.performer, self.explainer = performer, explainer
        self.target_layer = target_layer
        self.eta, self.recon_weight = float(eta), float(recon_weight)
        self.filter_fraction, self.fraction_decay = float(filter_fraction), bool(fraction_decay)
        self.mix_trick, self.objective = bool(mix_trick), objective
        performer.trainable = False
        self.plan = plan_head(performer, target_layer)
        _, targets = decoder_configs(self.plan)
        if list(explainer.target_indices) != targets or len(explainer.decoder) != max(targets) + 1:
            raise ValueError(
                f"The explainer {explainer.name!r} does not fit performer {performer.name!r} at "
                f"{target_layer!r}: its decoder reconstructs layers {explainer.target_indices}, "
                f"the performer's head needs {targets}. Build it with build_explainer().")
        self.top_layer_name = self.plan.top.name
        head = self.plan.head
        outputs = ([performer.get_layer(target_layer).output, self.plan.top.output]
                   + [head[i].output for i in self.plan.targets] + [performer.outputs[0]])
        self._probe = keras.Model(performer.inputs[0], outputs, name="performer_probe")
        self.epoch = self.add_weight(name="epoch", shape=(), initializer="ones", trainable=False,
                                     aggregation="only_first_replica", autocast=False)
        self.lambdas = [self.add_weight(name=f"lambda_interp_{i}", shape=(explainer.filters,),
                                        initializer="zeros", trainable=False,
                                        aggregation="only_first_replica", autocast=False)
                        for i in (1, 2)]
        if objective == "classification":
            self.task_trackers = [keras.metrics.Mean(name="cls")]
        else:
            self.task_trackers = [keras.metrics.Mean(name=f"rec_{i}")
                                  for i in range(len(self.plan.targets))]
        self.p_tracker = keras.metrics.Mean(name="p")
        self.filter_tracker = keras.metrics.Mean(name="filter_loss")
        self.loss_tracker = keras.metrics.Mean(name="loss")

    @property
    def single_category(self):
        return bool(self.explainer.conv_interp_2.single_category)

    def performer_outputs(self, images, with_top=False):
        """(target-layer features, reconstruction targets, logits) of the frozen performer
        (and its top-conv maps first when ``with_top``)."""
        out = self._probe(images, training=False)
        targets = out[2:-1]
        # The logits: the performer's own classifier on its own last reconstructed layer (the
        # same as its output for a logits head; before the softmax of a softmax head).
        logits = self.classify(targets[-1])
        if with_top:
            return out[1], out[0], targets, logits
        return out[0], targets, logits

    def classify(self, reconstruction):
        """The performer's own frozen classifier (the head after the last reconstructed
        layer: dropout, logits, ...) applied to a reconstruction of that layer: its logits,
        before the softmax of a softmax head (``Dense(..., activation="softmax")`` or a
        final ``Softmax`` layer)."""
        x = reconstruction
        layers = list(self.plan.classifier_layers)
        if layers and is_softmax_layer(layers[-1]):
            layers = layers[:-1]
        for layer in layers[:-1]:
            x = layer(x, training=False)
        last = layers[-1]
        if getattr(last.activation, "__name__", "") != "softmax":
            return last(x, training=False)
        return heads.call_without_activation(last, x)

    def decode_logits(self, enc):
        """Logits of the performer's classifier on the decoder's reconstruction of ``x_enc``."""
        return self.classify(self.explainer.decode(enc, training=False)[-1])

    def _selected(self, predicted):
        """Images the norm-layers' alpha is estimated on: the predicted positives of a
        single-category explainer, all images (None) otherwise."""
        if not self.single_category:
            return None
        return tf.equal(predicted, self.explainer.conv_interp_2.positive_class)

    def task_losses(self, reconstructions, targets, labels=None):
        """The terms of ``Loss_task`` (each a scalar): one relative squared error per
        reconstructed layer, or the classifier's cross-entropy against ``labels``."""
        if self.objective == "classification":
            logits = tf.cast(self.classify(reconstructions[-1]), tf.float32)
            return [tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(
                labels=tf.cast(labels, tf.int32), logits=logits))]
        return [self.recon_weight * relative_squared_error(r, t)
                for r, t in zip(reconstructions, targets)]

    def forward(self, images, labels=None, training=True):
        """Everything one training step differentiates, from ``images``.

        Returns a dict: ``x1``, ``x2`` (conv-interp-1/2 post-ReLU maps),
        ``task_terms`` (:meth:`task_losses`), ``l1``, ``l2`` (``Loss_f`` per
        filter of each layer, conv-interp-2's on the mixed map under
        ``mix_trick``), ``log_p``, ``predicted`` (the performer's classes).
        In training it updates the alpha statistics and target classes.
        """
        top, feats, targets, logits = self.performer_outputs(images, with_top=True)
        feats, targets = tf.stop_gradient(feats), [tf.stop_gradient(t) for t in targets]
        predicted = tf.argmax(logits, axis=-1, output_type=tf.int32)
        if self.objective == "classification" and labels is None:
            raise ValueError("The Explainer+cls objective (objective='classification') trains "
                             "on labels: fit the distiller on (images, labels).")
        ex = self.explainer
        selected = self._selected(predicted)
        if training:
            ex.norm_performer.update(top, selected)
        parts = ex.encode(feats, labels=predicted, training=training, selected=selected)
        x1, x2 = parts["x1"], parts["x2"]
        task_terms = self.task_losses(ex.decode(parts["enc"], training=training), targets, labels)
        x2_loss_input = x2
        if self.mix_trick:
            p = tf.cast(parts["p"], x2.dtype)
            x2_loss_input = p * x2 + (1.0 - p) * tf.stop_gradient(parts["ordin"])
        return {"x1": x1, "x2": x2, "task_terms": task_terms,
                "l1": ex.conv_interp_1.filter_loss_per_filter(self.loss_maps(x1), predicted),
                "l2": ex.conv_interp_2.filter_loss_per_filter(self.loss_maps(x2_loss_input),
                                                              predicted),
                "log_p": tf.math.log_sigmoid(ex.p_logit), "predicted": predicted}

    def loss_maps(self, x):
        """The maps a filter loss is computed on: ``x`` at unit mean activation per filter
        (``loss_scale="unit_mean"``, :func:`keras_icnn.losses.unit_mean_maps`) or as is."""
        return losses_lib.unit_mean_maps(x) if self.loss_scale == "unit_mean" else x

    def fraction(self):
        """``c``, or ``c / N`` at epoch N with ``fraction_decay``."""
        if self.fraction_decay:
            return self.filter_fraction / tf.maximum(tf.convert_to_tensor(self.epoch), 1.0)
        return tf.constant(self.filter_fraction, tf.float32)

    def _train_step(self, data):
        """One training step (run under the non-finite guard: :class:`guard.GuardedModel`)."""
        images, labels = _unpack(data)
        with tf.GradientTape(persistent=True) as tape:
            out = self.forward(images, labels, training=True)
            task = tf.add_n(out["task_terms"])
            # Summed under the tape: a sum taken outside it has no gradient to x_f.
            filter_sums = [tf.reduce_sum(out["l1"]), tf.reduce_sum(out["l2"])]
        x1, x2 = out["x1"], out["x2"]
        g_task = tape.gradient(task, [x1, x2], unconnected_gradients="zero")
        g_f = [tape.gradient(filter_sums[0], x1, unconnected_gradients="zero"),
               tape.gradient(filter_sums[1], x2, unconnected_gradients="zero")]
        fraction = self.fraction()
        lambdas = [gradient_ratio(gt, gf, fraction) for gt, gf in zip(g_task, g_f)]
        with tape:
            filter_term = tf.reduce_sum(lambdas[0] * out["l1"]) + tf.reduce_sum(lambdas[1] * out["l2"])
            loss = task - self.eta * out["log_p"] + filter_term
            replicas = tf.distribute.get_strategy().num_replicas_in_sync
            scaled = self.optimizer.scale_loss(loss / replicas)
        variables = self.explainer.trainable_variables
        grads = tape.gradient(scaled, variables)
        del tape
        self.optimizer.apply(grads, variables)
        for var, value in zip(self.lambdas, lambdas):
            var.assign(value)
        for tracker, term in zip(self.task_trackers, out["task_terms"]):
            tracker.update_state(term)
        self.p_tracker.update_state(self.explainer.p)
        self.filter_tracker.update_state(filter_sums[0] + filter_sums[1])
        # lambda_f * Loss_f has the gradient the rule asks for, but its value grows as
        # 1 / ||dLoss_f/dx||: log the rest of the objective, and Loss_f unweighted.
        self.loss_tracker.update_state(task - self.eta * out["log_p"])
        return {m.name: m.result() for m in
                [self.loss_tracker, *self.task_trackers, self.p_tracker, self.filter_tracker]}

    def test_step(self, data):
        images, labels = _unpack(data)
        if self.objective == "classification" and labels is None:
            return {m.name: m.result() for m in [self.loss_tracker]}
        feats, targets, _ = self.performer_outputs(images)
        terms = self.task_losses(self.explainer(feats, training=False), targets, labels)
        for tracker, term in zip(self.task_trackers, terms):
            tracker.update_state(term)
        self.loss_tracker.update_state(tf.add_n(terms))
        return {m.name: m.result() for m in [self.loss_tracker, *self.task_trackers]}

    def diagnose(self, images):
        """What the filter losses see and how much they weigh, on one batch (no update).

        For conv-interp-1 and -2 (``_1``, ``_2``): :func:`keras_icnn.losses.filter_statistics`
        of the maps the filter losses see (:meth:`loss_maps`: ``neg_mi``, ``score_spread``,
        ``mean_peak``, ``dead``), ``raw_peak`` (mean peak of the post-ReLU maps themselves),
        the last step's mean ``lambda``, and ``grad_ratio`` =
        ``E||lambda_f dLoss_f/dx_f|| / E||dLoss_task/dx_f||`` at the batch's maps (the rule
        makes it ``c`` wherever ``Loss_f`` has a gradient; lower means filters with none).
        Logged per epoch by :class:`ExplainerDiagnostics`.

        Returns:
            dict of Python floats.
        """
        images, labels = _unpack(images)
        with tf.GradientTape(persistent=True) as tape:
            out = self.forward(images, labels, training=False)
            task = tf.add_n(out["task_terms"])
            filter_sums = [tf.reduce_sum(out["l1"]), tf.reduce_sum(out["l2"])]
        result = {}
        for i, (x, f_sum, lam) in enumerate(zip((out["x1"], out["x2"]), filter_sums,
                                                self.lambdas), start=1):
            g_task = tape.gradient(task, x, unconnected_gradients="zero")
            g_f = tape.gradient(f_sum, x, unconnected_gradients="zero")
            lam = tf.convert_to_tensor(lam)
            weighted = per_image_norms(g_f) * lam[None, :]
            ratio = tf.math.divide_no_nan(tf.reduce_mean(tf.reduce_sum(weighted, -1)),
                                          tf.reduce_mean(tf.reduce_sum(per_image_norms(g_task), -1)))
            stats = losses_lib.filter_statistics(self.loss_maps(x),
                                                 beta=self.explainer.conv_interp_1.beta)
            stats.update(lambda_mean=tf.reduce_mean(lam), grad_ratio=ratio,
                         raw_peak=tf.reduce_mean(tf.reduce_max(tf.cast(x, tf.float32), [1, 2])))
            result.update({f"{k}_{i}": float(v) for k, v in stats.items()})
        del tape
        return result

    def compile(self, optimizer="adam", **kwargs):
        """Keras' ``compile``; the optimizer's slots are created here for the explainer's
        variables, so that a step that stopped with an error can be retried."""
        super().compile(optimizer=optimizer, **kwargs)
        self.optimizer.build(self.explainer.trainable_variables)

    def fit(self, *args, callbacks=None, **kwargs):
        callbacks = guard.with_guard_callback(self, callbacks)  # counts epochs too
        return super().fit(*args, callbacks=callbacks, **kwargs)

    def call(self, images, training=False):
        feats, _, _ = self.performer_outputs(images)
        return self.explainer(feats, training=training)

    def interpretable_maps(self, images):
        """``(maps, parts, logits)``: conv-interp-2's maps [B, h, w, F] (after mask and norm),
        the encoder's parts (``interp``, ``ordin``, ``p``) and the performer's logits: the one
        place the explainer's part maps are read (:func:`keras_icnn.explain.explain`, the
        exported ``explain`` signature and :meth:`explain` all read them here)."""
        feats, _, logits = self.performer_outputs(images)
        parts = self.explainer.encode(feats, training=False)
        return parts["interp"], parts, logits

    def explain(self, images, batch_size=64):
        """Per-filter part location (image pixels), activation and category of conv-interp-2
        (:func:`keras_icnn.explain.explain` gives these and the contributions, per image).

        Returns:
            dict: ``part_locations`` [N, F, 2] (x, y) of each filter's peak,
            ``part_scores`` [N, F] peak activations (after mask and norm),
            ``filter_classes`` [F], ``p`` (float).
        """
        rf = receptive_field(self.performer, self.target_layer)
        step = tf.function(lambda x: peak_locations(self.interpretable_maps(x)[0], rf),
                           autograph=False, reduce_retracing=True)
        found = [step(tf.convert_to_tensor(images[a:a + batch_size]))
                 for a in range(0, len(images), batch_size)]
        return {"part_locations": np.concatenate([f[0].numpy() for f in found]),
                "part_scores": np.concatenate([f[1].numpy() for f in found]),
                "filter_classes": self.explainer.conv_interp_2.target_classes.numpy(),
                "p": float(self.explainer.p)}

    def reconstructed_logits(self, images, batch_size=128):
        """Logits of the performer's own frozen classifier on the explainer's
        reconstruction of its hidden features (what Δerror is measured on)."""
        out = []
        for a in range(0, len(images), batch_size):
            feats, _, _ = self.performer_outputs(tf.convert_to_tensor(images[a:a + batch_size]))
            out.append(np.asarray(self.classify(self.explainer(feats, training=False)[-1])))
        return np.concatenate(out)


def _unpack(data):
    if isinstance(data, (tuple, list)):
        return data[0], (data[1] if len(data) > 1 else None)
    return data, None
