"""`keras-icnn-evaluate` end to end (recipes/evaluate.py through the command): the report,
its pictures and its tables."""
import json
import os
import shutil
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_icnn import report

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_evaluate_writes_report_and_pictures(evaluated):
    proc, out_dir, _ = evaluated
    rep = json.loads((out_dir / "report.json").read_text())
    config = json.loads((out_dir / "config.json").read_text())  # the settings it ran with
    assert config["names"] == ["icnn", "resnet", "csg"] and config["num_examples"] == 36
    icnn, resnet = rep["models"]["icnn"], rep["models"]["resnet"]
    assert icnn["layer"] == "top_conv_interp" and resnet["layer"] == "top_conv"
    assert "cam_avg_iou" in resnet and "cam_avg_iou" not in icnn  # CAM needs GAP + dense
    for key in ("accuracy", "location_instability", "part_interpretability", "mis",
                "activmap_avg_iou", "gradmap_avg_iou"):
        assert np.isfinite(icnn[key])
    assert "redundancy_r0.1" in icnn and "c_ic" in icnn
    md = (out_dir / "report.md").read_text()
    assert "| icnn |" in md and "| resnet |" in md
    for png in icnn["pictures"].values():
        assert open(png, "rb").read(8) == b"\x89PNG\r\n\x1a\n"
    assert "gate_matrix" in rep["models"]["csg"]["pictures"]
    assert "| icnn |" in proc.stdout
    assert proc.stdout.strip().endswith(str(out_dir / "report.html"))
    # --trees --tree_images=6: a tree per class of 6 training images; its modes partition them.
    for section in rep["atlas"]:
        trees = section["trees"]
        assert [c["images"] for c in trees["classes"]] == [6, 6, 6]
        for c in trees["classes"]:
            assert 1 <= c["modes"] <= 6 and c["depth"] >= 1
            shown = [m["images"] for m in c["top_modes"]]
            assert len(shown) == min(3, c["modes"]) and sum(shown) <= 6 and min(shown) >= 1
            assert shown == sorted(shown, reverse=True)  # the largest first
        assert len(trees["paths"]) == 3 and all(p["steps"] for p in trees["paths"])
    # --graph --graph_images=6: an explanatory graph of each model on its 18 training images,
    # three layers (three map sizes), three nodes per filter.
    for section, name in zip(rep["atlas"], ("icnn", "resnet", "csg")):
        graph = section["graph"]
        layers = graph["layers"]
        assert graph["summary"]["images"] == 18 and len(layers) == 3, name
        assert layers[0]["name"] == rep["models"][name]["layer"]
        assert graph["summary"]["nodes"] == sum(l["nodes"] for l in layers) == 3 * sum(
            l["filters"] for l in layers)
        assert all(0 <= l["presence"] <= 1 and "picture" not in l for l in layers)


def test_markdown_table_shape():
    table = report.markdown_table({"a": {"accuracy": 0.5, "mis": 0.25}, "b": {"accuracy": 1.0}})
    lines = table.splitlines()
    assert lines[0] == "| model | accuracy (↑) | MIS (↑) |"
    assert lines[2] == "| a | 0.5000 | 0.2500 |" and lines[3] == "| b | 1.0000 | n/a |"
