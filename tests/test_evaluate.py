import json
import os
import subprocess
import sys

import keras
import numpy as np

from keras_icnn import report
from keras_icnn.models import make_interpretable, resnet20_backbone, vgg_backbone

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_evaluate_writes_report_and_pictures(tmp_path):
    keras.utils.set_random_seed(0)
    vgg = make_interpretable(vgg_backbone((32, 32, 3), 3, width=4), "top_conv")
    res = resnet20_backbone((32, 32, 3), 3, width=4, blocks_per_stage=1)
    vgg.save(tmp_path / "icnn.keras")
    res.save(tmp_path / "resnet.keras")
    out_dir = tmp_path / "eval"
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="")
    proc = subprocess.run(
        [sys.executable, "trainers/evaluate.py", f"--models={tmp_path / 'icnn.keras'},"
         f"{tmp_path / 'resnet.keras'}", "--names=icnn,resnet", "--num_examples=36",
         "--image_size=32", "--num_classes=3", "--gradmap_examples=4", "--verbose=0",
         f"--output_dir={out_dir}"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rep = json.loads((out_dir / "report.json").read_text())
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
    assert "| icnn |" in proc.stdout


def test_markdown_table_shape():
    table = report.markdown_table({"a": {"accuracy": 0.5, "mis": 0.25}, "b": {"accuracy": 1.0}})
    lines = table.splitlines()
    assert lines[0] == "| model | accuracy (↑) | MIS (↑) |"
    assert lines[2] == "| a | 0.5000 | 0.2500 |" and lines[3] == "| b | 1.0000 | n/a |"
