"""The one recipe skeleton the three experiments and ``evaluate.py`` share.

A recipe is a config dataclass (fields declared with :func:`option`: default,
help and choices written once; :func:`define_flags` turns them into absl
flags) and three functions, ``build`` -> ``fit`` -> ``measure``, that
:func:`run_experiment` calls with the shared data (:func:`open_data`),
backbone (:func:`make_backbone`), strategy and output code. Adding a dataset
touches ``keras_icnn.data.sources``; adding a backbone touches
``keras_icnn.models.backbones``; no recipe changes.
"""

import dataclasses
import json
import os
import time
import typing

import keras
import numpy as np

from keras_icnn import validation
from keras_icnn.distribute import STRATEGIES
from keras_icnn.validation import check_choice, check_fields  # noqa: F401 (re-exported)

EVAL_SPLITS = ("validation", "test")
LR_SCHEDULES = ("constant", "cosine")


def option(default, help, choices=None, aliases=()):  # noqa: A002 - the flag's help text
    """A config field with its flag's help text and, optionally, its allowed values and the
    deprecated flag names that still set it (each prints a one-line notice)."""
    return dataclasses.field(default=default, metadata={"help": help, "choices": choices,
                                                        "aliases": tuple(aliases)})


def define_alias(old, new, flag_values=None, module_name=None):
    """Define ``--old`` as a deprecated alias of the already defined ``--new``: same parser
    (and repeatable when ``--new`` is), default None; :func:`resolve_aliases` copies it."""
    from absl import flags

    fv = flags.FLAGS if flag_values is None else flag_values
    target = fv[new]
    text = f"Deprecated alias of --{new}."
    if isinstance(target, flags.BooleanFlag):
        flags.DEFINE_flag(flags.BooleanFlag(old, None, text), fv, module_name=module_name)
    elif isinstance(target, flags.MultiFlag):
        flags.DEFINE_multi(target.parser, target.serializer, old, None, text, flag_values=fv,
                           module_name=module_name)
    else:
        flags.DEFINE(target.parser, old, None, text, flag_values=fv,
                     serializer=target.serializer, module_name=module_name)
    fv[old].deprecated_alias_of = new


def resolve_aliases(flag_values=None, stream=None):
    """For every deprecated alias given on the command line, print a one-line notice and
    set its flag (marked as given); both names at once is a usage error."""
    import sys

    from absl import app, flags

    fv = flags.FLAGS if flag_values is None else flag_values
    for name in list(fv):
        flag = fv[name]
        new = getattr(flag, "deprecated_alias_of", None)
        if new is None or not flag.present or name != flag.name:
            continue
        if fv[new].present:
            raise app.UsageError(f"--{name} is the deprecated name of --{new}: give only "
                                 f"--{new}.")
        print(f"keras_icnn: --{name} is deprecated; use --{new}.", file=stream or sys.stderr)
        fv[new].value, fv[new].present = flag.value, 1


def format_table(rows, columns):
    """A plain-text table: ``rows`` is a list of dicts, ``columns`` (key, header) pairs."""
    def cell(value):
        if isinstance(value, float):
            return f"{value:.4f}"
        return "n/a" if value is None else str(value)

    cells = [[h for _, h in columns]] + [[cell(r.get(k, "-")) for k, _ in columns] for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(columns))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths)) for row in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def check_model_files(models, names):
    """``models`` names at least one existing .keras file and ``names`` (if given) one name
    per model; raises a ValueError / FileNotFoundError naming the field otherwise."""
    if not models:
        raise ValueError("`models` must name at least one .keras file "
                         "(--models=a.keras,b.keras). Received: models=()")
    if names and len(names) != len(models):
        raise ValueError(f"`names` must give one name per model ({len(models)}). "
                         f"Received: names={list(names)}")
    for path in models:
        if not os.path.isfile(path):
            raise FileNotFoundError(f"`models`: model file not found: {path}")


HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"


def load_model_file(path, name="models"):
    """``keras.saving.load_model(path)`` for the option ``name``, with a clear error naming it
    when ``path`` is missing, is not a Keras archive (a ``.keras`` file is a zip holding
    ``config.json``; a legacy ``.h5`` file starts with HDF5's signature) or lacks its config.
    The file's content is never echoed."""
    import zipfile

    import keras_icnn  # noqa: F401  (registers the package's layers for deserialization)

    path = os.path.expanduser(str(path))
    if not os.path.isfile(path):
        raise FileNotFoundError(f"`{name}`: model file not found: {path}")
    with open(path, "rb") as f:
        head = f.read(8)
    if head != HDF5_MAGIC:
        if not zipfile.is_zipfile(path):
            raise ValueError(f"`{name}`: {path} is not a Keras model file: a .keras file is a "
                             "zip archive (model.save('m.keras')) and a legacy .h5 file an "
                             "HDF5 file; this is neither.")
        with zipfile.ZipFile(path) as archive:
            if "config.json" not in archive.namelist():
                raise ValueError(f"`{name}`: {path} is a zip archive without config.json: not "
                                 "a .keras model file (model.save('m.keras') writes one).")
    return keras.saving.load_model(path)


def define_flags(config_cls, flag_values=None, module_name=None):
    """Define one absl flag per field of ``config_cls`` (name, default, help, choices).

    bool/int/float/str fields become ``DEFINE_bool/integer/float/string``
    (``DEFINE_enum`` with choices); tuple fields ``DEFINE_multi_enum`` with
    choices, else ``DEFINE_list``.

    Example:
        >>> define_flags(ICNNConfig)              # in trainers/train_icnn.py
        >>> config = config_from_flags(ICNNConfig, flags.FLAGS)
    """
    import inspect
    import sys

    from absl import flags

    fv = flags.FLAGS if flag_values is None else flag_values
    # Register the flags to the calling module (the trainer) or ``module_name`` (a command's
    # main program), so its --help lists them.
    module = module_name or inspect.stack()[1].frame.f_globals.get("__name__", "__main__")
    if module == "__main__":
        module = sys.argv[0]
    for field in dataclasses.fields(config_cls):
        default, meta = field.default, field.metadata
        text, choices = meta.get("help", field.name), meta.get("choices")
        kwargs = dict(flag_values=fv, module_name=module)
        if isinstance(default, bool):
            flags.DEFINE_bool(field.name, default, text, **kwargs)
        elif isinstance(default, int):
            flags.DEFINE_integer(field.name, default, text, **kwargs)
        elif isinstance(default, float):
            flags.DEFINE_float(field.name, default, text, **kwargs)
        elif isinstance(default, tuple):
            if choices:
                flags.DEFINE_multi_enum(field.name, list(default), list(choices), text, **kwargs)
            else:
                flags.DEFINE_list(field.name, list(default), text, **kwargs)
        elif choices:
            flags.DEFINE_enum(field.name, default, list(choices), text, **kwargs)
        else:
            flags.DEFINE_string(field.name, default, text, **kwargs)
        for alias in meta.get("aliases", ()):
            define_alias(alias, field.name, fv, module)
    # TensorFlow's logger prints a line per collective under tf.distribute at INFO; the
    # trainers show its warnings and errors only.
    import logging

    logging.getLogger("tensorflow").setLevel(logging.WARNING)


def config_from_flags(config_cls, flag_values):
    """A config dataclass filled from the absl flags of the same names (lists become tuples),
    checked with its ``validate()``; a bad value stops the trainer with a usage error that
    names the flag."""
    from absl import app

    import inspect

    resolve_aliases(flag_values)
    values = {}
    for field in dataclasses.fields(config_cls):
        value = flag_values[field.name].value
        values[field.name] = tuple(value) if isinstance(value, list) else value
    try:
        if "explicit" in inspect.signature(config_cls).parameters:
            # A preset (--recipe) leaves the flags given on the command line alone.
            values["explicit"] = tuple(f.name for f in dataclasses.fields(config_cls)
                                       if flag_values[f.name].present)
        config = config_cls(**values)
        return config.validate()
    except (ValueError, TypeError, FileNotFoundError) as err:
        raise app.UsageError(f"bad flag value: {err}") from err


# ----------------------------------------------------------------------------- options


def _datasets():
    from keras_icnn.data.sources import DATASETS

    return DATASETS


def synthetic_config_names():
    from keras_icnn.data.synthetic_parts import SYNTHETIC_CONFIGS

    return tuple(SYNTHETIC_CONFIGS)


def _backbones():
    from keras_icnn.models.backbones import BACKBONES

    return BACKBONES


@dataclasses.dataclass
class DataOptions:
    """Where the images come from (every recipe and ``evaluate.py``)."""

    dataset: str = option("synthetic", "Data: synthetic (the built-in part data), cub "
                          "(CUB-200-2011 layout), pascal_part, folder (DIR/<class>/*.jpg) or "
                          "tfds (a TFDS dataset prepared under --data_dir).", _datasets())
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
        from keras_icnn.data.sources import DATASETS

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
                           _backbones())
    weights: str = option("none", "Backbone weights: imagenet (Keras' loader and ~/.keras "
                                  "cache), none, or a weights file (keras.applications only).")
    layer: str = option("", "The layer the method works on (empty: the backbone's top conv; "
                            "for the explainer, the layer it reads).")
    width: int = option(16, "Filters of the first block of the built-in backbones.")


@dataclasses.dataclass
class RunOptions:
    """How and where it runs (the three recipes)."""

    batch_size: int = option(32, "Global batch size (split across replicas).")
    strategy: str = option("default", "tf.distribute strategy: default, mirrored (GPUs, or the "
                                      "CPU split into --num_cpu_devices) or multi_worker "
                                      "(TF_CONFIG).", STRATEGIES)
    num_cpu_devices: int = option(2, "Logical CPU devices for --strategy=mirrored without GPUs.")
    eval_split: str = option("test", "Split the results are measured on (validation when "
                                     "tuning settings: never tune on the test split).",
                             EVAL_SPLITS)
    output_dir: str = option("/tmp/keras_icnn", "Where models and results go (chief only).")
    verbose: int = option(1, "Progress bars (1) or quiet (0).")
    tensorboard_dir: str = option("", "Write TensorBoard summaries here, one run per model "
                                      "(every loss term and metric per epoch, lambda_f, p, "
                                      "the CSG phase and gate matrix, the settings); view with "
                                      "tensorboard --logdir=DIR. '' writes none.")


def tensorboard(config, strategy, run):
    """``[TrainingSummaries]`` for the model ``run`` when ``config.tensorboard_dir`` is set
    (on the chief only: workers would write the same event files), else ``[]``."""
    if not getattr(config, "tensorboard_dir", "") or not is_chief(strategy):
        return []
    from keras_icnn.callbacks import TrainingSummaries

    return [TrainingSummaries(os.path.join(config.tensorboard_dir, run),
                              hparams=_jsonable(dataclasses.asdict(config)))]


@dataclasses.dataclass
class RecipeConfig(RunOptions, ModelOptions, DataOptions):
    """Data, model and run options with their checks; recipes add their own fields."""

    # (num_train, num_val, num_test) of the synthetic data when the flags say 0.
    SYNTHETIC_SIZES: typing.ClassVar[tuple] = (4800, 600, 1200)
    METHOD: typing.ClassVar[str] = "icnn"

    def validate_common(self):
        from keras_icnn.models.backbones import APPLICATIONS, BACKBONES

        check_fields(
            self, positive=("batch_size", "num_cpu_devices", "width"),
            choices={"backbone": BACKBONES, "strategy": STRATEGIES,
                     "eval_split": EVAL_SPLITS})
        self.validate_data()
        if self.eval_split == "validation" and self.num_val < 1:
            raise ValueError("`num_val` must be >= 1 with eval_split='validation'. "
                             f"Received: num_val={self.num_val}")
        if self.weights not in ("none", "", "imagenet"):
            if self.backbone not in APPLICATIONS:
                raise ValueError(f"`weights` applies to {tuple(APPLICATIONS)}; {self.backbone!r} "
                                 f"starts from random weights. Received: weights={self.weights!r}")
            if not os.path.isfile(self.weights):
                raise FileNotFoundError(f"`weights` file not found: {self.weights}")
        elif self.weights == "imagenet" and self.backbone not in APPLICATIONS:
            raise ValueError(f"`weights`=imagenet needs a keras.applications backbone "
                             f"{tuple(APPLICATIONS)}. Received: backbone={self.backbone!r}")
        if self.image_size < 32 and self.backbone in APPLICATIONS:
            raise ValueError(f"{self.backbone} needs --image_size >= 32. "
                             f"Received: image_size={self.image_size}")
        return self


def redefault(name, default):
    """A shared option (see :class:`RecipeConfig`) with another default, same help and choices."""
    meta = RecipeConfig.__dataclass_fields__[name].metadata
    return option(default, meta["help"], meta.get("choices"), meta.get("aliases", ()))


# ----------------------------------------------------------------------------- shared steps


def open_data(config, **synthetic):
    """The config's :class:`~keras_icnn.data.sources.Source` (classes, parts, splits)."""
    from keras_icnn.data import sources

    train, val, test = getattr(config, "SYNTHETIC_SIZES", (4800, 600, 1200))
    if config.dataset == "synthetic":
        return sources.open_synthetic(
            config.image_size, num_classes=config.num_classes,
            num_train=config.num_train or train, num_val=config.num_val,
            num_test=config.num_test or test, seed=config.seed,
            synthetic_config=getattr(config, "synthetic_config", "default"), **synthetic)
    return sources.open_source(config.dataset, config.data_dir, config.image_size,
                               num_train=config.num_train or None, num_val=config.num_val,
                               num_test=config.num_test or None, seed=config.seed,
                               tfds_name=config.tfds_name)


def _cluster_resolver(strategy):
    """The multi-worker cluster resolver of ``strategy`` (None without a cluster)."""
    resolver = getattr(strategy, "cluster_resolver", None)
    return resolver if resolver is not None and getattr(resolver, "task_type", None) else None


def worker_shard(strategy):
    """``(num_workers, index)`` of this worker under a multi-worker strategy, else None."""
    resolver = _cluster_resolver(strategy)
    if resolver is None:
        return None
    spec = resolver.cluster_spec().as_dict()
    workers = [(kind, i) for kind in ("chief", "worker") for i in range(len(spec.get(kind, ())))]
    if len(workers) < 2:
        return None
    return len(workers), workers.index((resolver.task_type, int(resolver.task_id or 0)))


def datasets(config, source, strategy=None, shuffle_train=True):
    """(train, validation) ``tf.data`` pipelines of the config's source; under a multi-worker
    strategy each worker reads and decodes only its shard of the files.

    The training order is a function of ``config.seed`` alone: ``tf.data``'s seeded shuffle
    also reads TensorFlow's global seed, so it is set here (to ``config.seed``) rather than
    inherited from whatever ran before. (Inheriting it moved the ICNN bench's figures when
    8fc21d3 started building the pipeline after ``keras.utils.set_random_seed``: issue 25.)
    """
    import tensorflow as tf

    tf.random.set_seed(config.seed)
    cache = config.cache or None
    shard = worker_shard(strategy) if strategy is not None else None
    train = source.dataset("train", config.batch_size, training=shuffle_train, seed=config.seed,
                           cache=cache, shard=shard)
    val = source.dataset("validation", config.batch_size, cache=cache, shard=shard) \
        if source.size("validation") else None
    return train, val


def eval_batches(config, source, split=None):
    """A callable giving a fresh stream of feature-dict batches of the eval split."""
    split = split or config.eval_split
    return lambda: source.dataset(split, config.batch_size, as_supervised=False)


def make_backbone(config, num_classes, method=None):
    """``(model, layer_name)``: the config's backbone and the layer its method works on."""
    from keras_icnn.models import backbones

    method = method or getattr(config, "METHOD", "icnn")
    shape = (config.image_size, config.image_size, 3)
    model = backbones.get_backbone(config.backbone, shape, num_classes, weights=config.weights,
                                   width=config.width)
    layer = config.layer or backbones.default_layer(config.backbone, method)
    names = [l.name for l in model.layers]
    if layer not in names:
        raise ValueError(f"`layer` {layer!r} is not a layer of {config.backbone}. Layers: "
                         f"{names}")
    return model, layer


def get_strategy(config):
    from keras_icnn import distribute

    return distribute.get_strategy(config.strategy, config.num_cpu_devices)


def sync_batchnorm(model, strategy):
    """Synchronise the BatchNorm statistics of ``model`` across replicas and workers.

    With one replica per worker, each worker's BatchNorm layers would keep
    their own shard's batch statistics (and their own moving averages); with
    ``synchronized=True`` the moments are all-reduced over the global batch,
    so every replica and worker holds the same statistics. Returns the number
    of layers changed.
    """
    if strategy.num_replicas_in_sync < 2:
        return 0
    count = 0
    for layer in model._flatten_layers(include_self=False):
        if isinstance(layer, keras.layers.BatchNormalization) and not layer.synchronized:
            layer.synchronized = True
            count += 1
    return count


def is_chief(strategy):
    """True unless this process is a non-chief worker of a multi-worker strategy."""
    resolver = _cluster_resolver(strategy)
    if resolver is None:
        return True
    spec = resolver.cluster_spec().as_dict()
    if "chief" in spec:
        return resolver.task_type == "chief"
    return resolver.task_type == "worker" and int(resolver.task_id or 0) == 0


def replicas_agree(strategy, variables):
    """Whether every replica (and worker) holds the same values of ``variables``.

    Gathers every replica's local copy (``all_gather``) and compares them
    exactly; True with one replica.
    """
    import tensorflow as tf

    if strategy.num_replicas_in_sync < 2 or not variables:
        return True

    def local():
        ctx = tf.distribute.get_replica_context()
        flat = tf.concat([tf.reshape(tf.cast(tf.convert_to_tensor(v), tf.float32), [-1])
                          for v in variables], 0)
        gathered = ctx.all_gather(flat[None], axis=0)  # [replicas, n]
        return tf.reduce_all(tf.equal(gathered, gathered[:1]))

    result = strategy.run(tf.function(local))
    return bool(all(v.numpy() for v in strategy.experimental_local_results(result)))


def batchnorm_statistics(model):
    return [w for layer in model._flatten_layers(include_self=False)
            if isinstance(layer, keras.layers.BatchNormalization)
            for w in (layer.moving_mean, layer.moving_variance)]


def _jsonable(value):
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (np.floating, np.integer, np.bool_)):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return value


SPLIT_FIELDS = (("num_train", "train"), ("num_val", "validation"), ("num_test", "test"))


def run_settings(config, source=None, splits=SPLIT_FIELDS):
    """The settings a run used: ``config``'s fields, with what the data decided in place of the
    flags' values when ``source`` is given (``num_classes`` and the split sizes: a CUB run
    with 8 classes records 8, not the flag's default), and under ``"from_data"`` the flag
    values those replaced; ``eval_images``: the size of the split measured on. ``splits``:
    the (field, split) pairs to record (the evaluators read only their evaluation split)."""
    settings = _jsonable(dataclasses.asdict(config))
    if source is None:
        return settings
    actual = {"num_classes": int(source.num_classes)}
    for field, split in splits:
        actual[field] = int(source.size(split))
    replaced = {k: settings[k] for k, v in actual.items() if k in settings and settings[k] != v}
    settings.update({k: v for k, v in actual.items() if k in settings})
    if replaced:
        settings["from_data"] = {"flags_given": replaced,
                                 "note": "these fields hold what the data gave the run"}
    split = getattr(config, "eval_split", None)
    if split:
        settings["eval_images"] = int(source.size(split))
    return settings


def write_config(config, source=None, splits=SPLIT_FIELDS):
    """Write ``config`` (a dataclass) as ``<config.output_dir>/config.json``: every command
    leaves the settings it ran with beside its results (:func:`run_settings`)."""
    os.makedirs(config.output_dir, exist_ok=True)
    with open(os.path.join(config.output_dir, "config.json"), "w") as f:
        json.dump(run_settings(config, source, splits), f, indent=2)


def prepare_output(config, strategy=None):
    """Create ``config.output_dir`` (and ``tensorboard_dir`` when set) before any work, on the
    chief, so a run cannot train for an hour and then fail to save: a clear ``ValueError``
    naming the flag when it cannot be created or written."""
    if strategy is not None and not is_chief(strategy):
        return
    validation.writable_directory(config.output_dir, "output_dir")
    if getattr(config, "tensorboard_dir", ""):
        validation.writable_directory(config.tensorboard_dir, "tensorboard_dir")


def save_outputs(config, strategy, results, artifacts, source=None):
    """Write ``config.json``, ``results.json`` and ``artifacts`` (file name -> Keras model,
    numpy array or callable(path)) into ``config.output_dir``, on the chief only."""
    if not is_chief(strategy):
        return False
    os.makedirs(config.output_dir, exist_ok=True)
    for name, thing in artifacts.items():
        path = os.path.join(config.output_dir, name)
        if isinstance(thing, keras.Model):
            thing.save(path)
        elif isinstance(thing, np.ndarray):
            np.save(path, thing)
        else:
            thing(path)
    write_config(config, source)
    with open(os.path.join(config.output_dir, "results.json"), "w") as f:
        json.dump(_jsonable(results), f, indent=2)
    return True


def results_line(config, results):
    """The trainer's last line: where the results are (or who writes them)."""
    if results.get("written_by") != "chief":
        return (f"this worker is not the chief: the chief writes results and models "
                f"({results['seconds']} s)")
    return f"results: {os.path.join(config.output_dir, 'results.json')} ({results['seconds']} s)"


def run_experiment(config, build, fit, measure):
    """The skeleton: validate -> strategy -> data -> ``build`` -> ``fit`` -> ``measure`` -> save.

    ``build(config, source, strategy)`` returns the models (a dict);
    ``fit(config, source, strategy, models)`` trains them and returns what it
    learned (histories); ``measure(config, source, strategy, models, fitted)``
    returns ``(results, artifacts)``. A decode error inside ``tf.data`` is
    reported with the file's path.
    """
    config.validate()
    strategy = get_strategy(config)
    prepare_output(config, strategy)
    t0 = time.time()
    source = open_data(config, **getattr(config, "synthetic_options", lambda: {})())
    if config.verbose:
        print(source.summary())
    with source.naming_bad_files():
        models = build(config, source, strategy)
        for model in models.values():
            if isinstance(model, keras.Model):
                sync_batchnorm(model, strategy)
        fitted = fit(config, source, strategy, models)
        results, artifacts = measure(config, source, strategy, models, fitted)
    results.update(dataset=config.dataset, num_classes=source.num_classes,
                   replicas=int(strategy.num_replicas_in_sync), strategy=config.strategy,
                   eval_split=config.eval_split, eval_images=source.size(config.eval_split),
                   part_annotations=source.has_parts)
    if strategy.num_replicas_in_sync > 1:
        kept = [m for m in models.values() if isinstance(m, keras.Model)]
        results["batchnorm_statistics_agree"] = replicas_agree(
            strategy, [w for m in kept for w in batchnorm_statistics(m)])
        results["weights_agree"] = replicas_agree(strategy, [w for m in kept for w in m.weights])
    results["seconds"] = round(time.time() - t0, 1)
    results["written_by"] = "chief" if is_chief(strategy) else None
    save_outputs(config, strategy, results, artifacts, source)
    return results
