"""Explainer distillation experiment (``train_explainer.py``)."""

import dataclasses
import json
import os
import time

import keras
import numpy as np

from keras_icnn import metrics
from keras_icnn.data import pipeline
from keras_icnn.models import backbones
from keras_icnn import validation
from keras_icnn.recipes.common import EVAL_SPLITS, check_fields
from keras_icnn.recipes.icnn import ICNNConfig, _compile, synthetic_splits


@dataclasses.dataclass
class ExplainerConfig:
    """Settings of an explainer distillation (see ``trainers/train_explainer.py``)."""

    performer: str = ""  # a saved .keras performer; empty: train a VGG performer first
    layer: str = "block3_pool"  # the performer layer whose feature map the explainer reads
    performer_epochs: int = 6
    width: int = 16
    image_size: int = 64
    num_classes: int = 6
    num_train: int = 4800
    num_val: int = 300
    num_test: int = 1200
    epochs: int = 20
    batch_size: int = 32
    lr: float = 1e-3
    eta: float = 1.0
    filter_fraction: float = 0.1
    fraction_decay: bool = False
    mix_trick: bool = False
    initial_p: float = 0.5
    strategy: str = "default"
    num_cpu_devices: int = 2
    seed: int = 0
    output_dir: str = "/tmp/keras_icnn_explainer"
    verbose: int = 1
    eval_split: str = "test"  # "validation" when tuning: never tune on the test split

    def validate(self):
        """Raise a ValueError/TypeError naming the first bad field; returns the config."""
        from keras_icnn import distribute

        check_fields(
            self, positive=("performer_epochs", "width", "image_size", "num_train", "num_test",
                            "epochs", "batch_size", "num_cpu_devices"),
            non_negative=("num_val", "seed"), positive_numbers=("lr",),
            non_negative_numbers=("eta", "filter_fraction"),
            choices={"strategy": distribute.STRATEGIES, "eval_split": EVAL_SPLITS})
        if validation.positive_int(self.num_classes, "num_classes") < 2:
            raise ValueError(f"`num_classes` must be >= 2. Received: num_classes={self.num_classes}")
        validation.number_in(self.initial_p, "initial_p", 0, 1, low_open=True, high_open=True)
        if self.performer and not os.path.isfile(self.performer):
            raise FileNotFoundError("performer model not found: `performer` must be a saved .keras "
                                    f"file. Received: performer={self.performer!r}")
        if not self.layer:
            raise ValueError("`layer` must name the performer layer the explainer reads. "
                             "Received: layer=''")
        if self.eval_split == "validation" and self.num_val < 1:
            raise ValueError("`num_val` must be >= 1 with eval_split='validation'. "
                             f"Received: num_val={self.num_val}")
        return self


def run_explainer_experiment(config):
    """Distil an explainer from a performer; write results.json and explainer.keras."""
    from keras_icnn import distribute
    from keras_icnn.models import explainer as explainer_lib

    config.validate()
    strategy = distribute.get_strategy(config.strategy, config.num_cpu_devices)
    os.makedirs(config.output_dir, exist_ok=True)
    t0 = time.time()
    splits = synthetic_splits(ICNNConfig(image_size=config.image_size,
                                         num_classes=config.num_classes,
                                         num_train=config.num_train, num_val=config.num_val,
                                         num_test=config.num_test, seed=config.seed))
    for name, ex in splits.items():
        pipeline.validate_examples(ex, config.num_classes, name=f"{name} split")
    keras.utils.set_random_seed(config.seed)
    shape = (config.image_size, config.image_size, 3)
    with strategy.scope():
        if config.performer:
            if not os.path.exists(config.performer):
                raise FileNotFoundError(f"performer model not found: {config.performer}")
            performer = keras.models.load_model(config.performer)
        else:
            performer = backbones.vgg_backbone(shape, config.num_classes, width=config.width)
            _compile(performer, ICNNConfig(learning_rate=config.lr, jit_compile=False))
    if not config.performer:
        if config.verbose:
            print(f"== training a VGG performer ({config.performer_epochs} epochs) ==")
        performer.fit(pipeline.make_dataset(splits["train"], config.batch_size, training=True,
                                            seed=config.seed),
                      epochs=config.performer_epochs, verbose=config.verbose)
        performer.save(os.path.join(config.output_dir, "performer.keras"))
    with strategy.scope():
        explainer, distiller = explainer_lib.build_explainer(
            performer, config.layer, eta=config.eta, filter_fraction=config.filter_fraction,
            fraction_decay=config.fraction_decay, mix_trick=config.mix_trick,
            initial_p=config.initial_p)
        distiller.compile(keras.optimizers.Adam(config.lr))
    before = [np.asarray(w).copy() for w in performer.weights]
    if config.verbose:
        print(f"== distilling the explainer ({config.epochs} epochs) ==")
    images = lambda split: pipeline.make_dataset(  # noqa: E731
        {"image": splits[split]["image"], "label": splits[split]["label"]}, config.batch_size,
        training=split == "train", seed=config.seed)
    history = distiller.fit(images("train"), validation_data=images("validation"),
                            epochs=config.epochs, verbose=config.verbose)
    unchanged = all(np.array_equal(a, np.asarray(b)) for a, b in zip(before, performer.weights))
    split = config.eval_split
    test = splits[split]
    labels = test["label"]
    perf_err = float(np.mean(performer.predict(test["image"], verbose=0).argmax(-1) != labels))
    rec_err = float(np.mean(distiller.reconstructed_logits(test["image"]).argmax(-1) != labels))
    # Location instability: conv-interp-2 vs the performer's top conv (explainer's category rule).
    explanation = distiller.explain(test["image"])
    r = metrics.collect_responses(performer, distiller.top_layer_name, test, verbose=0)
    size = test["image"].shape[1:3]
    li_perf, _, _ = metrics.location_instability_multi(
        r["positions"], test["landmarks"], labels, size, r["scores"], config.num_classes,
        rule="most_activated")
    li_expl, _, _ = metrics.location_instability_multi(
        explanation["part_locations"], test["landmarks"], labels, size,
        explanation["part_scores"], config.num_classes, rule="most_activated")
    results = {
        "eval_split": config.eval_split,
        "p": explanation["p"],
        f"performer_{split}_error": perf_err,
        f"reconstruction_{split}_error": rec_err,
        "delta_error": rec_err - perf_err,
        "location_instability": {"performer_top_conv": li_perf, "explainer": li_expl,
                                 "ratio": li_expl / max(li_perf, 1e-12)},
        "final_train": {k: float(v[-1]) for k, v in history.history.items()},
        "performer_unchanged": unchanged,
        "seconds": round(time.time() - t0, 1),
    }
    explainer.save(os.path.join(config.output_dir, "explainer.keras"))
    with open(os.path.join(config.output_dir, "config.json"), "w") as f:
        json.dump(dataclasses.asdict(config), f, indent=2)
    with open(os.path.join(config.output_dir, "results.json"), "w") as f:
        json.dump(results, f, indent=2)
    return results
