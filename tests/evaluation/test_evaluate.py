import json
import os
import subprocess
import sys

import keras
import numpy as np
import tensorflow as tf

from keras_icnn import report
from keras_icnn.models import make_interpretable, resnet20_backbone, vgg_backbone

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


import shutil

import pytest

from keras_icnn.models import make_csg


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("evaluate")
    keras.utils.set_random_seed(0)
    vgg = make_interpretable(vgg_backbone((32, 32, 3), 3, width=4), "top_conv")
    res = resnet20_backbone((32, 32, 3), 3, width=4, blocks_per_stage=1)
    csg = make_csg(resnet20_backbone((32, 32, 3), 3, width=4, blocks_per_stage=1), "top_conv",
                   density=0.4)
    gate = csg.gate_layer.gate
    gate.assign(np.random.RandomState(1).uniform(0, 1, gate.shape).astype("float32"))
    paths = []
    for name, model in (("icnn", vgg), ("resnet", res), ("csg", csg)):
        model.save(tmp_path / f"{name}.keras")
        paths.append(str(tmp_path / f"{name}.keras"))
    out_dir = tmp_path / "eval"
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="")
    args = [f"--models={','.join(paths)}", "--names=icnn,resnet,csg", "--num_examples=36",
            "--image_size=32", "--num_classes=3", "--gradmap_examples=4", "--verbose=0",
            "--atlas_filters=20", "--atlas_images=5", "--ascent_steps=16",
            f"--output_dir={out_dir}"]
    proc = subprocess.run([sys.executable, "trainers/evaluate.py"] + args, cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc, out_dir, {"icnn": vgg, "resnet": res, "csg": csg}


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


def test_atlas_shows_each_filters_top_activating_images(evaluated):
    from keras_icnn import metrics

    _, out_dir, models = evaluated
    rep = json.loads((out_dir / "report.json").read_text())
    config = report.EvalConfig(num_examples=36, image_size=32, num_classes=3)
    source = report.load_source(config)
    batches = list(source.dataset("test", 64, as_supervised=False))
    images = np.concatenate([b["image"].numpy() for b in batches])
    labels = np.concatenate([b["label"].numpy() for b in batches])
    part_masks = np.concatenate([b["part_masks"].numpy() for b in batches])
    concepts, names = metrics.category_part_concepts(part_masks, labels, 3,
                                                     class_names=source.class_names,
                                                     part_names=source.part_names)
    for section in rep["atlas"]:
        model = models[section["name"]]
        r = metrics.collect_responses(model, section["layer"], {"image": images}, verbose=0)
        assert len(section["filters"]) == min(20, section["num_filters"])
        # Network Dissection (dataset-wide IoU, (category, part) concepts) = in memory.
        dis = metrics.dissection(r["maps"], concepts)
        row = rep["models"][section["name"]]
        assert row["unique_detectors"] == dis["unique_detectors"]
        assert row["mean_best_iou"] == pytest.approx(dis["mean_best_iou"], rel=1e-6)
        assert section["dissection"]["unique_detectors"] == dis["unique_detectors"]
        for card in section["filters"]:
            want = np.argsort(-r["scores"][:, card["index"]], kind="stable")[:5]
            assert card["top_images"] == want.tolist()
            f = card["index"]
            assert card["concept"] == names[dis["best_concept"][f]]
            assert card["concept_iou"] == pytest.approx(dis["best_iou"][f], rel=1e-6, abs=1e-9)
        if section["name"] == "icnn":  # the most interpretable filters first
            values = [c["interpretability"] for c in section["filters"]]
            assert values == sorted(values, reverse=True) and section["has_parts"]
    csg = next(s for s in rep["atlas"] if s["name"] == "csg")
    gate = np.asarray(models["csg"].gate_layer.gate)
    for card in csg["filters"]:
        assert card["relevance"] == pytest.approx(float(gate[:, card["index"]].max()), rel=1e-6)


def _chromium():
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if shutil.which(name):
            return shutil.which(name)
    return None


def test_report_html_renders_in_chromium(evaluated, tmp_path):
    browser = _chromium()
    if browser is None:
        pytest.skip("chromium is not installed and could not be (.ci/run installs the Debian "
                    "package `chromium` where apt-get works): the HTML report is not rendered")
    _, out_dir, _ = evaluated
    page = out_dir / "report.html"
    assert page.stat().st_size < 15e6
    common = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
              "--enable-logging=stderr", "--v=0", f"--user-data-dir={tmp_path / 'profile'}"]
    shot = tmp_path / "report.png"
    proc = subprocess.run(common + [f"--screenshot={shot}", "--window-size=1280,2400",
                                    page.as_uri()], capture_output=True, text=True, timeout=120)
    assert shot.exists(), proc.stderr[-2000:]
    # No console output at all: the page logs nothing itself, so any line is an error.
    console = [line for line in proc.stderr.splitlines() if ":CONSOLE" in line]
    assert not console, console
    pixels = tf.io.decode_png(shot.read_bytes()).numpy()
    assert pixels.shape[:2] == (2400, 1280) and pixels.std() > 10  # not a blank page
    dom = subprocess.run(common + ["--dump-dom", page.as_uri()], capture_output=True, text=True,
                         timeout=120).stdout
    assert 'data-ready="yes"' in dom  # the page's script ran to its end
    assert 'id="atlas-icnn"' in dom and 'id="atlas-csg"' in dom
    cards = 3 * 20 - (20 - 16) * 2  # csg/resnet: 16 filters
    assert dom.count('class="filter"') == cards
    # Each card shows its filter's gradient-ascent picture; each model its unique detectors.
    assert dom.count('class="ascent"') == cards and dom.count('class="dissection"') == 3
    assert dom.count("NetDissect: ") == cards


def test_markdown_table_shape():
    table = report.markdown_table({"a": {"accuracy": 0.5, "mis": 0.25}, "b": {"accuracy": 1.0}})
    lines = table.splitlines()
    assert lines[0] == "| model | accuracy (↑) | MIS (↑) |"
    assert lines[2] == "| a | 0.5000 | 0.2500 |" and lines[3] == "| b | 1.0000 | n/a |"
