"""Ordinary vs interpretable CNN (``train_icnn.py``): build -> fit -> measure."""

import dataclasses

import keras

from keras_icnn import metrics, validation
from keras_icnn.models import guard
from keras_icnn.data import synthetic_parts
from keras_icnn.data.synthetic_parts import TASKS
from keras_icnn.layers.interpretable_conv import GRADIENT_MODES, LOSS_SCHEDULES
from keras_icnn.layers.part_mask import MU_RULES
from keras_icnn.losses import GRADIENT_FORMS
from keras_icnn.evaluation.streaming import stream_filter_metrics
from keras_icnn.config.choices import LR_SCHEDULES
from keras_icnn.config.flags import option
from keras_icnn.config.options import RecipeConfig
from keras_icnn.recipes.optim import decay
from keras_icnn.recipes.common import (
    datasets, eval_batches, make_backbone, run_experiment, tensorboard)
from keras_icnn.validation import check_fields

# The models an ICNN experiment can train (``--train``), in training order.
MODEL_KINDS = ("ordinary", "interpretable")


@dataclasses.dataclass
class ICNNConfig(RecipeConfig):
    """Settings of an ordinary-vs-interpretable CNN experiment (see ``train_icnn.py``)."""

    task: str = option("multi", "multi: classify all categories; single: one synthetic "
                                "category vs. background.", TASKS)
    category: str = option("bird", "Positive category of --task=single (name or index).")
    occlusion: float = option(-1.0, "Probability of an occluding box per synthetic image "
                                    "(-1: the --synthetic_config's, 0.2 default, 0.4 hard).")
    epochs: int = option(15, "Training epochs of each model.")
    learning_rate: float = option(1e-3, "Adam learning rate.")
    learning_rate_schedule: str = option("cosine", "Learning rate over the run: constant, "
                                                   "cosine decay to 0 by the last step, or "
                                                   "step (x0.1 at 40%, 60% and 80% of it).",
                                         LR_SCHEDULES, aliases=("lr_schedule",))
    gradient: str = option("approximate", "Filter-loss gradient: the paper's approximation "
                                          "(eq. 5) or exact autodiff.", GRADIENT_MODES)
    gradient_form: str = option("printed", "Approximate gradient with (printed) or without "
                                           "(appendix) the '1 +'.", GRADIENT_FORMS)
    mu: str = option("centroid", "Part location rule of the mask (centroid: chosen on both "
                      "validation splits, issue 25; argmax: the paper's rule).", MU_RULES)
    loss_weight: float = option(0.05, "Filter-loss weight c (see --loss_schedule).")
    loss_schedule: str = option("constant", "Filter-loss weight rule.",
                                LOSS_SCHEDULES)
    jit_compile: bool = option(True, "Compile the train step with XLA (one replica only).")
    train: tuple = option(MODEL_KINDS, "Which models to train: ordinary, interpretable "
                                       "(repeat the flag for both; default both).",
                          MODEL_KINDS, aliases=("models",))
    output_dir: str = option("/tmp/keras_icnn_icnn", "Where models and results go (chief only).")

    SYNTHETIC_SIZES = (4800, 600, 1200)
    METHOD = "icnn"

    def synthetic_options(self):
        return dict(task=self.task, category=self.category,
                    occlusion=None if self.occlusion == -1 else self.occlusion)

    def validate(self):
        """Raise a ValueError/TypeError naming the first bad field; returns the config."""
        self.validate_common()
        check_fields(
            self, positive=("epochs",), positive_numbers=("learning_rate",),
            non_negative_numbers=("loss_weight",),
            choices={"task": TASKS, "gradient": GRADIENT_MODES, "gradient_form": GRADIENT_FORMS,
                     "mu": MU_RULES, "loss_schedule": LOSS_SCHEDULES,
                     "learning_rate_schedule": LR_SCHEDULES})
        if self.occlusion != -1:
            validation.number_in(self.occlusion, "occlusion", 0, 1)
        if self.task == "single":
            if self.dataset != "synthetic":
                raise ValueError("`task`='single' is a synthetic-data task (one category vs. "
                                 f"background). Received: dataset={self.dataset!r}")
            synthetic_parts.category_index(self.category, self.num_classes)
        unknown = set(self.train) - set(MODEL_KINDS)
        if unknown or not self.train:
            raise ValueError(f"`train` must name some of {MODEL_KINDS}. "
                             f"Received: train={self.train!r}")
        return self


def synthetic_splits(config):
    """Train/validation/test example dicts of a synthetic config (deterministic in its seed)."""
    from keras_icnn.recipes.common import open_data

    source = open_data(config, **config.synthetic_options())
    return {split: source.table(split) for split in ("train", "validation", "test")}


def compile_classifier(model, config, total_steps=None, jit_compile=None):
    """Adam at ``config.learning_rate``, decayed over ``total_steps`` (when given) by
    ``config.learning_rate_schedule`` (:func:`keras_icnn.recipes.optim.decay`)."""
    lr = decay(config, config.learning_rate, int(total_steps or 0))
    model.compile(
        optimizer=keras.optimizers.Adam(lr),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
        jit_compile=config.jit_compile if jit_compile is None else jit_compile,
    )
    return model


def build_icnn_pair(config, num_classes, num_train=None, strategy=None):
    """An ordinary backbone and its interpretable version, from the same initial weights.

    Returns ``(ordinary, interpretable)`` compiled; build them inside
    ``strategy.scope()`` when given (one replica keeps ``config.jit_compile``).
    """
    from keras_icnn.models import interpretable

    keras.utils.set_random_seed(config.seed)
    replicas = 1 if strategy is None else strategy.num_replicas_in_sync
    jit = config.jit_compile and replicas == 1
    ordinary, layer = make_backbone(config, num_classes, "icnn")
    layer_kwargs = dict(gradient=config.gradient, gradient_form=config.gradient_form,
                        mu=config.mu, loss_weight=config.loss_weight,
                        loss_schedule=config.loss_schedule)
    if config.task == "single":
        layer_kwargs.update(single_category=True, positive_class=1)
    icnn = interpretable.make_interpretable(ordinary, layer, num_classes=num_classes,
                                            **layer_kwargs)
    n = num_train or config.num_train or config.SYNTHETIC_SIZES[0]
    steps = config.steps_per_epoch(n) * config.epochs
    return (compile_classifier(ordinary, config, steps, jit),
            compile_classifier(icnn, config, steps, jit))


def build(config, source, strategy):
    with strategy.scope():
        ordinary, icnn = build_icnn_pair(config, source.num_classes, source.size("train"),
                                         strategy)
    models = {"ordinary": ordinary, "interpretable": icnn}
    return {name: m for name, m in models.items() if name in config.train}


def fit(config, source, strategy, models):
    """Train each model on the same sequence of batches from the same initial weights.

    Each model gets its own pipeline: a seeded ``tf.data`` shuffle reshuffles on every pass,
    so a pipeline shared by both would give the second model epochs ``E+1..2E`` of the
    order and the first ``1..E`` (and ``--train=interpretable`` another model than the
    pair's). With one pipeline each, the filter loss is the only difference between them.
    """
    histories = {}
    for name, model in models.items():
        if config.verbose:
            print(f"\n== training the {name} CNN ({config.backbone}, {config.epochs} epochs) ==")
        train, val = datasets(config, source, strategy)
        keras.utils.set_random_seed(config.seed)
        histories[name] = model.fit(train, validation_data=val, epochs=config.epochs,
                                    verbose=config.verbose, shuffle=False,
                                    callbacks=[guard.protect(model)]
                                    + tensorboard(config, strategy, name)).history
    return histories


def measure(config, source, strategy, models, histories):
    split = config.eval_split
    results = {"task": config.task, "backbone": config.backbone}
    for name, model in models.items():
        history = histories[name]
        if config.verbose:
            print(f"measuring the {name} CNN's filters on the {split} split")
        layer = metrics.default_layer(model)  # the interpretable model: its new top layer
        figures = stream_filter_metrics(
            model, layer, eval_batches(config, source), source.size(split), source.num_classes,
            single=config.task == "single" or None, verbose=config.verbose, seed=config.seed)
        results[name] = {
            f"{split}_accuracy": figures["accuracy"],
            "final_train_loss": float(history["loss"][-1]),
            "val_accuracy": [float(a) for a in history.get("val_accuracy", [])],
            "layer": layer,
            # None: the data have no landmarks / part masks ("not applicable", never 0).
            "location_instability": figures.get("location_instability"),
            # SPEC §12 on landmarks: the part-prototype measures, beside location instability.
            "part_consistency": figures.get("part_consistency"),
            "part_stability": figures.get("part_stability"),
            "part_interpretability": figures.get("part_interpretability")}
    if "ordinary" in results and "interpretable" in results:
        o, i = results["ordinary"], results["interpretable"]
        # A ratio to an ordinary CNN scoring 0 is undefined (not 1e12x): left out.
        results["ratios"] = {key: i[key] / o[key]
                             for key in ("location_instability", "part_consistency",
                                         "part_stability", "part_interpretability")
                             if o[key] is not None and i[key] is not None and o[key] > 0}
    return results, {f"{name}.keras": model for name, model in models.items()}


def run_icnn_experiment(config):
    """Train an ordinary and an interpretable CNN on the config's data.

    Both are measured on ``eval_split`` (the test split by default): accuracy,
    location instability and part interpretability of their top conv layer
    (``None`` where the data have no part annotations); the per-epoch
    validation accuracy is kept in ``val_accuracy``. The chief writes
    ``ordinary.keras``, ``interpretable.keras``, ``config.json`` and
    ``results.json`` into ``config.output_dir``; returns the results dict.
    """
    return run_experiment(config, build, fit, measure)
