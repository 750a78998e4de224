"""``import keras_icnn`` gives every public submodule (issue 32): the fast ones at once, the
others (``data``, ``metrics``, ``explain``, ``viz``, ...) on first attribute access."""
import subprocess
import sys

import pytest

import keras_icnn

CHECK = """
import sys
import keras_icnn
lazy = ("keras_icnn.viz", "keras_icnn.explain", "keras_icnn.data.synthetic_parts",
        "keras_icnn.metrics.stats")
print(sorted(m for m in lazy if m in sys.modules))
shape = keras_icnn.data.synthetic_parts.make_examples(2, num_classes=2)["image"].shape
print(keras_icnn.viz.__name__, keras_icnn.explain.__name__, keras_icnn.metrics.stats.__name__,
      shape)
print(sorted(m for m in lazy if m in sys.modules))
"""


def test_bare_import_gives_every_submodule_lazily():
    out = subprocess.run([sys.executable, "-c", CHECK], capture_output=True, text=True,
                         check=True).stdout.splitlines()
    assert out == ["[]",
                   "keras_icnn.viz keras_icnn.explain keras_icnn.metrics.stats (2, 64, 64, 3)",
                   "['keras_icnn.data.synthetic_parts', 'keras_icnn.explain', "
                   "'keras_icnn.metrics.stats', 'keras_icnn.viz']"]


def test_lazy_names_are_listed_and_unknown_names_raise():
    for package, name in ((keras_icnn, "viz"), (keras_icnn.data, "readers"),
                          (keras_icnn.metrics, "stats")):
        assert name in dir(package)
        assert getattr(package, name).__name__ == f"{package.__name__}.{name}"
    with pytest.raises(AttributeError, match="module 'keras_icnn' has no attribute 'nope'"):
        keras_icnn.nope  # noqa: B018
    with pytest.raises(AttributeError, match="'keras_icnn.data' has no attribute 'nope'"):
        keras_icnn.data.nope  # noqa: B018
