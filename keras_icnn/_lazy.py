"""PEP 562 lazy submodules: ``keras_icnn.viz`` after a bare ``import keras_icnn``."""

import importlib


def submodules(package, names):
    """``(__getattr__, __dir__)`` for ``package`` that import each of ``names`` on first
    attribute access and list them in ``dir()``.

    Example (in a package's ``__init__.py``):

        __getattr__, __dir__ = _lazy.submodules(__name__, ("stats", "streaming"))
    """
    names = tuple(names)

    def __getattr__(name):
        if name in names:
            module = importlib.import_module(f"{package}.{name}")
            setattr(importlib.import_module(package), name, module)
            return module
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    def __dir__():
        return sorted(set(vars(importlib.import_module(package))) | set(names))

    return __getattr__, __dir__
