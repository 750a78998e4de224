"""One data layer for every trainer and ``evaluate.py``: ``--dataset`` / ``--data_dir``.

``open_source(...)`` returns a :class:`Source`: the class list, the part list
(``None`` where the dataset has no part annotations), and train / validation /
test splits that keep every class. Real data is never held in memory: a split
is a small table of file names, labels, boxes and landmarks, and
:meth:`Source.examples` streams it through ``tf.data`` (parallel decode, crop
to the object box where the dataset has one, resize), so memory is bounded by
the shuffle buffer, not by the dataset.

Datasets:

* ``synthetic``: the package's part-annotated creatures (in memory, generated
  deterministically from the seed): the test bench.
* ``cub``: CUB-200-2011 in its original layout (``images.txt``,
  ``image_class_labels.txt``, ``bounding_boxes.txt``, ``train_test_split.txt``,
  ``parts/``, ``images/``); crops to the bird's box; part landmarks grouped
  into head / torso / legs / tail with disk masks (see ``readers``).
* ``pascal_part``: ``JPEGImages/`` and ``Annotations_Part/*.mat``; one
  example per animal object, no official split: images are split by id,
  seeded and stratified by category.
* ``folder``: ``DIR/<class>/*.jpg|png`` (or ``DIR/train/<class>/`` with
  ``DIR/test/<class>/`` and optionally ``DIR/validation/<class>/``); no part
  annotations, so part metrics are "not applicable".
* ``tfds``: any image-classification TFDS dataset already prepared under
  ``data_dir`` (``tfds_name``; never downloads); image and label only.

The pieces live in ``source`` (the :class:`Source` class and what readers share),
``cub``, ``pascal_part``, ``folder`` and ``tfds_source``; this module opens a dataset by
name and re-exports them (the names it has always offered).

Example:
    >>> source = open_source("cub", "/data/CUB_200_2011", image_size=224, num_val=600)
    >>> source.num_classes, source.part_names
    (200, ['head', 'torso', 'legs', 'tail'])
    >>> train = source.dataset("train", batch_size=32, training=True, seed=0)
    >>> model.fit(train, validation_data=source.dataset("validation", 32))
"""

from keras_icnn import validation
from keras_icnn.data.cub import cub_index, cub_loader, open_cub, read_cub  # noqa: F401
from keras_icnn.data.folder import open_folder  # noqa: F401
from keras_icnn.data.pascal_part import open_pascal_part  # noqa: F401
from keras_icnn.data.source import (  # noqa: F401  (re-exported: the names sources offered)
    DEFAULT_SHUFFLE_BUFFER, IMAGE_EXTENSIONS, IMAGE_MAGIC, MAX_VAL_FRACTION, Source,
    check_headers, check_image_file, image_loader, split_sizes)
from keras_icnn.data.synthetic_parts import SPLITS  # noqa: F401 (the one list, re-exported)
from keras_icnn.data.tfds_source import open_tfds  # noqa: F401

DATASETS = ("synthetic", "cub", "pascal_part", "folder", "tfds")


def open_synthetic(image_size=64, num_classes=6, num_train=4800, num_val=600, num_test=1200,
                   seed=0, task="multi", category="bird", occlusion=None,
                   synthetic_config="default", categories="evaluation", **knobs):
    """The synthetic part data as a :class:`Source` (in memory; deterministic in ``seed``).

    ``synthetic_config`` names a difficulty of ``synthetic_parts.SYNTHETIC_CONFIGS``
    ("default", or "hard": CIFAR-like, calibrated with 10 categories); ``occlusion``
    and ``knobs`` (``similarity``, ``color_jitter``, ``distractors``) override its
    values where not None. ``categories="pretraining"``: the pretraining categories
    (``synthetic_parts.PRETRAINING_CATEGORY_NAMES``, disjoint from every evaluation's).

    Example:
        >>> source = open_synthetic(num_classes=10, num_train=300, num_val=0, num_test=100,
        ...                         synthetic_config="hard")
    """
    from keras_icnn.data import synthetic_parts

    look = synthetic_parts.synthetic_config(synthetic_config)
    unknown = set(knobs) - set(look)
    if unknown:
        raise TypeError(f"open_synthetic() got unexpected arguments {sorted(unknown)}; the "
                        f"difficulty knobs are {sorted(look)}")
    look.update({k: v for k, v in dict(knobs, occlusion=occlusion).items() if v is not None})
    common = dict(image_size=image_size, num_classes=num_classes, seed=seed,
                  categories=categories, **look)
    tables = {}
    for arg, n in (("num_train", num_train), ("num_val", num_val), ("num_test", num_test)):
        validation.non_negative_int(n, arg)
    for split, n in (("train", num_train), ("validation", num_val), ("test", num_test)):
        if task == "single":
            tables[split] = synthetic_parts.make_single_category_examples(
                category, n, split=split, **common)
        else:
            tables[split] = synthetic_parts.make_examples(n, split=split, **common)
    if task == "single":
        class_names = ["background", str(category)]
    else:
        class_names = list(synthetic_parts.category_names(categories)[:num_classes])
    name = "" if synthetic_config == "default" else f" {synthetic_config}"
    name += "" if categories == "evaluation" else f" {categories} categories"
    return Source("synthetic", class_names, list(synthetic_parts.PART_NAMES), tables,
                  image_size=image_size, description=f"synthetic{name} seed {seed}")


def open_source(dataset="synthetic", data_dir="", image_size=64, num_train=None, num_val=None,
                num_test=None, seed=0, tfds_name="", **synthetic):
    """The :class:`Source` named by ``--dataset`` (see the module docstring).

    Args:
        dataset: one of ``DATASETS``.
        data_dir: the dataset's directory (real datasets).
        image_size: side of the square images.
        num_train, num_test: limits, taken evenly across classes (``None``/0:
            all of a real dataset's images; the synthetic data needs a count).
        num_val: validation images, carved from the training files (stratified).
        seed: seed of the splits (and of the synthetic data).
        tfds_name: the TFDS dataset (``dataset="tfds"``).
        **synthetic: ``num_classes``, ``task``, ``category``, ``occlusion``,
            ``synthetic_config`` (and its knobs) of the synthetic data.
    """
    if dataset not in DATASETS:
        raise ValueError(f"`dataset` must be one of {DATASETS}. Received: dataset={dataset!r}")
    num_val = int(num_val or 0)
    common = dict(image_size=image_size, num_train=num_train or None, num_val=num_val,
                  num_test=num_test or None, seed=seed)
    if dataset == "synthetic":
        return open_synthetic(image_size, num_train=num_train, num_val=num_val, num_test=num_test,
                              seed=seed, **synthetic)
    if dataset == "cub":
        return open_cub(data_dir, **common)
    if dataset == "pascal_part":
        return open_pascal_part(data_dir, **common)
    if dataset == "folder":
        return open_folder(data_dir, **common)
    return open_tfds(data_dir, tfds_name, **common)
