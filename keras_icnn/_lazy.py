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


def retired_switches(module_name, switches):
    """Make setting (or reading) a retired module-level switch of ``module_name`` raise an
    ``AttributeError`` that says what replaced it, instead of silently doing nothing.

    ``switches``: ``{name: "what to use instead"}``. Example (at the end of a module):

        _lazy.retired_switches(__name__, {"FUSE": "InterpretableConv(fused=False)"})
    """
    import sys
    import types

    module = sys.modules[module_name]

    def message(name):
        return (f"{module_name}.{name} was removed (issue 45: no module switches); use "
                f"{switches[name]}.")

    class _Module(types.ModuleType):
        def __setattr__(self, name, value):
            if name in switches:
                raise AttributeError(message(name))
            super().__setattr__(name, value)

        def __getattr__(self, name):
            if name in switches:
                raise AttributeError(message(name))
            raise AttributeError(f"module {module_name!r} has no attribute {name!r}")

    module.__class__ = _Module
