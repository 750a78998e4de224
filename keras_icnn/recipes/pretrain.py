"""Pretraining a backbone as a user without ImageNet weights would (``keras-icnn-pretrain``):
a plain classifier of any supported backbone trained on a corpus, its convolutional base saved
where every command's ``--weights=PATH`` reads it.

The corpora: the synthetic part data with its own categories (``--dataset=synthetic
--categories=pretraining --num_classes=30``: body plans no evaluation uses) or our birds with
species disjoint from every evaluation directory (``python -m keras_icnn.data.synthetic_birds
--species_set=pretraining --num_species=30 --output_dir=DIR``, then ``--dataset=cub
--data_dir=DIR``), or any dataset of the user's.
"""

import dataclasses
import os

import keras

from keras_icnn.config.choices import LR_SCHEDULES
from keras_icnn.config.flags import option
from keras_icnn.config.options import RecipeConfig, redefault
from keras_icnn.data.synthetic_parts import CATEGORY_SETS, category_names
from keras_icnn.models import guard
from keras_icnn.recipes.common import datasets, make_backbone, run_experiment, tensorboard
from keras_icnn.validation import check_fields

WEIGHTS_FILE = "backbone.weights.h5"


@dataclasses.dataclass
class PretrainConfig(RecipeConfig):
    """Settings of a pretraining run (see ``keras-icnn-pretrain``)."""

    categories: str = option("pretraining", "Synthetic data only: which categories, "
                                            "pretraining (30 body plans no evaluation uses; "
                                            "the point of a pretraining corpus) or evaluation "
                                            "(the evaluation categories).", CATEGORY_SETS)
    num_classes: int = redefault("num_classes", 30)
    epochs: int = option(20, "Training epochs.")
    learning_rate: float = option(1e-3, "Adam learning rate.")
    learning_rate_schedule: str = option("cosine", "Learning rate over the run: constant, "
                                                   "cosine decay to 0 by the last step, or "
                                                   "step (x0.1 at 40%, 60% and 80% of it).",
                                         LR_SCHEDULES)
    jit_compile: bool = option(True, "Compile the train step with XLA (one replica only).")
    output_dir: str = option("/tmp/keras_icnn_pretrain", "Where backbone.weights.h5, "
                             "classifier.keras and results.json go (chief only).")

    # 30 categories x 400 training images (the synthetic corpus when the flags say 0).
    SYNTHETIC_SIZES = (12000, 600, 1200)
    METHOD = "icnn"

    def synthetic_options(self):
        return dict(categories=self.categories)

    def validate(self):
        """Raise a ValueError/TypeError naming the first bad field; returns the config."""
        self.validate_common()
        check_fields(self, positive=("epochs",), positive_numbers=("learning_rate",),
                     choices={"categories": CATEGORY_SETS,
                              "learning_rate_schedule": LR_SCHEDULES})
        most = len(category_names(self.categories))
        if self.dataset == "synthetic" and self.num_classes > most:
            raise ValueError(f"`num_classes` must be <= {most} with categories="
                             f"{self.categories!r} (the synthetic {self.categories} "
                             f"categories). Received: num_classes={self.num_classes}")
        return self


def build(config, source, strategy):
    from keras_icnn.recipes.optim import decay

    keras.utils.set_random_seed(config.seed)
    jit = config.jit_compile and strategy.num_replicas_in_sync == 1
    steps = config.steps_per_epoch(source.size("train")) * config.epochs
    with strategy.scope():
        model, _ = make_backbone(config, source.num_classes)
        model.compile(optimizer=keras.optimizers.Adam(decay(config, config.learning_rate, steps)),
                      loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                      metrics=["accuracy"], jit_compile=jit)
    return {"classifier": model}


def fit(config, source, strategy, models):
    model = models["classifier"]
    if config.verbose:
        print(f"\n== pretraining {config.backbone} on {source.num_classes} classes "
              f"({config.epochs} epochs) ==")
    train, val = datasets(config, source, strategy)
    keras.utils.set_random_seed(config.seed)
    return model.fit(train, validation_data=val, epochs=config.epochs, verbose=config.verbose,
                     callbacks=[guard.protect(model)]
                     + tensorboard(config, strategy, "pretrain")).history


def measure(config, source, strategy, models, history):
    from keras_icnn.models.backbones import save_base_weights

    model, split = models["classifier"], config.eval_split
    evaluation = source.dataset(split, config.batch_size)
    scores = model.evaluate(evaluation, verbose=0, return_dict=True)
    weights = os.path.join(config.output_dir, WEIGHTS_FILE)
    results = {"backbone": config.backbone, "width": config.width,
               "image_size": config.image_size, "classes": list(source.class_names),
               f"{split}_accuracy": float(scores["accuracy"]),
               "final_train_loss": float(history["loss"][-1]),
               "val_accuracy": [float(a) for a in history.get("val_accuracy", [])],
               "weights_file": weights}
    return results, {"classifier.keras": model,
                     WEIGHTS_FILE: lambda path: save_base_weights(model, config.backbone, path)}


def run_pretraining(config):
    """Train a plain classifier of ``config.backbone`` on the config's data and write its
    convolutional base to ``<output_dir>/backbone.weights.h5`` (fine-tune it with
    ``--weights=<that path>`` and the same ``--backbone``/``--width``), ``classifier.keras``,
    ``config.json`` and ``results.json``; returns the results dict.

    Example:
        >>> from keras_icnn.recipes.pretrain import PretrainConfig, run_pretraining
        >>> results = run_pretraining(PretrainConfig(epochs=20, output_dir="/tmp/pre"))
        >>> # keras-icnn-train-icnn --weights=/tmp/pre/backbone.weights.h5 --num_train=180
    """
    return run_experiment(config, build, fit, measure)
