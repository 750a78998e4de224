"""The options every command shares, as dataclasses (data, model, run) with their checks.
Recipes subclass :class:`RecipeConfig`; :mod:`keras_icnn.config.flags` turns the fields into
flags."""

import dataclasses
import os
import typing

from keras_icnn import validation
from keras_icnn.config.choices import APPLICATION_BACKBONES, BACKBONES, EVAL_SPLITS, STRATEGIES
from keras_icnn.config.flags import option
from keras_icnn.data.sources import DATASETS
from keras_icnn.data.synthetic_parts import SYNTHETIC_CONFIGS
from keras_icnn.validation import check_fields


def synthetic_config_names():
    return tuple(SYNTHETIC_CONFIGS)


@dataclasses.dataclass
class DataOptions:
    """Where the images come from (every recipe and ``evaluate.py``)."""

    dataset: str = option("synthetic", "Data: synthetic (the built-in part data), cub "
                          "(CUB-200-2011 layout), pascal_part, folder (DIR/<class>/*.jpg) or "
                          "tfds (a TFDS dataset prepared under --data_dir).", DATASETS)
    data_dir: str = option("", "The dataset's directory (real datasets; nothing is downloaded).")
    tfds_name: str = option("", "TFDS dataset name (or name/config:version) for --dataset=tfds.")
    image_size: int = option(64, "Image side in pixels (real images: cropped to the object's "
                                 "box where the dataset has one, then resized).")
    num_classes: int = option(6, "Synthetic categories (real datasets use their class list).")
    synthetic_config: str = option("default", "Difficulty of the synthetic data: default (each "
                                   "category its own colours and textures: easy) or hard "
                                   "(CIFAR-like: sibling categories share parts, colour casts, "
                                   "more distractors; calibrated with --num_classes=10).",
                                   synthetic_config_names())
    num_train: int = option(0, "Training images, taken evenly across classes. 0: all of a real "
                               "dataset; the recipe's default for synthetic data.")
    num_val: int = option(600, "Validation images (real data: carved from the training files, "
                               "seeded and class-stratified).")
    num_test: int = option(0, "Test images, taken evenly across classes. 0: the whole test "
                              "split of a real dataset; the recipe's default for synthetic data.")
    cache: str = option("", "Cache decoded real images: '' (decode every epoch, memory bounded "
                            "by the shuffle), 'memory', or a file prefix.")
    seed: int = option(0, "Seed of the data, the splits, the weights and the shuffling.")

    def validate_data(self):
        """The data options every command shares: known dataset and synthetic difficulty,
        >= 2 classes, non-negative split sizes, then :meth:`validate_data_location`."""
        check_fields(self, positive=("image_size",),
                     non_negative=("num_train", "num_val", "num_test", "seed"),
                     choices={"dataset": DATASETS, "synthetic_config": synthetic_config_names()})
        if validation.positive_int(self.num_classes, "num_classes") < 2:
            raise ValueError(f"`num_classes` must be >= 2. Received: num_classes={self.num_classes}")
        self.validate_data_location()

    def validate_data_location(self):
        """A real dataset needs an existing ``data_dir`` (and TFDS a ``tfds_name``)."""
        if self.dataset == "synthetic":
            return
        if not self.data_dir:
            raise ValueError(f"`data_dir` is needed with dataset={self.dataset!r} (a local "
                             "copy of it). Received: data_dir=''")
        if not os.path.isdir(self.data_dir):
            raise FileNotFoundError(f"`data_dir` not found. Received: data_dir={self.data_dir!r}")
        if self.dataset == "tfds" and not self.tfds_name:
            raise ValueError("`tfds_name` is needed with dataset='tfds'. Received: ''")


@dataclasses.dataclass
class ModelOptions:
    """Which network (the three recipes)."""

    backbone: str = option("vgg", "Backbone: vgg, alexnet, resnet20 (small, built in) or "
                                  "vgg16, resnet50, mobilenet_v2 (keras.applications).",
                           BACKBONES)
    weights: str = option("none", "Backbone weights: imagenet (keras.applications backbones: "
                                  "Keras' loader and ~/.keras cache), none, or a weights file "
                                  "of the backbone's convolutional base (any backbone: the "
                                  "backbone.weights.h5 keras-icnn-pretrain writes, or "
                                  "keras.applications.X(include_top=False).save_weights).")
    layer: str = option("", "The layer the method works on (empty: the backbone's top conv; "
                            "for the explainer, the layer it reads).")
    width: int = option(16, "Filters of the first block of the built-in backbones.")


@dataclasses.dataclass
class RunOptions:
    """How and where it runs (the three recipes)."""

    batch_size: int = option(32, "Training batch size, global (split across replicas); the "
                                 "measuring passes use it too.")
    strategy: str = option("default", "tf.distribute strategy: default, mirrored (GPUs, or the "
                                      "CPU split into --num_cpu_devices) or multi_worker "
                                      "(TF_CONFIG).", STRATEGIES)
    num_cpu_devices: int = option(2, "Logical CPU devices for --strategy=mirrored without GPUs.")
    eval_split: str = option("test", "Split the results are measured on: train, validation "
                                     "(when tuning settings: never tune on the test split) or "
                                     "test.",
                             EVAL_SPLITS)
    output_dir: str = option("/tmp/keras_icnn", "Where models and results go (chief only).")
    verbose: int = option(1, "Progress bars (1) or quiet (0).")
    tensorboard_dir: str = option("", "Write TensorBoard summaries here, one run per model "
                                      "(every loss term and metric per epoch, lambda_f, p, "
                                      "the CSG phase and gate matrix, the settings); view with "
                                      "tensorboard --logdir=DIR. '' writes none.")


def min_steps_option(pretrained):
    """The ``min_steps_per_epoch`` field of a recipe whose choice with ``--weights`` is
    ``pretrained`` steps (its help says the number; 0 says one pass either way)."""
    if pretrained:
        default = (f"-1 (default): one pass from scratch, and at least {pretrained} steps when "
                   "--weights is given (the pretrained small-data regime")
    else:
        default = ("-1 (default): one pass, from scratch and with --weights alike (more steps "
                   "did not help this method in the pretrained small-data regime")
    return option(-1, "An epoch is the fewest whole passes over the training set (each "
                      "reshuffled) that make at least this many optimizer steps: with a few "
                      "dozen images per class one pass is a handful of steps. 0: one pass. "
                      f"{default}, chosen on both validation splits: docs/results.md, 'The "
                      "papers' regime').")


@dataclasses.dataclass
class RecipeConfig(RunOptions, ModelOptions, DataOptions):
    """Data, model and run options with their checks; recipes add their own fields."""

    # (num_train, num_val, num_test) of the synthetic data when the flags say 0.
    SYNTHETIC_SIZES: typing.ClassVar[tuple] = (4800, 600, 1200)
    METHOD: typing.ClassVar[str] = "icnn"
    # ``min_steps_per_epoch`` when it is -1 and --weights is given (recipes declare the field
    # with :func:`min_steps_option` of the same number).
    PRETRAINED_MIN_STEPS: typing.ClassVar[int] = 0
    min_steps_per_epoch: int = min_steps_option(0)

    def pretrained(self):
        """Whether the backbone starts from weights (``--weights`` other than none)."""
        return self.weights not in ("none", "")

    def passes_per_epoch(self, num_train):
        """Whole passes over ``num_train`` training images that make one epoch: the fewest
        giving at least ``min_steps_per_epoch`` steps of ``batch_size`` (-1: 0 from scratch,
        ``PRETRAINED_MIN_STEPS`` with --weights).

        Example:
            >>> RecipeConfig(weights="base.weights.h5", min_steps_per_epoch=50
            ...              ).passes_per_epoch(180)       # 6 steps a pass: 9 passes, 54 steps
            9
            >>> RecipeConfig().passes_per_epoch(180)       # from scratch: one pass
            1
        """
        wanted = self.min_steps_per_epoch
        if wanted < 0:
            wanted = self.PRETRAINED_MIN_STEPS if self.pretrained() else 0
        per_pass = max(-(-int(num_train) // self.batch_size), 1)
        return max(-(-int(wanted) // per_pass), 1)

    def steps_per_epoch(self, num_train):
        """Optimizer steps of one epoch on ``num_train`` images (see :meth:`passes_per_epoch`)."""
        return self.passes_per_epoch(num_train) * max(-(-int(num_train) // self.batch_size), 1)

    def validate_common(self):
        check_fields(
            self, positive=("batch_size", "num_cpu_devices", "width"),
            choices={"backbone": BACKBONES, "strategy": STRATEGIES,
                     "eval_split": EVAL_SPLITS})
        self.validate_data()
        if isinstance(self.min_steps_per_epoch, bool) or not isinstance(
                self.min_steps_per_epoch, int) or self.min_steps_per_epoch < -1:
            raise ValueError("`min_steps_per_epoch` must be an integer >= -1 (-1: the "
                             "method's choice, 0: one pass per epoch). Received: "
                             f"min_steps_per_epoch={self.min_steps_per_epoch!r}")
        if self.eval_split == "validation" and self.num_val < 1:
            raise ValueError("`num_val` must be >= 1 with eval_split='validation'. "
                             f"Received: num_val={self.num_val}")
        if self.weights not in ("none", "", "imagenet"):
            if not os.path.isfile(self.weights):
                raise FileNotFoundError(f"`weights` file not found: {self.weights}")
        elif self.weights == "imagenet" and self.backbone not in APPLICATION_BACKBONES:
            raise ValueError(f"`weights`=imagenet needs a keras.applications backbone "
                             f"{APPLICATION_BACKBONES}. Received: backbone={self.backbone!r}")
        if self.image_size < 32 and self.backbone in APPLICATION_BACKBONES:
            raise ValueError(f"{self.backbone} needs --image_size >= 32. "
                             f"Received: image_size={self.image_size}")
        return self


def redefault(name, default):
    """A shared option (see :class:`RecipeConfig`) with another default, same help and choices."""
    meta = RecipeConfig.__dataclass_fields__[name].metadata
    return option(default, meta["help"], meta.get("choices"), meta.get("aliases", ()))


# ----------------------------------------------------------------------------- shared steps
