"""Ordinary vs interpretable CNN on the synthetic part data (``train_icnn.py``)."""

import dataclasses
import json
import os
import time

import keras

from keras_icnn import metrics, validation
from keras_icnn.data import pipeline, synthetic_parts
from keras_icnn.models import backbones, interpretable
from keras_icnn.recipes.common import EVAL_SPLITS, LR_SCHEDULES, check_fields


@dataclasses.dataclass
class ICNNConfig:
    """Settings of an ordinary-vs-interpretable CNN experiment (see ``train_icnn.py``)."""

    task: str = "multi"  # "multi" or "single"
    category: str = "bird"  # single-category task only
    backbone: str = "vgg"
    width: int = 16
    image_size: int = 64
    num_classes: int = 6
    num_train: int = 4800
    num_val: int = 600
    num_test: int = 1200
    epochs: int = 15
    batch_size: int = 32
    learning_rate: float = 1e-3
    lr_schedule: str = "cosine"  # or "constant"; cosine decays to 0 by the last step
    seed: int = 0
    gradient: str = "approximate"
    gradient_form: str = "printed"
    mu: str = "argmax"
    loss_weight: float = 0.05
    loss_schedule: str = "constant"
    occlusion: float = 0.2
    jit_compile: bool = True
    output_dir: str = "/tmp/keras_icnn_icnn"
    verbose: int = 1
    eval_split: str = "test"  # "validation" when tuning: never tune on the test split
    models: tuple = ("ordinary", "interpretable")

    def validate(self):
        """Raise a ValueError/TypeError naming the first bad field; returns the config."""
        check_fields(
            self, positive=("width", "image_size", "num_train", "num_test", "epochs",
                            "batch_size"),
            non_negative=("num_val", "seed"), positive_numbers=("learning_rate",),
            non_negative_numbers=("loss_weight",),
            choices={"task": ("multi", "single"), "backbone": backbones.BACKBONES,
                     "gradient": ("approximate", "exact"),
                     "gradient_form": ("printed", "appendix"), "mu": ("argmax", "centroid"),
                     "loss_schedule": ("constant", "paper", "inverse_epoch", "grad_ratio"),
                     "lr_schedule": LR_SCHEDULES, "eval_split": EVAL_SPLITS})
        if validation.positive_int(self.num_classes, "num_classes") < 2:
            raise ValueError(f"`num_classes` must be >= 2. Received: num_classes={self.num_classes}")
        validation.number_in(self.occlusion, "occlusion", 0, 1)
        if self.eval_split == "validation" and self.num_val < 1:
            raise ValueError("`num_val` must be >= 1 with eval_split='validation'. "
                             f"Received: num_val={self.num_val}")
        if self.task == "single":
            synthetic_parts.category_index(self.category, self.num_classes)
        unknown = set(self.models) - {"ordinary", "interpretable"}
        if unknown or not self.models:
            raise ValueError("`models` must name 'ordinary' and/or 'interpretable'. "
                             f"Received: models={self.models!r}")
        return self


def synthetic_splits(config):
    """Train/validation/test example dicts for a config (deterministic in its seed)."""
    common = dict(image_size=config.image_size, num_classes=config.num_classes,
                  seed=config.seed, occlusion=config.occlusion)
    sizes = {"train": config.num_train, "validation": config.num_val, "test": config.num_test}
    out = {}
    for split, n in sizes.items():
        if config.task == "single":
            out[split] = synthetic_parts.make_single_category_examples(
                config.category, n, split=split, **common)
        else:
            out[split] = synthetic_parts.make_examples(n, split=split, **common)
    return out


def _compile(model, config, total_steps=None):
    """Adam at ``config.learning_rate``; cosine-decayed to 0 over ``total_steps`` when
    ``config.lr_schedule == "cosine"`` (and ``total_steps`` is given)."""
    lr = config.learning_rate
    if config.lr_schedule == "cosine" and total_steps:
        lr = keras.optimizers.schedules.CosineDecay(lr, decay_steps=int(total_steps))
    model.compile(
        optimizer=keras.optimizers.Adam(lr),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
        jit_compile=config.jit_compile,
    )
    return model


def build_icnn_pair(config, num_classes):
    """An ordinary backbone and its interpretable version, from the same initial weights."""
    keras.utils.set_random_seed(config.seed)
    shape = (config.image_size, config.image_size, 3)
    kwargs = {"width": config.width}
    ordinary = backbones.get_backbone(config.backbone, shape, num_classes, **kwargs)
    layer_kwargs = dict(gradient=config.gradient, gradient_form=config.gradient_form,
                        mu=config.mu, loss_weight=config.loss_weight,
                        loss_schedule=config.loss_schedule)
    if config.task == "single":
        layer_kwargs.update(single_category=True, positive_class=1)
    icnn = interpretable.make_interpretable(ordinary, "top_conv", num_classes=num_classes,
                                            **layer_kwargs)
    steps = -(-config.num_train // config.batch_size) * config.epochs
    return _compile(ordinary, config, steps), _compile(icnn, config, steps)


def run_icnn_experiment(config):
    """Train an ordinary and an interpretable CNN on the synthetic part data.

    Both are measured on ``eval_split`` (the test split by default): accuracy, location
    instability and part interpretability of their top conv layer; the
    per-epoch validation accuracy is kept in ``val_accuracy``. Writes ``ordinary.keras``,
    ``interpretable.keras``, ``config.json`` and ``results.json`` into
    ``config.output_dir`` and returns the results dict.
    """
    config.validate()
    os.makedirs(config.output_dir, exist_ok=True)
    t0 = time.time()
    splits = synthetic_splits(config)
    num_classes = 2 if config.task == "single" else config.num_classes
    for name, ex in splits.items():
        pipeline.validate_examples(ex, num_classes, name=f"{name} split")
    train = pipeline.make_dataset(splits["train"], config.batch_size, training=True,
                                  seed=config.seed)
    val = pipeline.make_dataset(splits["validation"], config.batch_size)
    evaluation = pipeline.make_dataset(splits[config.eval_split], config.batch_size)
    ordinary, icnn = build_icnn_pair(config, num_classes)
    results = {"task": config.task, "num_classes": num_classes, "eval_split": config.eval_split}
    for name, model in (("ordinary", ordinary), ("interpretable", icnn)):
        if name not in config.models:
            continue
        if config.verbose:
            print(f"\n== training the {name} CNN ({config.backbone}, {config.epochs} epochs) ==")
        keras.utils.set_random_seed(config.seed)
        history = model.fit(train, validation_data=val, epochs=config.epochs,
                            verbose=config.verbose)
        scores = model.evaluate(evaluation, verbose=0, return_dict=True)
        results[name] = {f"{config.eval_split}_accuracy": float(scores["accuracy"]),
                         "final_train_loss": float(history.history["loss"][-1]),
                         "val_accuracy": [float(a) for a in history.history["val_accuracy"]]}
        if config.verbose:
            print(f"measuring the {name} CNN's filters on the {config.eval_split} split")
        figures = metrics.evaluate_interpretability(model, splits[config.eval_split],
                                                    verbose=config.verbose)
        results[name].update(layer=figures["layer"],
                             location_instability=figures["location_instability"],
                             part_interpretability=figures["part_interpretability"])
        model.save(os.path.join(config.output_dir, f"{name}.keras"))
    if "ordinary" in results and "interpretable" in results:
        o, i = results["ordinary"], results["interpretable"]
        results["ratios"] = {
            key: i[key] / max(o[key], 1e-12)
            for key in ("location_instability", "part_interpretability")}
    results["seconds"] = round(time.time() - t0, 1)
    with open(os.path.join(config.output_dir, "config.json"), "w") as f:
        json.dump(dataclasses.asdict(config), f, indent=2)
    with open(os.path.join(config.output_dir, "results.json"), "w") as f:
        json.dump(results, f, indent=2)
    return results
