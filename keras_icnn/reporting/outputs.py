"""The one JSON writer of the package: every command's ``config.json`` (the *effective*
settings: what the data decided replaces the flags' values) and ``results.json``, report.json
and the benchmarks' JSON go through :func:`jsonable` / :func:`write_json`.

Example:
    >>> write_json("/tmp/out/results.json", {"mis": np.float32(0.4)})
"""
import dataclasses
import json
import os

import numpy as np


def jsonable(value):
    """``value`` with numpy scalars and arrays (at any depth of dicts, lists and tuples) as
    plain Python numbers and lists, dict keys as strings; anything else with a ``tolist`` is
    listed, the rest left as is."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, (np.floating, np.integer, np.bool_)):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return value


def _fallback(obj):
    return obj.tolist() if hasattr(obj, "tolist") else str(obj)


def write_json(path, value, indent=2):
    """Write ``value`` (through :func:`jsonable`; anything else JSON cannot hold by its
    ``tolist()``, else its ``str``) to ``path``, creating its folder. Returns ``path``."""
    folder = os.path.dirname(path)
    if folder:
        os.makedirs(folder, exist_ok=True)
    with open(path, "w") as f:
        json.dump(jsonable(value), f, indent=indent, default=_fallback)
    return path


SPLIT_FIELDS = (("num_train", "train"), ("num_val", "validation"), ("num_test", "test"))


def run_settings(config, source=None, splits=SPLIT_FIELDS):
    """The settings a run used: ``config``'s fields, with what the data decided in place of the
    flags' values when ``source`` is given (``num_classes`` and the split sizes: a CUB run
    with 8 classes records 8, not the flag's default), and under ``"from_data"`` the flag
    values those replaced; ``eval_images``: the size of the split measured on. ``splits``:
    the (field, split) pairs to record (the evaluators read only their evaluation split)."""
    settings = jsonable(dataclasses.asdict(config))
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
    return write_json(os.path.join(config.output_dir, "config.json"),
                      run_settings(config, source, splits))

