"""Console entry points of keras_icnn (setup.py's ``console_scripts``; ``trainers/*.py`` and
``export/export_savedmodel.py`` call them too). The commands live in :mod:`keras_icnn.cli`;
this top-level module only settles TensorFlow's C++ log level *before* TensorFlow is
imported, which no module inside ``keras_icnn`` can do (importing any of them imports the
package, which imports TensorFlow).

The level: ``TF_CPP_MIN_LOG_LEVEL`` when you set it; otherwise 2 (warnings and errors
hidden, as the commands always did) on a machine with an NVIDIA driver, and 3 on one
without. There the one C++ error TensorFlow logs is ``failed call to cuInit``: its probe
for a GPU failing, not a failure of the command (errors that matter reach Python as
exceptions and are printed whatever the level).
"""
import importlib
import os


def _nvidia_driver_present():
    import ctypes.util

    return os.path.exists("/proc/driver/nvidia/version") or bool(ctypes.util.find_library("cuda"))


def quiet_tensorflow_startup():
    """Set ``TF_CPP_MIN_LOG_LEVEL`` as the module docstring says, unless it is set."""
    if "TF_CPP_MIN_LOG_LEVEL" not in os.environ:
        os.environ["TF_CPP_MIN_LOG_LEVEL"] = "2" if _nvidia_driver_present() else "3"


def _command(name):
    def run():
        quiet_tensorflow_startup()
        importlib.import_module(f"keras_icnn.cli.{name}").run()

    run.__name__ = name
    run.__doc__ = f"Run the ``keras_icnn.cli.{name}`` command."
    return run


train_icnn = _command("train_icnn")
train_csg = _command("train_csg")
train_explainer = _command("train_explainer")
evaluate = _command("evaluate")
detect_adversarial = _command("detect_adversarial")
export = _command("export")
pretrain = _command("pretrain")


def preview():
    """``keras-icnn-preview --preview OUT.png``: a picture of the synthetic part data
    (:func:`keras_icnn.data.synthetic_preview.main`), with TensorFlow's start-up quieted."""
    quiet_tensorflow_startup()
    import sys

    sys.exit(importlib.import_module("keras_icnn.data.synthetic_preview").main())
