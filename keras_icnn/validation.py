"""Argument checks shared by the layers, losses, metrics, models and recipes.

Every check raises a ``ValueError`` / ``TypeError`` whose message names the
argument, says what was expected and what was received. Checks on tensors come
in two forms: numpy (metrics, data given as arrays) and TF assert ops (layers,
``tf.data`` pipelines). TF asserts run in eager and graph mode and inside
``tf.data``; XLA drops them, which is why ``InterpretableModel.fit`` and
``CSGModel.fit`` check the labels of their data before the compiled step
(:func:`checked_fit_data`).
"""

import math
import os

import numpy as np
import tensorflow as tf


def labels_np(labels, num_classes=None, count=None, name="labels"):
    """``labels`` as an int64 array [N], checked.

    Accepts integer labels or floats with whole values; a column ``[N, 1]`` is
    flattened. Raises ``TypeError`` for non-whole or non-numeric values and
    ``ValueError`` for a wrong rank, a label outside ``[0, num_classes)`` or a
    length other than ``count``.
    """
    arr = np.asarray(labels)
    if arr.ndim == 2 and arr.shape[1] == 1:
        arr = arr[:, 0]
    if arr.ndim != 1:
        raise ValueError(f"`{name}` must be a 1-D array of class indices [N]. "
                         f"Received: shape={arr.shape}")
    if arr.dtype == bool or not np.issubdtype(arr.dtype, np.number):
        raise TypeError(f"`{name}` must be integer class indices. Received: dtype={arr.dtype}")
    if not np.issubdtype(arr.dtype, np.integer):
        bad = ~np.isfinite(arr) | (arr != np.round(arr))
        if bad.any():
            raise TypeError(f"`{name}` must be whole numbers (class indices); floats would be "
                            f"truncated. Received: {arr[bad][:3].tolist()} (dtype={arr.dtype})")
    arr = arr.astype(np.int64)
    if count is not None and len(arr) != count:
        raise ValueError(f"`{name}` must have one label per example ({count}). "
                         f"Received: {len(arr)} labels")
    if arr.size and (arr.min() < 0 or (num_classes is not None and arr.max() >= num_classes)):
        interval = f"lie in [0, {num_classes})" if num_classes is not None else "be >= 0"
        raise ValueError(f"`{name}` must {interval}. "
                         f"Received: min={arr.min()}, max={arr.max()}")
    return arr


def labels_tf(labels, num_classes, batch_size=None, where="labels"):
    """int32 ``labels`` [B] with assert ops for whole values, range and batch size.

    ``num_classes``: labels must lie in ``[0, num_classes)``; None: only ``>= 0``.
    ``batch_size``: a static int, a scalar tensor, or None. Eager labels are
    checked at once (``TypeError`` / ``ValueError``, as :func:`labels_np`);
    symbolic ones get assert ops that fail at run time with ``where`` in the
    message (static mismatches raise at once).
    """
    labels = tf.convert_to_tensor(labels)
    if tf.executing_eagerly() and hasattr(labels, "numpy"):
        if batch_size is not None and not isinstance(batch_size, int):
            batch_size = int(batch_size)
        values = labels.numpy()
        if values.ndim == 2 and values.shape[1] == 1:
            values = values[:, 0]
        checked = labels_np(values, num_classes, batch_size, name=f"{where}: labels")
        return tf.constant(checked, tf.int32)
    if labels.dtype == tf.bool or labels.dtype == tf.string:
        raise TypeError(f"{where}: labels must be integer class indices. "
                        f"Received: dtype={labels.dtype.name}")
    if labels.shape.rank is not None and labels.shape.rank > 1 and labels.shape[1:].num_elements() != 1:
        raise ValueError(f"{where}: labels must be [batch] class indices. "
                         f"Received: shape={labels.shape}")
    flat = tf.reshape(labels, [-1])
    checks = []
    if labels.dtype.is_floating:
        checks.append(tf.debugging.assert_equal(
            flat, tf.round(flat),
            message=f"{where}: labels must be whole numbers (class indices); floats would be "
                    "truncated"))
    static_b = flat.shape[0]
    if isinstance(batch_size, int) and static_b is not None and static_b != batch_size:
        raise ValueError(f"{where}: one label per image expected ({batch_size}). "
                         f"Received: {static_b} labels")
    if batch_size is not None and not isinstance(batch_size, int):
        checks.append(tf.debugging.assert_equal(
            tf.shape(flat)[0], tf.cast(batch_size, tf.int32),
            message=f"{where}: one label per image expected (labels and batch differ in size)"))
    ints = tf.cast(flat, tf.int32)
    interval = f"lie in [0, {num_classes})" if num_classes is not None else "be >= 0"
    checks.append(tf.debugging.assert_greater_equal(
        ints, 0, message=f"{where}: labels must {interval}"))
    if num_classes is not None:
        checks.append(tf.debugging.assert_less(
            ints, num_classes, message=f"{where}: labels must {interval}"))
    with tf.control_dependencies(checks):
        return tf.identity(ints)


def checked_fit_data(x, y, num_classes, where):
    """Check the labels of ``fit`` data outside the (possibly XLA-compiled) step.

    Arrays are checked now; a ``tf.data.Dataset`` of ``(x, y[, w])`` tuples gets
    the checks mapped into its pipeline. Returns ``(x, y)`` to pass on.
    """
    needs = (f"{where} needs labels: fit(images, labels) or a dataset of (images, labels) "
             "pairs")
    if isinstance(x, tf.data.Dataset):
        spec = x.element_spec
        if not (isinstance(spec, tuple) and len(spec) >= 2):
            raise ValueError(f"{needs}. Received: a dataset whose elements are {spec}")

        def check(*element):
            labels = labels_tf(element[1], num_classes, where=where)
            return (element[0], tf.reshape(labels, tf.shape(element[1]))) + element[2:]

        return x.map(check, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True), y
    if y is None and not isinstance(x, (tuple, list)) and not hasattr(x, "__next__") \
            and not isinstance(x, keras_py_dataset_types()):
        raise ValueError(f"{needs}. Received: x of type {type(x).__name__} and y=None")
    if y is not None and not isinstance(y, (dict, list, tuple)) and hasattr(y, "shape"):
        count = len(x) if hasattr(x, "__len__") and not isinstance(x, dict) else None
        labels_np(y, num_classes, count, name=f"{where}: y")
    return x, y


def keras_py_dataset_types():
    """The Python-side data types ``keras.Model.fit`` takes with ``y=None`` (a generator or a
    ``keras.utils.PyDataset`` yields its own labels)."""
    import keras

    return (keras.utils.PyDataset,)


def writable_directory(path, name):
    """Create directory ``path`` (an option named ``name``) now, before any work that would
    be lost: a clear ``ValueError`` naming the option when it cannot be created or written."""
    path = os.path.expanduser(str(path))
    if not path:
        raise ValueError(f"`{name}` must name a directory. Received: {name}=''")
    if os.path.exists(path) and not os.path.isdir(path):
        raise ValueError(f"`{name}` must be a directory; {path} is a file. Received: "
                         f"{name}={path!r}")
    try:
        os.makedirs(path, exist_ok=True)
    except OSError as e:
        raise ValueError(f"`{name}`: cannot create the directory {path} ({e.strerror or e}). "
                         f"Received: {name}={path!r}") from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise ValueError(f"`{name}`: the directory {path} is not writable. Received: "
                         f"{name}={path!r}")
    return path


def positive_int(value, name):
    """``int(value)``, which must be >= 1 (bools rejected)."""
    return _int_at_least(value, name, 1)


def non_negative_int(value, name):
    """``int(value)``, which must be >= 0 (bools rejected)."""
    return _int_at_least(value, name, 0)


def _int_at_least(value, name, low):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        if not (isinstance(value, (float, np.floating)) and float(value).is_integer()):
            raise TypeError(f"`{name}` must be an integer >= {low}. Received: {name}={value!r}")
    if int(value) < low:
        raise ValueError(f"`{name}` must be an integer >= {low}. Received: {name}={value}")
    return int(value)


def number_in(value, name, low=None, high=None, low_open=False, high_open=False):
    """``float(value)``: finite and within the given bounds (open or closed)."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise TypeError(f"`{name}` must be a number. Received: {name}={value!r}") from None
    bad = (not math.isfinite(v)
           or (low is not None and (v <= low if low_open else v < low))
           or (high is not None and (v >= high if high_open else v > high)))
    if bad:
        lo = "-inf" if low is None else low
        hi = "inf" if high is None else high
        interval = f"{'(' if low_open or low is None else '['}{lo}, {hi}{')' if high_open or high is None else ']'}"
        raise ValueError(f"`{name}` must lie in {interval}. Received: {name}={value}")
    return v


def one_of(value, name, choices):
    """``value``, which must be one of ``choices`` (a ValueError naming ``name`` otherwise)."""
    if value not in choices:
        raise ValueError(f"`{name}` must be one of {tuple(choices)}. Received: {name}={value!r}")
    return value


def array_of_rank(array, name, rank, layout=""):
    """``np.asarray(array)``, which must have ``rank`` dimensions (``layout`` names them)."""
    arr = np.asarray(array)
    if arr.ndim != rank:
        raise ValueError(f"`{name}` must be a {rank}D array{' ' + layout if layout else ''}. "
                         f"Received: {name} of shape {arr.shape}")
    return arr


def finite_array(array, name, dtype=np.float64):
    """``array`` as numpy; raises when it holds NaN or Inf."""
    arr = np.asarray(array, dtype)
    if not np.isfinite(arr).all():
        bad = int((~np.isfinite(arr)).sum())
        raise ValueError(f"`{name}` must be finite. Received: {bad} NaN/Inf value(s) of {arr.size}")
    return arr


def check_choice(config, key, choices):
    """Raise a ValueError naming ``key``, its value and ``choices`` unless the value is one."""
    value = getattr(config, key)
    if value not in choices:
        raise ValueError(f"`{key}` must be one of {choices}. Received: {key}={value!r}")


def check_fields(config, positive=(), non_negative=(), positive_numbers=(),
                 non_negative_numbers=(), choices=None):
    """Check a config's fields by kind; the first bad one raises, naming the field.

    ``positive`` / ``non_negative``: integers >= 1 / >= 0; ``positive_numbers`` /
    ``non_negative_numbers``: finite floats > 0 / >= 0; ``choices``: {field: allowed}.
    """
    for key in positive:
        positive_int(getattr(config, key), key)
    for key in non_negative:
        non_negative_int(getattr(config, key), key)
    for key in positive_numbers:
        number_in(getattr(config, key), key, low=0, low_open=True)
    for key in non_negative_numbers:
        number_in(getattr(config, key), key, low=0)
    for key, allowed in (choices or {}).items():
        check_choice(config, key, allowed)
    if getattr(config, "verbose", 0) not in (0, 1, 2):
        raise ValueError(f"`verbose` must be 0, 1 or 2. Received: verbose={config.verbose!r}")
    return config


def check_images(model, images, caller):
    """float32 images [N >= 1, H, W, C] matching ``model``'s input, with finite values."""
    images = np.asarray(images, np.float32)
    want = tuple(model.inputs[0].shape[1:])
    if images.ndim != 4 or len(images) < 1 or any(
            w is not None and w != g for w, g in zip(want, images.shape[1:])):
        raise ValueError(f"{caller}: `images` must have shape [N >= 1, {', '.join(map(str, want))}]"
                         f" (the model's input). Received: shape={images.shape}")
    if not np.isfinite(images).all():
        raise ValueError(f"{caller}: `images` must be finite. Received: "
                         f"{int((~np.isfinite(images)).sum())} NaN/Inf value(s)")
    return images
