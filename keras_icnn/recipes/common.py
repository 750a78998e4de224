"""The one recipe skeleton the three experiments share, and the steps they share.

A recipe is a config dataclass (a :class:`~keras_icnn.config.options.RecipeConfig` whose fields
are declared with :func:`~keras_icnn.config.flags.option`, so the flags are generated) and three
functions, ``build`` -> ``fit`` -> ``measure``, that :func:`run_experiment` calls with the
shared data (:func:`open_data`), backbone (:func:`make_backbone`), strategy and output code.
Adding a dataset touches ``keras_icnn.data.sources``; adding a backbone touches
``keras_icnn.models.backbones``; no recipe changes.
"""

import dataclasses
import os
import time

import keras
import numpy as np

from keras_icnn import distribute, validation
from keras_icnn.distribute import batchnorm_statistics, is_chief, replicas_agree, sync_batchnorm
from keras_icnn.reporting.outputs import jsonable, write_config, write_json


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



def tensorboard(config, strategy, run):
    """``[TrainingSummaries]`` for the model ``run`` when ``config.tensorboard_dir`` is set
    (on the chief only: workers would write the same event files), else ``[]``."""
    if not getattr(config, "tensorboard_dir", "") or not is_chief(strategy):
        return []
    from keras_icnn.models.callbacks import TrainingSummaries

    return [TrainingSummaries(os.path.join(config.tensorboard_dir, run),
                              hparams=jsonable(dataclasses.asdict(config)))]



# ----------------------------------------------------------------------------- shared steps


def open_data(config, sizes=None, **synthetic):
    """The config's :class:`~keras_icnn.data.sources.Source` (classes, parts, splits): the one
    way the commands open their data.

    Args:
        config: a config with the :class:`~keras_icnn.config.options.DataOptions` fields.
        sizes: synthetic data only: ``{split: images}`` for the splits to make at other
            sizes than the config's (the evaluators make only their evaluation split).
        **synthetic: more :func:`~keras_icnn.data.sources.open_synthetic` options (``task``,
            ``category``, the difficulty knobs).
    """
    from keras_icnn.data import sources

    train, val, test = getattr(config, "SYNTHETIC_SIZES", (4800, 600, 1200))
    if config.dataset == "synthetic":
        n = dict({"train": config.num_train or train, "validation": config.num_val,
                  "test": config.num_test or test}, **(sizes or {}))
        return sources.open_synthetic(
            config.image_size, num_classes=config.num_classes, num_train=n["train"],
            num_val=n["validation"], num_test=n["test"], seed=config.seed,
            synthetic_config=getattr(config, "synthetic_config", "default"), **synthetic)
    return sources.open_source(config.dataset, config.data_dir, config.image_size,
                               num_train=config.num_train or None, num_val=config.num_val,
                               num_test=config.num_test or None, seed=config.seed,
                               tfds_name=config.tfds_name)


def datasets(config, source, strategy=None, shuffle_train=True):
    """(train, validation) ``tf.data`` pipelines of the config's source; under a multi-worker
    strategy each worker reads and decodes only its shard of the files.

    The training order is a function of ``config.seed`` alone: ``tf.data``'s seeded shuffle
    also reads TensorFlow's global seed, so it is set here (to ``config.seed``) rather than
    inherited from whatever ran before. (Inheriting it moved the ICNN bench's figures when
    8fc21d3 started building the pipeline after ``keras.utils.set_random_seed``: issue 25.)
    An epoch is ``config.passes_per_epoch`` passes over the training set (one unless
    ``min_steps_per_epoch`` asks for more steps than a pass makes).
    """
    import tensorflow as tf

    tf.random.set_seed(config.seed)
    cache = config.cache or None
    shard = distribute.worker_shard(strategy) if strategy is not None else None
    train = source.dataset("train", config.batch_size, training=shuffle_train, seed=config.seed,
                           cache=cache, shard=shard)
    passes = config.passes_per_epoch(source.size("train"))
    if passes > 1:  # an epoch of several whole passes, each reshuffled (min_steps_per_epoch)
        train = train.repeat(passes)
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
    """The strategy of ``config.strategy`` (``config.num_cpu_devices`` CPU replicas for
    ``mirrored`` without GPUs)."""
    return distribute.get_strategy(config.strategy, config.num_cpu_devices)



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
    write_json(os.path.join(config.output_dir, "results.json"), results)
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
    results.update(steps_per_epoch=config.steps_per_epoch(source.size("train")),
                   passes_per_epoch=config.passes_per_epoch(source.size("train")))
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
