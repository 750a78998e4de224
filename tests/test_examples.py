"""Every fenced Python block of README.md and docs/*.md runs (issue 32).

A block may be preceded by a marker the test reads:

    <!-- example {"fixtures": ["images", "demo"], "replace": {"epochs=10": "epochs=1"}} -->

``fixtures`` name the variables the block uses without defining them (tiny data, a saved
model, a dataset directory: see ``FIXTURES``); ``replace`` shrinks it to test sizes (plain
text substitutions that must each match); ``"subprocess": true`` runs it in a fresh Python (a
block that must run before any TensorFlow op). Each block runs in its own namespace, in a
temporary working directory.
"""
import glob
import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BLOCK = re.compile(r"(?:<!-- example (?P<marker>\{.*?\}) -->\n)?```python\n(?P<code>.*?)```",
                   re.S)


def blocks(text):
    """[(line, marker dict, code)] of the fenced Python blocks of a markdown ``text``."""
    out = []
    for m in BLOCK.finditer(text):
        line = text.count("\n", 0, m.start("code"))
        out.append((line, json.loads(m.group("marker") or "{}"), m.group("code")))
    return out


def prepared(code, marker):
    """``code`` with the marker's substitutions, each of which must apply."""
    for old, new in marker.get("replace", {}).items():
        if old not in code:
            raise AssertionError(f"marker replacement {old!r} does not occur in the block")
        code = code.replace(old, new)
    return code


def _documents():
    return [os.path.join(ROOT, "README.md")] + sorted(glob.glob(os.path.join(ROOT, "docs", "*.md")))


CASES = [(os.path.relpath(path, ROOT), line, marker, code) for path in _documents()
         for line, marker, code in blocks(open(path, encoding="utf-8").read())]


@pytest.fixture(scope="module")
def context(tmp_path_factory):
    """Lazily built fixture values, shared by the blocks of this module."""
    return _Context(tmp_path_factory.mktemp("examples"))


class _Context:
    def __init__(self, root):
        self.root, self._made = root, {}

    def get(self, name):
        if name not in self._made:
            self._made[name] = getattr(self, "_" + name)()
        return self._made[name]

    def _images(self):  # 24 images, 4 of each of the 6 categories
        from keras_icnn.data import synthetic_parts

        ex = synthetic_parts.make_examples(24, image_size=64, num_classes=6, seed=0)
        return dict(images=ex["image"].astype(np.float32), labels=ex["label"], num_classes=6,
                    names=list(synthetic_parts.CATEGORY_NAMES[:6]))

    def _train_ds(self):
        import tensorflow as tf

        ctx = self.get("images")
        return dict(train_ds=tf.data.Dataset.from_tensor_slices(
            (ctx["images"], ctx["labels"])).batch(8))

    def _feature_maps(self):
        rng = np.random.default_rng(0)
        maps = np.maximum(rng.normal(size=(4, 7, 7, 8)), 0).astype(np.float32)
        return dict(feature_maps=maps, x=maps, labels=np.array([0, 1, 0, 1]),
                    target_classes=np.array([0, 0, 0, 0, 1, 1, 1, 1]))

    def _demo(self):  # make demo's two models, untrained, at the demo's layout
        import keras_icnn

        folder = self.root / "demo"
        folder.mkdir()
        base = keras_icnn.models.vgg_backbone((64, 64, 3), num_classes=6, width=4)
        icnn = keras_icnn.models.make_interpretable(base, "top_conv")
        icnn.save(folder / "interpretable.keras")
        base.save(folder / "ordinary.keras")
        filters = icnn.interpretable_layers[-1].filters
        return dict(demo_dir=str(folder), filter_parts=np.full(filters, -1), num_parts=4)

    def _performer(self):
        import keras_icnn

        keras_icnn.models.vgg_backbone((64, 64, 3), num_classes=6, width=4).save(
            self.root / "performer.keras")
        return {}

    def _models_dir(self):
        return dict(models_dir=str(self.root / "serving"))

    def _cub(self):
        from tests.data.conftest import make_cub

        return dict(cub=make_cub(self.root / "cub"))

    def _tfds(self):
        from keras_icnn.data import tfds_builder

        tfds_builder.build("tiny_64", str(self.root / "tfds"))
        return dict(tfds_dir=str(self.root / "tfds"))


@pytest.mark.parametrize("document,line,marker,code", CASES,
                         ids=[f"{d}:{line}" for d, line, _, _ in CASES])
def test_example_runs(document, line, marker, code, context, monkeypatch):
    code = prepared(code, marker)
    monkeypatch.chdir(context.root)
    if marker.get("subprocess"):
        env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES="")
        proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                              env=env, timeout=300)
        assert proc.returncode == 0, f"{document}:{line}\n{proc.stderr[-3000:]}"
        return
    namespace = {"__name__": f"example_{line}"}
    for name in marker.get("fixtures", ()):
        namespace.update(context.get(name))
    exec(compile(code, f"{document}:{line}", "exec"), namespace)


def test_a_broken_block_fails(context, monkeypatch):
    """The harness itself: a block with a mistake raises, and a stale replacement is caught."""
    (_, marker, code), = blocks('<!-- example {"fixtures": ["feature_maps"]} -->\n'
                                "```python\nimport keras_icnn\n"
                                "keras_icnn.layers.PartMask(beta=4.0, mu='peak')(feature_maps)\n```")
    namespace = dict(context.get("feature_maps"))
    with pytest.raises(ValueError, match="mu"):
        exec(compile(prepared(code, marker), "broken", "exec"), namespace)
    with pytest.raises(AssertionError, match="does not occur"):
        prepared(code, {"replace": {"epochs=10": "epochs=1"}})


def test_readme_is_a_front_door_whose_links_resolve():
    """README.md stays under 250 lines, and every relative link of it and of docs/*.md
    (pictures included) points at a file that exists."""
    readme = os.path.join(ROOT, "README.md")
    assert len(open(readme, encoding="utf-8").read().splitlines()) <= 250
    missing = []
    for path in _documents():
        text = open(path, encoding="utf-8").read()
        for target in re.findall(r"\]\(([^)\s]+)\)", text):
            if re.match(r"[a-z]+:", target) or target.startswith("#"):
                continue
            if not os.path.exists(os.path.join(os.path.dirname(path), target.split("#")[0])):
                missing.append(f"{os.path.relpath(path, ROOT)} -> {target}")
    assert not missing, missing


def test_docs_tables_are_generated_from_the_results():
    """`make docs-tables` has been run: every marked table equals its source's."""
    sys.path.insert(0, os.path.join(ROOT, "benchmarks"))
    import docs_tables

    for path in sorted(glob.glob(os.path.join(ROOT, "docs", "*.md"))):
        text = open(path, encoding="utf-8").read()
        assert docs_tables.fill(text) == text, f"{path}: run `make docs-tables`"
    filled = docs_tables.fill("<!-- table: x.md#2 -->\nold\n<!-- /table -->", root=_tables_root())
    assert filled == "<!-- table: x.md#2 -->\n| c |\n| 3 |\n<!-- /table -->"


def _tables_root():
    import tempfile

    root = tempfile.mkdtemp()
    with open(os.path.join(root, "x.md"), "w") as f:
        f.write("text\n| a | b |\n| 1 | 2 |\n\nmore\n| c |\n| 3 |\n")
    return root
