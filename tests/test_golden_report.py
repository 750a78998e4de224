"""The golden report (issue 45's safety net): ``keras-icnn-evaluate``'s numbers on two fixed,
committed tiny models (tests/golden/*.keras) and fixed synthetic data equal the numbers
committed in tests/golden/report.json, before and after the house redesign.

Every number of report.json's ``models`` and ``atlas`` is compared (relative tolerance 1e-4:
float32 sums on the same CPU kind), except times. A change of the metrics that is meant to
change the report regenerates the file with ``python tests/golden/make_golden.py`` and says so.
"""
import json
import os

import numpy as np
import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
GOLDEN = os.path.join(HERE, "golden", "report.json")
MODELS = [os.path.join(HERE, "golden", f"{name}.keras") for name in ("ordinary", "interpretable")]
SETTINGS = dict(names=("ordinary", "interpretable"), image_size=32, num_classes=3,
                num_examples=36, gradmap_examples=3, atlas_filters=6, atlas_images=3,
                ascent_steps=2, explained_predictions=1, seed=0, verbose=0)


def _numbers(tree, path=""):
    """{path: number} of every number in a JSON tree (times left out)."""
    out = {}
    if isinstance(tree, dict):
        for key, value in tree.items():
            if "seconds" not in str(key):
                out.update(_numbers(value, f"{path}/{key}"))
    elif isinstance(tree, list):
        for i, value in enumerate(tree):
            out.update(_numbers(value, f"{path}/{i}"))
    elif isinstance(tree, (int, float)) and not isinstance(tree, bool) and tree is not None:
        out[path] = float(tree)
    return out


def report_numbers(output_dir):
    """Run the evaluation of the golden models; every number of its report.json."""
    from keras_icnn.report import EvalConfig, evaluate_models

    evaluate_models(EvalConfig(models=tuple(MODELS), output_dir=str(output_dir), **SETTINGS))
    with open(os.path.join(output_dir, "report.json")) as f:
        report = json.load(f)
    return _numbers({"models": report["models"], "atlas": report.get("atlas")})


def test_evaluate_reports_the_golden_numbers(tmp_path):
    with open(GOLDEN) as f:
        want = json.load(f)
    got = report_numbers(tmp_path / "eval")
    missing, extra = sorted(set(want) - set(got)), sorted(set(got) - set(want))
    assert not missing and not extra, f"report.json's numbers changed: missing {missing[:10]}, " \
                                      f"new {extra[:10]}"
    keys = sorted(want)
    w = np.array([want[k] for k in keys])
    g = np.array([got[k] for k in keys])
    bad = [k for k, a, b in zip(keys, w, g)
           if not np.isclose(a, b, rtol=1e-4, atol=1e-6, equal_nan=True)]
    assert not bad, "report.json differs from the golden numbers:\n" + "\n".join(
        f"  {k}: golden {want[k]!r}, now {got[k]!r}" for k in bad[:20])


def test_the_golden_models_are_committed():
    for path in MODELS:
        assert os.path.getsize(path) < 500_000, path
    pytest.importorskip("keras")
