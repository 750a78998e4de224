"""End-to-end recipes the trainers call: data -> models -> fit -> evaluate -> save.

Trainers in ``trainers/`` only parse flags into a config and call one of these.
"""

import dataclasses
import json
import os
import time

import keras
import numpy as np

from keras_icnn import metrics
from keras_icnn.data import pipeline, synthetic_parts
from keras_icnn.models import backbones, interpretable


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
    seed: int = 0
    gradient: str = "approximate"
    gradient_form: str = "printed"
    mu: str = "argmax"
    loss_weight: float = 0.1
    loss_schedule: str = "constant"
    occlusion: float = 0.2
    jit_compile: bool = True
    output_dir: str = "/tmp/keras_icnn_icnn"
    verbose: int = 1

    def validate(self):
        if self.task not in ("multi", "single"):
            raise ValueError(f"`task` must be 'multi' or 'single'. Received: task={self.task!r}")
        for key in ("epochs", "batch_size", "num_train", "num_test"):
            if getattr(self, key) < 1:
                raise ValueError(f"`{key}` must be >= 1. Received: {key}={getattr(self, key)}")
        if self.task == "single":
            synthetic_parts.category_index(self.category, self.num_classes)
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


def _compile(model, config):
    model.compile(
        optimizer=keras.optimizers.Adam(config.learning_rate),
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
    return _compile(ordinary, config), _compile(icnn, config)


def run_icnn_experiment(config):
    """Train an ordinary and an interpretable CNN on the synthetic part data.

    Both are measured on the test split: accuracy, location instability and
    part interpretability of their top conv layer. Writes ``ordinary.keras``,
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
    test = pipeline.make_dataset(splits["test"], config.batch_size)
    ordinary, icnn = build_icnn_pair(config, num_classes)
    results = {"task": config.task, "num_classes": num_classes}
    for name, model in (("ordinary", ordinary), ("interpretable", icnn)):
        if config.verbose:
            print(f"\n== training the {name} CNN ({config.backbone}, {config.epochs} epochs) ==")
        keras.utils.set_random_seed(config.seed)
        history = model.fit(train, validation_data=val, epochs=config.epochs,
                            verbose=config.verbose)
        scores = model.evaluate(test, verbose=0, return_dict=True)
        results[name] = {"test_accuracy": float(scores["accuracy"]),
                         "final_train_loss": float(history.history["loss"][-1])}
        if config.verbose:
            print(f"measuring the {name} CNN's filters on the test split")
        figures = metrics.evaluate_interpretability(model, splits["test"], verbose=config.verbose)
        results[name].update(layer=figures["layer"],
                             location_instability=figures["location_instability"],
                             part_interpretability=figures["part_interpretability"])
        model.save(os.path.join(config.output_dir, f"{name}.keras"))
    o, i = results["ordinary"], results["interpretable"]
    results["ratios"] = {
        "location_instability": i["location_instability"] / max(o["location_instability"], 1e-12),
        "part_interpretability": i["part_interpretability"] / max(o["part_interpretability"], 1e-12),
    }
    results["seconds"] = round(time.time() - t0, 1)
    with open(os.path.join(config.output_dir, "config.json"), "w") as f:
        json.dump(dataclasses.asdict(config), f, indent=2)
    with open(os.path.join(config.output_dir, "results.json"), "w") as f:
        json.dump(results, f, indent=2)
    return results


def format_table(rows, columns):
    """A plain-text table: ``rows`` is a list of dicts, ``columns`` (key, header) pairs."""
    cells = [[h for _, h in columns]] + [
        [f"{r[k]:.4f}" if isinstance(r.get(k), float) else str(r.get(k, "-")) for k, _ in columns]
        for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(columns))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths)) for row in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)




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
    period: int = 3
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


def run_csg_experiment(config):
    """Train a CSG model (and optionally an STD baseline); write results.json, G and its heatmap."""
    from keras_icnn import distribute, viz
    from keras_icnn.models import csg as csg_lib

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
    keras.utils.set_random_seed(config.seed)
    with strategy.scope():
        base = backbones.get_backbone(config.backbone, shape, num_classes, width=config.width)
        model = csg_lib.make_csg(base, "top_conv", num_classes, **gate_kwargs)
        model.compile(keras.optimizers.Adam(config.lr),
                      csg_optimizer=keras.optimizers.Adam(config.csg_lr),
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
    schedule = dict(period=config.period, csg_epochs=config.csg_epochs, warmup=config.warmup)
    if config.verbose:
        print(f"phases: {' '.join(csg_lib.phase_table(config.epochs, **schedule))}")
    model.fit(train, validation_data=val, epochs=config.epochs, callbacks=callbacks,
              schedule=schedule, verbose=config.verbose)
    test = splits["test"]
    images, labels = test["image"], test["label"]
    std_logits = model.predict(images, batch_size=config.batch_size, verbose=0)
    csg_logits = np.concatenate([
        np.asarray(model.csg_logits(images[a:a + 256], labels[a:a + 256]))
        for a in range(0, len(images), 256)])
    gate = csg_lib.gate_matrix(model)
    density = metrics.l1_density(gate)
    results = {
        "num_classes": num_classes, "strategy": config.strategy, "started_at": report.start,
        "replicas": int(strategy.num_replicas_in_sync),
        "csg": {"std_path_test_accuracy": float(np.mean(std_logits.argmax(-1) == labels)),
                "csg_path_test_accuracy": float(np.mean(csg_logits.argmax(-1) == labels)),
                "mis": metrics.mutual_information_score(
                    _pooled_features(model, "top_conv", images), labels, num_classes, config.seed)},
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
            baseline.compile(keras.optimizers.Adam(config.lr),
                             keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                             metrics=["accuracy"])
        if config.verbose:
            print("\n== training the STD baseline ==")
        baseline.fit(train, validation_data=val, epochs=config.epochs, verbose=config.verbose)
        base_logits = baseline.predict(images, batch_size=config.batch_size, verbose=0)
        results["baseline"] = {
            "test_accuracy": float(np.mean(base_logits.argmax(-1) == labels)),
            "mis": metrics.mutual_information_score(
                _pooled_features(baseline, "top_conv", images), labels, num_classes, config.seed)}
        results["mis_ratio"] = results["csg"]["mis"] / max(results["baseline"]["mis"], 1e-12)
        baseline.save(os.path.join(config.output_dir, "baseline.keras"))
    np.save(os.path.join(config.output_dir, "gate.npy"), gate)
    try:
        viz.matrix_heatmap(os.path.join(config.output_dir, "gate.png"), gate, "filter", "class",
                           f"gate matrix G (L1-density {density:.3f})", vmin=0, vmax=1)
    except ImportError:  # matplotlib is an optional extra
        pass
    model.save(os.path.join(config.output_dir, "csg.keras"))
    results["seconds"] = round(time.time() - t0, 1)
    with open(os.path.join(config.output_dir, "config.json"), "w") as f:
        json.dump(dataclasses.asdict(config), f, indent=2)
    with open(os.path.join(config.output_dir, "results.json"), "w") as f:
        json.dump(results, f, indent=2)
    return results
