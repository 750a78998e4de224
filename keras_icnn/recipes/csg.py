"""CSG training experiment (``train_csg.py``): build -> fit -> measure."""

import dataclasses
import os

import keras
import numpy as np

from keras_icnn import metrics
from keras_icnn.recipes.common import (
    LR_SCHEDULES, RecipeConfig, check_choice, check_fields, datasets, eval_batches,
    is_chief, make_backbone, option, redefault, run_experiment)


@dataclasses.dataclass
class CSGConfig(RecipeConfig):
    """Settings of a CSG experiment (see ``trainers/train_csg.py``)."""

    backbone: str = redefault("backbone", "resnet20")
    num_val: int = redefault("num_val", 300)
    batch_size: int = redefault("batch_size", 64)
    epochs: int = option(6, "Epochs (STD and CSG together).")
    lr: float = option(1e-3, "Adam learning rate of the network in STD epochs.")
    csg_lr: float = option(1e-3, "Adam learning rate of the network in CSG epochs.")
    gate_lr: float = option(0.05, "Adam learning rate of the gate matrix G.")
    lr_schedule: str = option("constant", "Network learning rates (--lr, --csg_lr; baseline too):"
                                          " constant, or cosine decay to 0 over the steps each "
                                          "optimizer takes. G's stays constant.", LR_SCHEDULES)
    period: int = option(2, "Epochs per STD/CSG period.")
    csg_epochs: int = option(1, "CSG epochs at the start of each period.")
    warmup: int = option(1, "STD epochs before the first period.")
    density: float = option(0.2, "Target L1-density of G (g = density * C * K, >= 1/C).")
    sparsity: str = option("l1", "Norm psi of the sparsity penalty.", ("l1", "l2", "smooth_l1"))
    lambda1: float = option(1.0, "Weight of the CSG-path cross-entropy.")
    lambda2: float = option(1e-3, "Weight of the sparsity penalty.")
    std_in_csg: bool = option(False, "Add the STD cross-entropy in CSG epochs (eq. 3).")
    fixed_gate: bool = option(False, "Fixed gates: each class owns filters_per_class filters.")
    filters_per_class: int = option(0, "m1 of --fixed_gate.")
    shared_filters: int = option(0, "m2 of --fixed_gate.")
    train_baseline: bool = option(False, "Also train an STD-only model of the same backbone.")
    checkpoint: bool = option(True, "Back up every epoch and resume a killed run.")
    crash_after_epoch: int = option(0, "Testing aid: exit hard after this epoch's backup, like "
                                       "a killed run.")
    output_dir: str = option("/tmp/keras_icnn_csg", "Where results and checkpoints go (chief "
                                                    "only).")

    SYNTHETIC_SIZES = (3000, 300, 1200)
    METHOD = "csg"

    def validate(self):
        """Raise a ValueError/TypeError naming the first bad field; returns the config."""
        from keras_icnn.layers.class_specific_gate import SPARSITY_NORMS

        self.validate_common()
        check_fields(
            self, positive=("epochs", "period"),
            non_negative=("csg_epochs", "warmup", "filters_per_class", "shared_filters",
                          "crash_after_epoch"),
            positive_numbers=("lr", "csg_lr", "gate_lr"),
            non_negative_numbers=("lambda1", "lambda2"),
            choices={"sparsity": SPARSITY_NORMS, "lr_schedule": LR_SCHEDULES})
        num_classes = self.num_classes
        if self.csg_epochs > self.period:
            raise ValueError("`csg_epochs` must be <= `period`. "
                             f"Received: csg_epochs={self.csg_epochs}, period={self.period}")
        if self.fixed_gate:
            if self.filters_per_class < 1:
                raise ValueError("`filters_per_class` must be >= 1 with fixed_gate. "
                                 f"Received: filters_per_class={self.filters_per_class}")
        elif self.dataset == "synthetic" and not 1.0 / num_classes <= float(self.density) <= 1.0:
            raise ValueError(
                f"`density` must lie in [1/num_classes, 1] = [{1.0 / num_classes:.4f}, 1] so "
                f"that g >= K. Received: density={self.density}")
        elif not 0.0 < float(self.density) <= 1.0:
            raise ValueError(f"`density` must lie in (0, 1] (and >= 1/C for the dataset's C "
                             f"classes). Received: density={self.density}")
        return self


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


def _csg_pass(model, layer, batches, csg=True):
    """One pass over the eval stream: STD-path logits, CSG-path logits (``csg``), pooled
    maps of ``layer`` and labels."""
    import tensorflow as tf

    probe = keras.Model(model.inputs, [model.get_layer(layer).output, model.outputs[0]])

    @tf.function(autograph=False)
    def step(x):
        maps, logits = probe(x, training=False)
        return tf.reduce_mean(tf.cast(maps, tf.float32), axis=[1, 2]), logits

    out = {"pooled": [], "std": [], "csg": [], "label": []}
    for batch in batches():
        x, y = batch["image"], batch["label"]
        pooled, logits = step(x)
        out["pooled"].append(pooled.numpy())
        out["std"].append(logits.numpy())
        if csg:
            out["csg"].append(np.asarray(model.csg_logits(x, y)))
        out["label"].append(np.asarray(y))
    return {k: np.concatenate(v) for k, v in out.items() if v}


def build(config, source, strategy):
    from keras_icnn.models import csg as csg_lib

    num_classes = source.num_classes
    if not config.fixed_gate and not 1.0 / num_classes <= float(config.density) <= 1.0:
        raise ValueError(f"`density` must lie in [1/num_classes, 1] = [{1.0 / num_classes:.4f}, "
                         f"1] for the {num_classes} classes of {config.dataset}. "
                         f"Received: density={config.density}")
    gate_kwargs = dict(density=config.density, sparsity=config.sparsity)
    if config.fixed_gate:
        gate_kwargs.update(fixed=True, filters_per_class=config.filters_per_class,
                           shared_filters=config.shared_filters)
    steps_per_epoch = -(-source.size("train") // config.batch_size)
    std_lr, csg_lr, baseline_lr = _network_learning_rates(
        config, steps_per_epoch, csg_lib.phase_table(config.epochs, **_schedule(config)))
    keras.utils.set_random_seed(config.seed)
    with strategy.scope():
        base, layer = make_backbone(config, num_classes, "csg")
        model = csg_lib.make_csg(base, layer, num_classes, **gate_kwargs)
        model.compile(keras.optimizers.Adam(std_lr),
                      csg_optimizer=keras.optimizers.Adam(csg_lr),
                      gate_optimizer=keras.optimizers.Adam(config.gate_lr),
                      lambda1=config.lambda1, lambda2=config.lambda2,
                      std_in_csg=config.std_in_csg)
    models = {"csg": model}
    if config.train_baseline:
        keras.utils.set_random_seed(config.seed)
        with strategy.scope():
            baseline, _ = make_backbone(config, num_classes, "csg")
            baseline.compile(keras.optimizers.Adam(baseline_lr),
                             keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                             metrics=["accuracy"])
        models["baseline"] = baseline
    return models


def _schedule(config):
    return dict(period=config.period, csg_epochs=config.csg_epochs, warmup=config.warmup)


def fit(config, source, strategy, models):
    from keras_icnn.models import csg as csg_lib

    os.makedirs(config.output_dir, exist_ok=True)
    train, val = datasets(config, source, strategy)
    model = models["csg"]
    report = _ResumeReport(config.output_dir, config.verbose and is_chief(strategy))
    callbacks = []
    if config.checkpoint:
        callbacks.append(
            keras.callbacks.BackupAndRestore(os.path.join(config.output_dir, "backup")))
    callbacks.append(report)
    if config.crash_after_epoch:
        callbacks.append(_HardExitAfterEpoch(config.crash_after_epoch, config.output_dir))
    if config.verbose:
        print(f"phases: {' '.join(csg_lib.phase_table(config.epochs, **_schedule(config)))}")
    model.fit(train, validation_data=val, epochs=config.epochs, callbacks=callbacks,
              schedule=_schedule(config), verbose=config.verbose, shuffle=False)
    if "baseline" in models:
        if config.verbose:
            print("\n== training the STD baseline ==")
        keras.utils.set_random_seed(config.seed)
        models["baseline"].fit(train, validation_data=val, epochs=config.epochs,
                               verbose=config.verbose, shuffle=False)
    return {"started_at": report.start}


def measure(config, source, strategy, models, fitted):
    from keras_icnn import viz
    from keras_icnn.models import csg as csg_lib

    split, num_classes = config.eval_split, source.num_classes
    model = models["csg"]
    layer = config.layer or make_layer_name(config)
    r = _csg_pass(model, layer, eval_batches(config, source))
    labels = r["label"]
    gate = csg_lib.gate_matrix(model)
    density = metrics.l1_density(gate)
    results = {
        "started_at": fitted["started_at"], "backbone": config.backbone, "layer": layer,
        "csg": {f"std_path_{split}_accuracy": float(np.mean(r["std"].argmax(-1) == labels)),
                f"csg_path_{split}_accuracy": float(np.mean(r["csg"].argmax(-1) == labels)),
                "mis": metrics.mutual_information_score(r["pooled"], labels, num_classes,
                                                        config.seed)},
        # No features can have MIS above this (MI <= the entropy of 1[y = c]).
        "mis_ceiling": metrics.mutual_information_ceiling(labels, num_classes),
        "l1_density": density,
        "l1_interval": [1.0 / num_classes, config.density],
        # The hinge penalty holds ||G||_1 at g from above: allow 0.5% of g of overshoot.
        "l1_density_in_interval": bool(1.0 / num_classes - 1e-6 <= density
                                       <= config.density * 1.005),
    }
    artifacts = {"gate.npy": gate, "csg.keras": model}
    if "baseline" in models:
        b = _csg_pass(models["baseline"], layer, eval_batches(config, source), csg=False)
        results["baseline"] = {
            f"{split}_accuracy": float(np.mean(b["std"].argmax(-1) == labels)),
            "mis": metrics.mutual_information_score(b["pooled"], labels, num_classes, config.seed)}
        results["mis_ratio"] = results["csg"]["mis"] / max(results["baseline"]["mis"], 1e-12)
        artifacts["baseline.keras"] = models["baseline"]

    def heatmap(path):
        try:
            viz.matrix_heatmap(gate, "filter", "class",
                               f"gate matrix G (L1-density {density:.3f})", vmin=0, vmax=1,
                               path=path)
            results["gate_png"] = path
        except ImportError as err:  # matplotlib is an optional extra: say so, keep the rest
            results["gate_png"] = None
            print(f"gate.png not written: {err}")

    artifacts["gate.png"] = heatmap
    return results, artifacts


def make_layer_name(config):
    from keras_icnn.models import backbones

    return backbones.default_layer(config.backbone, "csg")


def run_csg_experiment(config):
    """Train a CSG model (and optionally an STD baseline) on the config's data; the chief
    writes results.json (STD- and CSG-path accuracy, MIS, L1-density), gate.npy, gate.png
    and csg.keras (and baseline.keras)."""
    return run_experiment(config, build, fit, measure)
