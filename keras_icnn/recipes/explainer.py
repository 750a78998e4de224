"""Explainer distillation experiment (``train_explainer.py``): build -> fit -> measure."""

import dataclasses
import os

import keras
import numpy as np

from keras_icnn import metrics, validation
from keras_icnn.config.flags import option
from keras_icnn.config.options import RecipeConfig, min_steps_option, redefault
from keras_icnn.recipes.common import (
    datasets, eval_batches, load_model_file, make_backbone, run_experiment, tensorboard)
from keras_icnn.validation import check_fields
from keras_icnn.recipes.icnn import ICNNConfig, compile_classifier
from keras_icnn.models.callbacks import ExplainerDiagnostics
from keras_icnn.models import guard


@dataclasses.dataclass
class ExplainerConfig(RecipeConfig):
    """Settings of an explainer distillation (see ``trainers/train_explainer.py``)."""

    performer: str = option("", "A saved .keras performer (empty: train a --backbone performer "
                                "first; its head after the top conv must be a chain of layers).")
    performer_epochs: int = option(6, "Epochs of the performer when training one.")
    PRETRAINED_MIN_STEPS = 50  # with --weights (issue 48 item 7: tune_regime.py)
    min_steps_per_epoch: int = min_steps_option(50)
    num_val: int = redefault("num_val", 300)
    epochs: int = option(20, "Distillation epochs.")
    learning_rate: float = option(1e-4, "Adam learning rate of the distillation (issue 48: at "
                                        "1e-3 Adam's per-step moves rewrite the copied "
                                        "conv-interp-1 and kill 86-89% of it within 3 epochs "
                                        "on the birds; 1e-4 keeps 74-76% alive).",
                                  aliases=("lr",))
    performer_learning_rate: float = option(1e-3, "Adam learning rate of the performer when "
                                                  "training one.")
    eta: float = option(1.0, "Weight of -log p.")
    filter_fraction: float = option(0.1, "c of the gradient-ratio rule: |dLoss_f/dx| = c "
                                         "|d rec/dx| per filter.")
    fraction_decay: bool = option(False, "Divide c by the epoch N (the paper's 1/(300 N)).")
    mix_trick: bool = option(False, "conv-interp-2's filter loss on p x_f + (1-p) x_ordin.")
    loss_scale: str = option("raw", "Scale of the maps the filter losses see: raw (as they are) "
                                    "or unit_mean (mean activation 1 per filter over the batch, "
                                    "scale-free).", ("raw", "unit_mean"))
    initial_p: float = option(0.5, "Starting mixing weight p of the interpretable track.")
    alpha_floor: float = option(0.1, "The norm-layers divide each channel by at least this "
                                     "fraction of their mean alpha (0: the paper's x / alpha; a "
                                     "dying channel's alpha -> 0 blows up the reconstruction).")
    p_learning_rate: float = option(1e-3, "Adam learning rate of p's logit (0: the same as "
                                          "--learning_rate). Adam moves a variable by about its "
                                          "learning rate per step, so at a small "
                                          "--learning_rate p cannot travel far in a short run.",
                                    aliases=("p_lr",))
    single_category: bool = option(False, "The performer classifies one category (class 1) "
                                          "against the rest: all filters belong to it and the "
                                          "norm-layers' alpha comes from predicted positives.")
    copy_silent_filters: bool = option(False, "Copy every filter of the performer's top conv "
                                              "into conv-interp-1 (the paper's rule). By "
                                              "default the filters silent on 8 training "
                                              "batches (dead ReLUs, which no gradient revives) "
                                              "keep a fresh initialisation instead (chosen on "
                                              "both validation splits, docs/results.md).")
    explainer_cls: bool = option(False, "Also train the Explainer+cls baseline (classification "
                                        "loss of the performer's classifier instead of the "
                                        "reconstruction loss; uses the labels) and report its "
                                        "error next to the explainer's (Table 3).")
    output_dir: str = option("/tmp/keras_icnn_explainer", "Where results go (chief only).")

    SYNTHETIC_SIZES = (4800, 300, 1200)
    METHOD = "explainer"

    def validate(self):
        """Raise a ValueError/TypeError naming the first bad field; returns the config."""
        from keras_icnn.models import backbones

        self.validate_common()
        check_fields(self, positive=("performer_epochs", "epochs"),
                     positive_numbers=("learning_rate", "performer_learning_rate"),
                     non_negative_numbers=("eta", "filter_fraction", "p_learning_rate"),
                     choices={"loss_scale": ("unit_mean", "raw")})
        validation.number_in(self.initial_p, "initial_p", 0, 1, low_open=True, high_open=True)
        validation.number_in(self.alpha_floor, "alpha_floor", 0, 1)
        if self.performer and not os.path.isfile(self.performer):
            raise FileNotFoundError("performer model not found: `performer` must be a saved .keras "
                                    f"file. Received: performer={self.performer!r}")
        if not self.performer:
            backbones.default_layer(self.backbone, "explainer")  # a known backbone
        return self


def _layer(config, performer):
    from keras_icnn.models import backbones

    if config.layer:
        return config.layer
    if not config.performer:
        return backbones.default_layer(config.backbone, "explainer")
    names = [layer.name for layer in performer.layers]
    for name in ("block3_pool", "block5_conv2"):  # built-in VGG / VGG-16 performers
        if name in names:
            return name
    raise ValueError("`layer` must name the performer layer the explainer reads (below its top "
                     f"conv). Layers: {names}")


def build(config, source, strategy):
    keras.utils.set_random_seed(config.seed)
    with strategy.scope():
        if config.performer:
            performer = load_model_file(config.performer, "performer")
            classes = int(performer.outputs[0].shape[-1])
            if classes != source.num_classes:
                raise ValueError(f"the performer {config.performer} has {classes} outputs but "
                                 f"{config.dataset} has {source.num_classes} classes")
        else:
            performer, _ = make_backbone(config, source.num_classes, "explainer")
            compile_classifier(performer, ICNNConfig(learning_rate=config.performer_learning_rate,
                                                     learning_rate_schedule="constant"),
                               jit_compile=False)
    if config.single_category and source.num_classes != 2:
        raise ValueError("`single_category` explains a performer of one category (class 1) "
                         f"against the rest: the data must have 2 classes, {config.dataset} has "
                         f"{source.num_classes}")
    return {"performer": performer, "layer": _layer(config, performer)}


PROBE_BATCHES = 8  # training batches on which a copied filter must fire somewhere


def _probe_images(config, source):
    """A few training batches, in a fixed order, to find the performer's silent filters."""
    import itertools

    train = source.dataset("train", config.batch_size, training=False)
    return [np.asarray(x) for x, _ in itertools.islice(train, PROBE_BATCHES)]


def _distiller(config, strategy, models, objective="reconstruction"):
    from keras_icnn.models import explainer_build as distiller_lib

    keras.utils.set_random_seed(config.seed)  # the explainer and Explainer+cls start alike
    with strategy.scope():
        explainer, distiller = distiller_lib.build_explainer(
            models["performer"], models["layer"], eta=config.eta,
            filter_fraction=config.filter_fraction, fraction_decay=config.fraction_decay,
            mix_trick=config.mix_trick, loss_scale=config.loss_scale, initial_p=config.initial_p,
            p_scale=distiller_lib.p_scale_for(
                config.learning_rate, config.p_learning_rate or config.learning_rate),
            alpha_floor=config.alpha_floor,
            single_category=config.single_category, objective=objective,
            probe_images=models.get("probe_images"))
        distiller.compile(keras.optimizers.Adam(config.learning_rate))
    return explainer, distiller


def _save_performer_now(config, strategy, performer):
    """Write the freshly trained performer before the distillation starts (chief only): a
    distillation that fails or is stopped keeps it, and ``--performer=PATH --layer=NAME``
    distils again without retraining it."""
    from keras_icnn.distribute import is_chief

    if not is_chief(strategy):
        return
    os.makedirs(config.output_dir, exist_ok=True)
    path = os.path.join(config.output_dir, "performer.keras")
    performer.save(path)
    if config.verbose:
        print(f"performer saved: {path} (reuse: --performer={path})")


def fit(config, source, strategy, models):
    from keras_icnn.distribute import sync_batchnorm

    train, val = datasets(config, source, strategy)
    performer = models["performer"]
    if not config.performer:
        if config.verbose:
            print(f"== training a {config.backbone} performer ({config.performer_epochs} epochs) ==")
        performer.fit(train, epochs=config.performer_epochs, verbose=config.verbose, shuffle=False,
                      callbacks=[guard.protect(performer)]
                      + tensorboard(config, strategy, "performer"))
        _save_performer_now(config, strategy, performer)
    if config.copy_silent_filters:
        models["probe_images"] = None
    else:
        models["probe_images"] = _probe_images(config, source)
    explainer, distiller = _distiller(config, strategy, models)
    sync_batchnorm(explainer, strategy)
    models.update(explainer=explainer, distiller=distiller)
    before = [np.asarray(w).copy() for w in performer.weights]
    if config.verbose:
        print(f"== distilling the explainer ({config.epochs} epochs) ==")
    callbacks = tensorboard(config, strategy, "explainer")
    if strategy.num_replicas_in_sync == 1:  # what the filter losses see, per epoch (issue 26)
        callbacks.append(ExplainerDiagnostics(next(iter(val if val is not None else train))))
    history = distiller.fit(train, validation_data=val, epochs=config.epochs,
                            verbose=config.verbose, shuffle=False, callbacks=callbacks)
    fitted = {"history": history.history}
    if config.explainer_cls:
        if config.verbose:
            print(f"== Explainer+cls baseline ({config.epochs} epochs, classification loss) ==")
        cls_explainer, cls_distiller = _distiller(config, strategy, models, "classification")
        sync_batchnorm(cls_explainer, strategy)
        models.update(explainer_cls=cls_explainer, distiller_cls=cls_distiller)
        fitted["history_cls"] = cls_distiller.fit(
            train, validation_data=val, epochs=config.epochs, verbose=config.verbose,
            shuffle=False, callbacks=tensorboard(config, strategy, "explainer_cls")).history
    fitted["performer_unchanged"] = all(
        np.array_equal(a, np.asarray(b)) for a, b in zip(before, performer.weights))
    return fitted


def measure(config, source, strategy, models, fitted):
    from keras_icnn.evaluation.streaming import peak_responses

    performer, distiller = models["performer"], models["distiller"]
    split = config.eval_split
    peaks = peak_responses(performer, distiller.top_layer_name)
    cls_distiller = models.get("distiller_cls")
    out = {k: [] for k in ("label", "perf", "rec", "cls", "loc", "score", "landmarks", "pos",
                           "peak", "noisy_loc", "noisy_pos")}
    noise_rng = np.random.default_rng([int(config.seed), 12])  # part stability's noise
    for batch in eval_batches(config, source)():
        images = np.asarray(batch["image"])
        out["label"].append(np.asarray(batch["label"]))
        out["perf"].append(performer.predict(images, verbose=0).argmax(-1))
        # The performer's own frozen classifier on each explainer's reconstruction.
        out["rec"].append(np.asarray(distiller.reconstructed_logits(images)).argmax(-1))
        if cls_distiller is not None:
            out["cls"].append(np.asarray(cls_distiller.reconstructed_logits(images)).argmax(-1))
        if "landmarks" in batch:
            explanation = distiller.explain(images)
            out["loc"].append(explanation["part_locations"])
            out["score"].append(explanation["part_scores"])
            out["landmarks"].append(np.asarray(batch["landmarks"]))
            positions, scores = peaks(images)
            out["pos"].append(positions)
            out["peak"].append(scores)
            noisy = (images + noise_rng.normal(0.0, metrics.parts.NOISE_STD, images.shape)
                     ).astype(np.float32)
            out["noisy_loc"].append(distiller.explain(noisy)["part_locations"])
            out["noisy_pos"].append(peaks(noisy)[0])
    r = {k: np.concatenate(v) for k, v in out.items() if v}
    labels = r["label"]
    perf_err = float(np.mean(r["perf"] != labels))
    rec_err = float(np.mean(r["rec"] != labels))
    size = (config.image_size, config.image_size)
    li = parts = None
    if "landmarks" in r and np.isfinite(r["landmarks"][..., 0]).any():
        li_perf, _, _ = metrics.location_instability_multi(
            r["pos"], r["landmarks"], labels, size, r["peak"], source.num_classes,
            rule="most_activated")
        li_expl, _, _ = metrics.location_instability_multi(
            r["loc"], r["landmarks"], labels, size, r["score"], source.num_classes,
            rule="most_activated")
        li = {"performer_top_conv": li_perf, "explainer": li_expl,
              "ratio": li_expl / max(li_perf, 1e-12)}
        parts = _part_scores(r, labels, source.num_classes, size)
    plan = distiller.plan
    results = {
        "p": float(models["explainer"].p), "layer": models["layer"],
        # What is reconstructed, and what classifies the reconstruction (the performer's own).
        "reconstructs": [plan.head[i].name for i in plan.targets],
        "classified_by": [layer.name for layer in plan.classifier_layers],
        f"performer_{split}_error": perf_err,
        f"reconstruction_{split}_error": rec_err,
        "delta_error": rec_err - perf_err,
        # None when the baseline was not trained (--explainer_cls).
        f"explainer_cls_{split}_error": (float(np.mean(r["cls"] != labels)) if "cls" in r
                                          else None),
        "explainer_cls_p": (float(models["explainer_cls"].p) if "explainer_cls" in models
                            else None),
        # None without landmarks: not applicable, never 0.
        "location_instability": li,
        # Part consistency and stability (SPEC §12), each filter's category by ICNN's rule on
        # its peaks; None without landmarks.
        "part_consistency": None if parts is None else parts["consistency"],
        "part_stability": None if parts is None else parts["stability"],
        "final_train": {k: float(v[-1]) for k, v in fitted["history"].items()
                        if not k.startswith("diag_")},
        # Per epoch, on the first validation batch: ExplainerDistiller.diagnose.
        "diagnostics": {k[5:]: [float(x) for x in v] for k, v in fitted["history"].items()
                        if k.startswith("diag_")},
        "performer_unchanged": fitted["performer_unchanged"],
        # conv-interp-1's filters copied from the performer's top conv (the rest: silent there,
        # freshly initialised; --copy_silent_filters copies all), and the share of each
        # interpretable layer's filters dead on the first validation batch after the last epoch.
        "conv_interp_1_copied_filters": getattr(models["explainer"], "copied_filters", None),
        "dead_filters": {f"conv_interp_{i}": float(fitted["history"][f"diag_dead_{i}"][-1])
                         for i in (1, 2) if f"diag_dead_{i}" in fitted["history"]},
    }
    artifacts = {"explainer.keras": models["explainer"]}
    if "explainer_cls" in models:
        artifacts["explainer_cls.keras"] = models["explainer_cls"]
    return results, artifacts  # performer.keras: written by fit when it trained one


def _part_scores(r, labels, num_classes, size):
    """Part consistency and stability of the performer's top conv and of the explainer's
    conv-interp-2 (SPEC §12), with their ratios (explainer / performer)."""
    out = {"consistency": {}, "stability": {}}
    for name, pos, noisy, score in (("performer_top_conv", r["pos"], r["noisy_pos"], r["peak"]),
                                    ("explainer", r["loc"], r["noisy_loc"], r["score"])):
        classes = metrics.interpretability.filter_categories(score, labels, num_classes)
        out["consistency"][name] = metrics.part_consistency(pos, r["landmarks"], labels,
                                                            classes, size)[0]
        out["stability"][name] = metrics.part_stability(pos, noisy, r["landmarks"], labels,
                                                        classes, size)[0]
    for key in out:
        base = out[key]["performer_top_conv"]
        out[key]["ratio"] = out[key]["explainer"] / base if base > 0 else None
    return out


def run_explainer_experiment(config):
    """Distil an explainer from a performer on the config's data; the chief writes
    results.json and explainer.keras (and performer.keras when it trained one)."""
    return run_experiment(config, build, fit, measure)
