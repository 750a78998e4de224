"""The public surface, as a snapshot (issue 45's safety net for the house redesign): every public
``__all__``, the names ``keras_icnn`` offers (eager and lazy), every command's flags with their
defaults and choices, the registered Keras class names, the console scripts, and the committed
``.keras`` models still loading.

A change to any of these fails here. When the change is meant (a new flag, a new public name, a
behaviour change the issue allows), regenerate the snapshot and commit it with the change:

    KERAS_ICNN_UPDATE_SNAPSHOTS=1 python -m pytest tests/test_public_api.py
"""
import glob
import importlib
import importlib.metadata
import json
import os

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SNAPSHOT = os.path.join(ROOT, "tests", "snapshots", "public_api.json")
# Packages and modules whose ``__all__`` (or, for the lazy package faces, ``dir()``) is public.
PUBLIC_MODULES = ("keras_icnn", "keras_icnn.layers", "keras_icnn.models", "keras_icnn.metrics",
                  "keras_icnn.recipes", "keras_icnn.data", "keras_icnn.data.layouts")


def _names(module_name):
    module = importlib.import_module(module_name)
    if hasattr(module, "__all__"):
        return sorted(module.__all__)
    return _package_face(module)


def _package_face(module):
    """The names a package's ``__init__.py`` offers, read from its source (``dir()`` would also
    list whatever submodule another import loaded): what it imports, defines, and the lazy
    submodules it declares to ``_lazy.submodules``."""
    import ast

    tree = ast.parse(open(module.__file__).read())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            names.update(a.asname or a.name for a in node.names)
        elif isinstance(node, (ast.FunctionDef, ast.ClassDef)) and node in tree.body:
            names.add(node.name)
        elif isinstance(node, ast.Assign) and node in tree.body:
            names.update(t.id for t in node.targets if isinstance(t, ast.Name))
        elif isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "submodules":
            names.update(e.value for arg in node.args if isinstance(arg, ast.Tuple)
                         for e in arg.elts if isinstance(e, ast.Constant))
    return sorted(n for n in names if not n.startswith("_"))


def _flag_table(flag_values):
    table = {}
    for name, flag in sorted(flag_values._flags().items()):
        if name != flag.name or flag.name in ("help", "helpfull", "helpshort", "helpxml"):
            continue  # short names are aliases of the same flag; absl's own help flags
        row = {"default": flag.default if isinstance(flag.default, (bool, int, float, str,
                                                                      type(None)))
               else list(flag.default) if isinstance(flag.default, (list, tuple))
               else repr(flag.default),
               "type": type(flag.parser).__name__}
        choices = getattr(flag.parser, "enum_values", None)
        if choices is None:
            choices = getattr(getattr(flag.parser, "_enum_parser", None), "enum_values", None)
        if choices is not None:
            row["choices"] = list(choices)
        table[name] = row
    return table


def _commands():
    from absl import flags

    from keras_icnn.cli import export
    from keras_icnn.recipes import CSGConfig, ExplainerConfig, ICNNConfig, define_flags
    from keras_icnn.recipes.adversarial import DetectConfig
    from keras_icnn.report import EvalConfig

    out = {}
    for command, config in (("train_icnn", ICNNConfig), ("train_csg", CSGConfig),
                            ("train_explainer", ExplainerConfig), ("evaluate", EvalConfig),
                            ("detect_adversarial", DetectConfig)):
        fv = flags.FlagValues()
        define_flags(config, fv, module_name=command)
        out[command] = _flag_table(fv)
    fv = flags.FlagValues()
    export.define_flags("export", fv)
    out["export"] = _flag_table(fv)
    return out


def surface():
    """Everything the snapshot holds (JSON-able)."""
    import keras

    import keras_icnn  # noqa: F401  (registers the Keras classes)
    from keras_icnn import cli

    scripts = sorted(f"{ep.name}={ep.value}" for ep in importlib.metadata.entry_points(
        group="console_scripts") if ep.value.startswith("keras_icnn_cli:"))
    return {
        "modules": {name: _names(name) for name in PUBLIC_MODULES},
        "commands": _commands(),
        "command_modules": list(cli.COMMANDS),
        "console_scripts": scripts,
        "keras_classes": sorted(k for k in keras.saving.get_custom_objects()
                                if k.startswith("keras_icnn>")),
    }


@pytest.fixture(scope="module")
def current():
    return json.loads(json.dumps(surface()))  # tuples as lists, as the file holds them


def _snapshot(current):
    if os.environ.get("KERAS_ICNN_UPDATE_SNAPSHOTS"):
        os.makedirs(os.path.dirname(SNAPSHOT), exist_ok=True)
        with open(SNAPSHOT, "w") as f:
            json.dump(current, f, indent=1, sort_keys=True)
            f.write("\n")
    with open(SNAPSHOT) as f:
        return json.load(f)


def _diff(old, new, path=""):
    """Readable differences between two JSON trees."""
    if isinstance(old, dict) and isinstance(new, dict):
        lines = []
        for key in sorted(set(old) | set(new)):
            if key not in new:
                lines.append(f"removed {path}{key}")
            elif key not in old:
                lines.append(f"added {path}{key}")
            else:
                lines += _diff(old[key], new[key], f"{path}{key}.")
        return lines
    if isinstance(old, list) and isinstance(new, list) and all(
            isinstance(v, str) for v in old + new):
        return ([f"removed {path}{v}" for v in old if v not in new]
                + [f"added {path}{v}" for v in new if v not in old]
                + ([f"reordered {path[:-1]}"] if sorted(old) == sorted(new) and old != new
                   else []))
    return [] if old == new else [f"changed {path[:-1]}: {old!r} -> {new!r}"]


@pytest.mark.parametrize("part", ["modules", "commands", "command_modules", "console_scripts",
                                  "keras_classes"])
def test_the_public_surface_is_unchanged(current, part):
    want = _snapshot(current)[part]
    lines = _diff(want, current[part], f"{part}.")
    assert not lines, ("the public surface changed (regenerate tests/snapshots/public_api.json "
                       "only when meant; see this module's docstring):\n" + "\n".join(lines))


def test_the_committed_models_load():
    import keras

    import keras_icnn  # noqa: F401

    paths = sorted(glob.glob(os.path.join(ROOT, "benchmarks", "results", "models", "**",
                                          "*.keras"), recursive=True))
    paths = [p for p in paths if "/faithfulness/" not in p]  # retrained, not committed
    assert paths, "no committed .keras model under benchmarks/results/models/"
    for path in paths:
        model = keras.saving.load_model(path)
        assert model.outputs[0].shape[-1] >= 2, path
