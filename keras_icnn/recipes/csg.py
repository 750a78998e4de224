"""CSG training experiment (``train_csg.py``)."""

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
from keras_icnn.recipes.common import EVAL_SPLITS, LR_SCHEDULES, check_choice, check_fields
from keras_icnn.recipes.icnn import ICNNConfig, synthetic_splits


@dataclasses.dataclass
class CSGConfig:
    """Settings of a CSG experiment (see ``trainers/train_csg.py``)."""

    backbone: str = "resnet20"
    width: int = 16
    dataset: str = "synthetic"  # synthetic | cub
    data_dir: str = ""
    image_size: int = 64
    num_classes: int = 6
    num_train: int = 3000
    num_val: int = 300
    num_test: int = 1200
    epochs: int = 6
    batch_size: int = 64
    lr: float = 1e-3
    csg_lr: float = 1e-3
    gate_lr: float = 0.05
    lr_schedule: str = "constant"  # or "cosine": network learning rates decay to 0 by the end
    period: int = 2
    csg_epochs: int = 1
    warmup: int = 1
    density: float = 0.2
    sparsity: str = "l1"
    lambda1: float = 1.0
    lambda2: float = 1e-3
    std_in_csg: bool = False
    fixed_gate: bool = False
    filters_per_class: int = 0
    shared_filters: int = 0
    train_baseline: bool = False
    strategy: str = "default"
    num_cpu_devices: int = 2
    checkpoint: bool = True
    crash_after_epoch: int = 0  # testing aid: exit hard after this epoch (like a kill)
    seed: int = 0
    output_dir: str = "/tmp/keras_icnn_csg"
    verbose: int = 1
    eval_split: str = "test"  # "validation" when tuning: never tune on the test split

    def validate(self):
        """Raise a ValueError/TypeError naming the first bad field; returns the config."""
        from keras_icnn import distribute
        from keras_icnn.layers.class_specific_gate import SPARSITY_NORMS

        check_fields(
            self, positive=("width", "image_size", "num_train", "num_test", "epochs",
                            "batch_size", "period", "num_cpu_devices"),
            non_negative=("num_val", "csg_epochs", "warmup", "filters_per_class",
                          "shared_filters", "crash_after_epoch", "seed"),
            positive_numbers=("lr", "csg_lr", "gate_lr"),
            non_negative_numbers=("lambda1", "lambda2"),
            choices={"backbone": ("resnet20", "vgg", "alexnet"),
                     "dataset": ("synthetic", "cub"), "sparsity": SPARSITY_NORMS,
                     "strategy": distribute.STRATEGIES, "lr_schedule": LR_SCHEDULES,
                     "eval_split": EVAL_SPLITS})
        num_classes = validation.positive_int(self.num_classes, "num_classes")
        if num_classes < 2:
            raise ValueError(f"`num_classes` must be >= 2. Received: num_classes={num_classes}")
        if self.csg_epochs > self.period:
            raise ValueError("`csg_epochs` must be <= `period`. "
                             f"Received: csg_epochs={self.csg_epochs}, period={self.period}")
        if self.fixed_gate:
            if self.filters_per_class < 1:
                raise ValueError("`filters_per_class` must be >= 1 with fixed_gate. "
                                 f"Received: filters_per_class={self.filters_per_class}")
        elif not 1.0 / num_classes <= float(self.density) <= 1.0:
            raise ValueError(
                f"`density` must lie in [1/num_classes, 1] = [{1.0 / num_classes:.4f}, 1] so "
                f"that g >= K. Received: density={self.density}")
        if self.dataset == "cub" and not self.data_dir:
            raise ValueError("`data_dir` is needed with dataset='cub' (a local CUB_200_2011 "
                             "directory). Received: data_dir=''")
        if self.data_dir and not os.path.isdir(self.data_dir):
            raise FileNotFoundError(f"`data_dir` not found. Received: data_dir={self.data_dir!r}")
        if self.eval_split == "validation" and self.num_val < 1:
            raise ValueError("`num_val` must be >= 1 with eval_split='validation'. "
                             f"Received: num_val={self.num_val}")
        return self


def _csg_splits(config):
    if config.dataset == "synthetic":
        icnn_like = ICNNConfig(image_size=config.image_size, num_classes=config.num_classes,
                               num_train=config.num_train, num_val=config.num_val,
                               num_test=config.num_test, seed=config.seed)
        return synthetic_splits(icnn_like), config.num_classes
    if config.dataset == "cub":
        from keras_icnn.data import readers

        if not config.data_dir:
            raise ValueError("--dataset=cub needs --data_dir (a local CUB_200_2011 directory)")
        train = readers.read_cub(config.data_dir, "train", config.image_size, limit=config.num_train)
        test = readers.read_cub(config.data_dir, "test", config.image_size, limit=config.num_test)
        cut = max(1, len(train["image"]) // 10)
        split = {"train": {k: v[cut:] for k, v in train.items() if k != "part_names"},
                 "validation": {k: v[:cut] for k, v in train.items() if k != "part_names"},
                 "test": {k: v for k, v in test.items() if k != "part_names"}}
        return split, int(max(train["label"].max(), test["label"].max())) + 1
    raise ValueError(f"`dataset` must be synthetic or cub. Received: dataset={config.dataset!r}")


class _ResumeReport(keras.callbacks.Callback):
    """Records where a run starts: epoch, phase and, when resumed, G at that moment."""

    def __init__(self, output_dir, verbose):
        super().__init__()
        self.output_dir, self.verbose, self.start = output_dir, verbose, None

    def on_epoch_begin(self, epoch, logs=None):
        if self.start is None:
            self.start = {"epoch": int(epoch), "phase": self.model.phase}
            if epoch > 0:
                np.save(os.path.join(self.output_dir, "gate_at_resume.npy"),
                        np.asarray(self.model.gate_layer.gate))
                if self.verbose:
                    print(f"resumed at epoch {epoch + 1} ({self.model.phase.upper()} phase)")


class _HardExitAfterEpoch(keras.callbacks.Callback):
    """Testing aid: after the backup of ``epoch`` is written, exit like a killed process."""

    def __init__(self, epoch, output_dir):
        super().__init__()
        self.epoch, self.output_dir = epoch, output_dir

    def on_epoch_end(self, epoch, logs=None):
        if epoch + 1 == self.epoch:
            np.save(os.path.join(self.output_dir, "gate_at_crash.npy"),
                    np.asarray(self.model.gate_layer.gate))
            with open(os.path.join(self.output_dir, "phase_at_crash.txt"), "w") as f:
                f.write(self.model.phase)
            os._exit(3)


def _pooled_features(model, layer_name, images, batch_size=128):
    probe = keras.Model(model.inputs, model.get_layer(layer_name).output)
    maps = probe.predict(images, batch_size=batch_size, verbose=0)
    return maps.mean(axis=(1, 2))


def _network_learning_rates(config, steps_per_epoch, phases):
    """(STD lr, CSG lr, baseline lr): constants, or cosine decays over the steps each
    optimizer will take (the STD and CSG optimizers step only in their own epochs)."""
    check_choice(config, "lr_schedule", LR_SCHEDULES)
    if config.lr_schedule == "constant":
        return config.lr, config.csg_lr, config.lr

    def cosine(lr, epochs):
        if epochs == 0:
            return lr
        return keras.optimizers.schedules.CosineDecay(lr, decay_steps=epochs * steps_per_epoch)

    return (cosine(config.lr, phases.count("std")), cosine(config.csg_lr, phases.count("csg")),
            cosine(config.lr, len(phases)))


def run_csg_experiment(config):
    """Train a CSG model (and optionally an STD baseline); write results.json, G and its heatmap."""
    from keras_icnn import distribute, viz
    from keras_icnn.models import csg as csg_lib

    config.validate()
    strategy = distribute.get_strategy(config.strategy, config.num_cpu_devices)
    os.makedirs(config.output_dir, exist_ok=True)
    t0 = time.time()
    splits, num_classes = _csg_splits(config)
    for name, ex in splits.items():
        pipeline.validate_examples(ex, num_classes, name=f"{name} split")
    train = pipeline.make_dataset(splits["train"], config.batch_size, training=True,
                                  seed=config.seed)
    val = pipeline.make_dataset(splits["validation"], config.batch_size)
    shape = (config.image_size, config.image_size, 3)
    gate_kwargs = dict(density=config.density, sparsity=config.sparsity)
    if config.fixed_gate:
        gate_kwargs.update(fixed=True, filters_per_class=config.filters_per_class,
                           shared_filters=config.shared_filters)
    schedule = dict(period=config.period, csg_epochs=config.csg_epochs, warmup=config.warmup)
    steps_per_epoch = -(-len(splits["train"]["image"]) // config.batch_size)
    std_lr, csg_lr, baseline_lr = _network_learning_rates(
        config, steps_per_epoch, csg_lib.phase_table(config.epochs, **schedule))
    keras.utils.set_random_seed(config.seed)
    with strategy.scope():
        base = backbones.get_backbone(config.backbone, shape, num_classes, width=config.width)
        model = csg_lib.make_csg(base, "top_conv", num_classes, **gate_kwargs)
        model.compile(keras.optimizers.Adam(std_lr),
                      csg_optimizer=keras.optimizers.Adam(csg_lr),
                      gate_optimizer=keras.optimizers.Adam(config.gate_lr),
                      lambda1=config.lambda1, lambda2=config.lambda2,
                      std_in_csg=config.std_in_csg)
    report = _ResumeReport(config.output_dir, config.verbose)
    callbacks = []
    if config.checkpoint:
        callbacks.append(keras.callbacks.BackupAndRestore(os.path.join(config.output_dir, "backup")))
    callbacks.append(report)
    if config.crash_after_epoch:
        callbacks.append(_HardExitAfterEpoch(config.crash_after_epoch, config.output_dir))
    if config.verbose:
        print(f"phases: {' '.join(csg_lib.phase_table(config.epochs, **schedule))}")
    model.fit(train, validation_data=val, epochs=config.epochs, callbacks=callbacks,
              schedule=schedule, verbose=config.verbose)
    split = config.eval_split
    images, labels = splits[split]["image"], splits[split]["label"]
    std_logits = model.predict(images, batch_size=config.batch_size, verbose=0)
    csg_logits = np.concatenate([
        np.asarray(model.csg_logits(images[a:a + 256], labels[a:a + 256]))
        for a in range(0, len(images), 256)])
    gate = csg_lib.gate_matrix(model)
    density = metrics.l1_density(gate)
    results = {
        "num_classes": num_classes, "eval_split": split, "strategy": config.strategy,
        "started_at": report.start,
        "replicas": int(strategy.num_replicas_in_sync),
        "csg": {f"std_path_{split}_accuracy": float(np.mean(std_logits.argmax(-1) == labels)),
                f"csg_path_{split}_accuracy": float(np.mean(csg_logits.argmax(-1) == labels)),
                "mis": metrics.mutual_information_score(
                    _pooled_features(model, "top_conv", images), labels, num_classes, config.seed)},
        # No features can have MIS above this (MI <= the entropy of 1[y = c]).
        "mis_ceiling": metrics.mutual_information_ceiling(labels, num_classes),
        "l1_density": density,
        "l1_interval": [1.0 / num_classes, config.density],
        # The hinge penalty holds ||G||_1 at g from above: allow 0.5% of g of overshoot.
        "l1_density_in_interval": bool(1.0 / num_classes - 1e-6 <= density
                                       <= config.density * 1.005),
    }
    if config.train_baseline:
        keras.utils.set_random_seed(config.seed)
        with strategy.scope():
            baseline = backbones.get_backbone(config.backbone, shape, num_classes,
                                              width=config.width)
            baseline.compile(keras.optimizers.Adam(baseline_lr),
                             keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                             metrics=["accuracy"])
        if config.verbose:
            print("\n== training the STD baseline ==")
        baseline.fit(train, validation_data=val, epochs=config.epochs, verbose=config.verbose)
        base_logits = baseline.predict(images, batch_size=config.batch_size, verbose=0)
        results["baseline"] = {
            f"{split}_accuracy": float(np.mean(base_logits.argmax(-1) == labels)),
            "mis": metrics.mutual_information_score(
                _pooled_features(baseline, "top_conv", images), labels, num_classes, config.seed)}
        results["mis_ratio"] = results["csg"]["mis"] / max(results["baseline"]["mis"], 1e-12)
        baseline.save(os.path.join(config.output_dir, "baseline.keras"))
    np.save(os.path.join(config.output_dir, "gate.npy"), gate)
    try:
        results["gate_png"] = viz.matrix_heatmap(
            os.path.join(config.output_dir, "gate.png"), gate, "filter", "class",
            f"gate matrix G (L1-density {density:.3f})", vmin=0, vmax=1)
    except ImportError as err:  # matplotlib is an optional extra: say so, keep the rest
        results["gate_png"] = None
        print(f"gate.png not written: {err}")
    model.save(os.path.join(config.output_dir, "csg.keras"))
    results["seconds"] = round(time.time() - t0, 1)
    with open(os.path.join(config.output_dir, "config.json"), "w") as f:
        json.dump(dataclasses.asdict(config), f, indent=2)
    with open(os.path.join(config.output_dir, "results.json"), "w") as f:
        json.dump(results, f, indent=2)
    return results
