"""CSG training experiment (``train_csg.py``): build -> fit -> measure."""

import dataclasses
import os

import keras
import numpy as np

from keras_icnn import metrics
from keras_icnn.layers.class_specific_gate import SPARSITY_NORMS
from keras_icnn.models import backbones, csg as csg_lib, guard
from keras_icnn.config.flags import option
from keras_icnn.config.options import RecipeConfig, min_steps_option, redefault
from keras_icnn.distribute import is_chief
from keras_icnn.evaluation.csg import csg_pass
from keras_icnn.recipes.optim import (
    CSG_LR_SCHEDULES, OPTIMIZERS, network_learning_rates, network_optimizer)
from keras_icnn.recipes.common import (
    datasets, eval_batches, make_backbone, run_experiment, tensorboard)
from keras_icnn.validation import check_choice, check_fields

# The gate matrix's optimizer: its own Adam, or the CSG phase's (the authors' train.py).
GATE_OPTIMIZERS = ("own", "csg")

# App. B's CIFAR-10 ResNet-20 set-up (the runs behind Table 1's MIS ratio 1.43): batch 256,
# SGD with momentum 0.9, initial lr 0.1, every 1 in 3 epochs CSG, 200 epochs.
PAPER_BATCH = 256
PAPER_LR = 0.1


def paper_learning_rate(batch_size):
    """App. B's lr 0.1 at batch 256, scaled linearly with the batch (Goyal et al. 2017,
    "Accurate, large minibatch SGD": lr proportional to batch): 0.025 at batch 64."""
    return PAPER_LR * float(batch_size) / PAPER_BATCH


# Each value's source: "App. B" is CSG's appendix B (CIFAR-10 ResNet-20s); "Alg. 1" its
# Algorithm 1; "train.py" the authors' hyliang96/CSGCNN VOCPart/train/train.py.
RECIPES = {
    "default": {},
    "paper": {
        "optimizer": "sgd",          # App. B: "SGD optimizer with momentum=0.9"
        "momentum": 0.9,             # App. B
        "learning_rate": paper_learning_rate,  # App. B's 0.1 at batch 256, scaled with the batch
        "csg_learning_rate": paper_learning_rate,  # train.py: lr_reg, a second SGD of the kind
        "learning_rate_schedule": "step",  # train.py: MultiStepLR(milestones .4/.6/.8, gamma .1)
        "period": 3,                 # App. B: "every 1 in 3 epochs are in CSG path"
        "csg_epochs": 1,             # App. B
        "warmup": 2,                 # train.py's 1-in-3 test (epoch % 3 >= 2): STD, STD, CSG
        "final_std": True,           # the served STD path ends on an STD update (issue 27)
        "std_in_csg": False,         # Alg. 1 line 5 and train.py: CSG epochs minimise
                                     # lambda1 CE(y, y^G) + lambda2 d only (§3.3)
        "gate_optimizer": "csg",     # train.py: G is a parameter of optimizer_reg
        "lambda1": 1.0,              # Alg. 1 / train.py: loss_0 + lambda_reg * reg
        "lambda2": 1e-3,             # train.py: --lambda_reg 1e-3
    },
}


@dataclasses.dataclass
class CSGConfig(RecipeConfig):
    """Settings of a CSG experiment (see ``trainers/train_csg.py``)."""

    backbone: str = redefault("backbone", "resnet20")
    PRETRAINED_MIN_STEPS = 25  # with --weights (issue 48 item 7: tune_regime.py)
    min_steps_per_epoch: int = min_steps_option(25)
    num_val: int = redefault("num_val", 300)
    batch_size: int = redefault("batch_size", 64)
    recipe: str = option(
        "default", "Preset of the training settings: default (Adam, G on its own Adam at "
        "--gate_learning_rate, one CSG epoch in two) or paper (CSG App. B's CIFAR set-up: SGD "
        "momentum 0.9, "
        "lr 0.1 x batch/256, step decay x0.1 at 40/60/80% of each phase's steps, one CSG epoch "
        "in three, last epoch STD, CSG epochs without the STD loss, G in the CSG optimizer). "
        "Flags you give override the preset.", tuple(RECIPES))
    epochs: int = option(6, "Epochs (STD and CSG together).")
    optimizer: str = option("adam", "Optimizer of the network (both phases and the baseline): "
                                     "adam or sgd (with --momentum, --nesterov).", OPTIMIZERS)
    momentum: float = option(0.9, "SGD momentum (--optimizer=sgd).")
    nesterov: bool = option(False, "Nesterov momentum (--optimizer=sgd; the authors' SGD branch "
                                   "uses it).")
    weight_decay: float = option(0.0, "Weight decay of the network's optimizers (the authors' "
                                      "SGD branch: 1e-4). Keras' decoupled form: w -= lr*wd*w.")
    learning_rate: float = option(1e-3, "Learning rate of the network in STD epochs.",
                                  aliases=("lr",))
    csg_learning_rate: float = option(1e-3, "Learning rate of the network in CSG epochs.",
                                      aliases=("csg_lr",))
    gate_optimizer: str = option("own", "What updates the gate matrix G: own (Adam at "
                                        "--gate_learning_rate) or csg (the CSG-phase optimizer, "
                                        "at --csg_learning_rate).",
                                 GATE_OPTIMIZERS)
    gate_learning_rate: float = option(0.05, "Adam learning rate of G (--gate_optimizer=own).",
                                       aliases=("gate_lr",))
    learning_rate_schedule: str = option("cosine", "Network learning rates (--learning_rate, "
                                                   "--csg_learning_rate; the --train_baseline "
                                                   "model's too, the same way): cosine decay to "
                                                   "0 (default: both models' last epoch, the one "
                                                   "reported, is a settled one); constant; or "
                                                   "step (x0.1 at 40%, 60% and 80%); each over "
                                                   "the steps its optimizer takes (the STD and "
                                                   "CSG optimizers step only in their own "
                                                   "epochs). G's stays constant.",
                                         CSG_LR_SCHEDULES, aliases=("lr_schedule",))
    period: int = option(csg_lib.PERIOD, "Epochs per STD/CSG period.")
    csg_epochs: int = option(csg_lib.CSG_EPOCHS, "CSG epochs at the start of each period.")
    warmup: int = option(csg_lib.WARMUP, "STD epochs before the first period.")
    final_std: bool = option(False, "Make the last epoch STD whatever the period says.")
    density: float = option(0.2, "Target L1-density of G (g = density * C * K, >= 1/C).")
    sparsity: str = option("l1", "Norm psi of the sparsity penalty.", SPARSITY_NORMS)
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
    # Names of the fields given explicitly (the flags a user typed): a recipe leaves them.
    explicit: dataclasses.InitVar[tuple] = ()

    @classmethod
    def from_recipe(cls, recipe, **fields):
        """A config of ``recipe`` where every field you pass wins over the preset, even one
        equal to its plain default.

        Example:
            >>> CSGConfig.from_recipe("paper", gate_optimizer="own").gate_optimizer
            'own'
            >>> CSGConfig(recipe="paper", gate_optimizer="own").gate_optimizer  # the default
            'csg'
        """
        return cls(recipe=recipe, explicit=tuple(fields), **fields)

    def __post_init__(self, explicit=()):
        """Apply ``recipe``'s preset to every field it names, except those in ``explicit``
        and those already holding another value than their plain default.

        Example:
            >>> CSGConfig(recipe="paper").learning_rate          # 0.1 * 64 / 256
            0.025
            >>> CSGConfig(recipe="paper", learning_rate=0.05).learning_rate  # yours wins
            0.05
            >>> CSGConfig(recipe="paper", warmup=1, explicit=("warmup",)).warmup
            1

        A value equal to the plain default cannot be told from an absent one: pass it in
        ``explicit`` or build with :meth:`from_recipe` (the flags do this by themselves).
        """
        check_choice(self, "recipe", tuple(RECIPES))
        fields = self.__dataclass_fields__
        for name, value in RECIPES[self.recipe].items():
            if name in explicit or getattr(self, name) != fields[name].default:
                continue
            setattr(self, name, value(self.batch_size) if callable(value) else value)

    def validate(self):
        """Raise a ValueError/TypeError naming the first bad field; returns the config."""
        self.validate_common()
        check_fields(
            self, positive=("epochs", "period"),
            non_negative=("csg_epochs", "warmup", "filters_per_class", "shared_filters",
                          "crash_after_epoch"),
            positive_numbers=("learning_rate", "csg_learning_rate", "gate_learning_rate"),
            non_negative_numbers=("lambda1", "lambda2", "momentum", "weight_decay"),
            choices={"sparsity": SPARSITY_NORMS, "learning_rate_schedule": CSG_LR_SCHEDULES,
                     "optimizer": OPTIMIZERS, "gate_optimizer": GATE_OPTIMIZERS,
                     "recipe": tuple(RECIPES)})
        if not self.momentum < 1.0:
            raise ValueError(f"`momentum` must lie in [0, 1). Received: momentum={self.momentum}")
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
    steps_per_epoch = config.steps_per_epoch(source.size("train"))
    std_lr, csg_learning_rate, baseline_lr = network_learning_rates(
        config, steps_per_epoch, csg_lib.phase_table(config.epochs, **_schedule(config)))
    keras.utils.set_random_seed(config.seed)
    with strategy.scope():
        base, layer = make_backbone(config, num_classes, "csg")
        model = csg_lib.make_csg(base, layer, num_classes, **gate_kwargs)
        gate_optimizer = ("csg" if config.gate_optimizer == "csg"
                          else keras.optimizers.Adam(config.gate_learning_rate))
        model.compile(network_optimizer(config, std_lr),
                      csg_optimizer=network_optimizer(config, csg_learning_rate),
                      gate_optimizer=gate_optimizer,
                      lambda1=config.lambda1, lambda2=config.lambda2,
                      std_in_csg=config.std_in_csg)
    models = {"csg": model}
    if config.train_baseline:
        keras.utils.set_random_seed(config.seed)
        with strategy.scope():
            baseline, _ = make_backbone(config, num_classes, "csg")
            baseline.compile(network_optimizer(config, baseline_lr),
                             keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                             metrics=["accuracy"])
        models["baseline"] = baseline
    return models


TRAINED_CSG_WEIGHTS = "csg_trained.weights.h5"


def _schedule(config):
    return dict(period=config.period, csg_epochs=config.csg_epochs, warmup=config.warmup,
                final_std=config.final_std)


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
    callbacks += tensorboard(config, strategy, "csg")
    if config.crash_after_epoch:
        callbacks.append(_HardExitAfterEpoch(config.crash_after_epoch, config.output_dir))
    if config.verbose:
        print(f"phases: {' '.join(csg_lib.phase_table(config.epochs, **_schedule(config)))}")
    # BackupAndRestore deletes its backup when fit ends: a run killed while the baseline
    # trains would lose the finished CSG model. Its weights are kept until the baseline ends.
    trained = os.path.join(config.output_dir, TRAINED_CSG_WEIGHTS)
    keep = config.checkpoint and "baseline" in models
    if keep and os.path.exists(trained):
        model.load_weights(trained)
        if config.verbose:
            print(f"the CSG model finished in an earlier run: its weights from {trained}")
    else:
        model.fit(train, validation_data=val, epochs=config.epochs, callbacks=callbacks,
                  schedule=_schedule(config), verbose=config.verbose, shuffle=False)
        if keep and is_chief(strategy):
            model.save_weights(trained)
    if "baseline" in models:
        if config.verbose:
            print("\n== training the STD baseline ==")
        # Its own pipeline: a seeded tf.data shuffle reshuffles on every pass, so sharing
        # ``train`` would feed the baseline passes epochs+1 .. 2*epochs of the order, not the
        # batches the CSG model saw (the ICNN pair's bug of issue 25).
        train, val = datasets(config, source, strategy)
        keras.utils.set_random_seed(config.seed)
        # Its own backup: a run killed while the baseline trains resumes it there.
        backup = ([keras.callbacks.BackupAndRestore(
            os.path.join(config.output_dir, "backup_baseline"))] if config.checkpoint else [])
        models["baseline"].fit(train, validation_data=val, epochs=config.epochs,
                               verbose=config.verbose, shuffle=False,
                               callbacks=backup + [guard.protect(models["baseline"])]
                               + tensorboard(config, strategy, "baseline"))
    if keep and is_chief(strategy) and os.path.exists(trained):
        os.remove(trained)
    return {"started_at": report.start}


def measure(config, source, strategy, models, fitted):
    from keras_icnn.reporting import figures as viz
    from keras_icnn.models import csg as csg_lib

    split, num_classes = config.eval_split, source.num_classes
    model = models["csg"]
    layer = config.layer or backbones.default_layer(config.backbone, "csg")
    gate = csg_lib.gate_matrix(model)
    density = metrics.l1_density(gate)
    results = {
        "started_at": fitted["started_at"], "backbone": config.backbone, "layer": layer,
        "l1_density": density,
        "l1_interval": [1.0 / num_classes, config.density],
        # The hinge penalty holds ||G||_1 at g from above: allow 0.5% of g of overshoot.
        "l1_density_in_interval": bool(1.0 / num_classes - 1e-6 <= density
                                       <= config.density * 1.005),
    }
    results.update(split_figures(config, source, models, split))
    artifacts = {"gate.npy": gate, "csg.keras": model}
    if "baseline" in models:
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


def split_figures(config, source, models, split):
    """MIS and accuracies of ``models["csg"]`` (and ``models["baseline"]``, if there) on
    ``split``: ``{"csg": {std_path_<split>_accuracy, csg_path_<split>_accuracy, mis},
    "mis_ceiling", "baseline": {<split>_accuracy, mis}, "mis_ratio"}``.

    Example (a trained run's models on the other split)::

        models = {"csg": keras.saving.load_model(f"{out}/csg.keras"),
                  "baseline": keras.saving.load_model(f"{out}/baseline.keras")}
        split_figures(config, recipes.common.open_data(config), models, "validation")
    """
    num_classes = source.num_classes
    layer = config.layer or backbones.default_layer(config.backbone, "csg")
    batches = eval_batches(config, source, split)
    r = csg_pass(models["csg"], layer, batches)
    labels = r["label"]
    out = {
        "csg": {f"std_path_{split}_accuracy": float(np.mean(r["std"].argmax(-1) == labels)),
                f"csg_path_{split}_accuracy": float(np.mean(r["csg"].argmax(-1) == labels)),
                "mis": metrics.mutual_information_score(r["pooled"], labels, num_classes,
                                                        config.seed)},
        # No features can have MIS above this (MI <= the entropy of 1[y = c]).
        "mis_ceiling": metrics.mutual_information_ceiling(labels, num_classes),
    }
    if models.get("baseline") is not None:
        b = csg_pass(models["baseline"], layer, batches, csg=False)
        out["baseline"] = {
            f"{split}_accuracy": float(np.mean(b["std"].argmax(-1) == labels)),
            "mis": metrics.mutual_information_score(b["pooled"], labels, num_classes, config.seed)}
        # A ratio to a baseline whose MIS is 0 is undefined (not 1e12x): left out.
        if out["baseline"]["mis"] > 0:
            out["mis_ratio"] = out["csg"]["mis"] / out["baseline"]["mis"]
    return out


def run_csg_experiment(config):
    """Train a CSG model (and optionally an STD baseline) on the config's data; the chief
    writes results.json (STD- and CSG-path accuracy, MIS, L1-density), gate.npy, gate.png
    and csg.keras (and baseline.keras)."""
    return run_experiment(config, build, fit, measure)
