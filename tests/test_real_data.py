"""Every trainer and evaluate.py on CUB-layout and folder-layout directories (issue 13).

The real datasets cannot be downloaded here: the fixtures are the synthetic part
data written in CUB-200-2011's layout (class-ordered image ids, boxes, part
locations) and as a class-per-subfolder photo folder.
"""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from keras_icnn.data import layouts, synthetic_parts
from tests import background

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
C = 4
TINY = ["--image_size=32", "--width=4", "--batch_size=16", "--verbose=0", "--num_val=8"]


def write_dirs(root):
    """The synthetic part data written as a CUB-200-2011 directory and as a photo folder under
    ``root``; run in a process of its own."""
    ex = synthetic_parts.make_examples(96, image_size=32, num_classes=C, seed=2)
    layouts.write_cub_layout(ex, os.path.join(root, "CUB_200_2011"))
    layouts.write_folder_layout(ex, os.path.join(root, "photos"))


def _run(*commands):
    """Run the (script, args) commands at once (they are independent: the three trainers
    overlap their start-up and small steps on the 2 cores); each must succeed."""
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="")
    procs = [subprocess.Popen([sys.executable, script] + args, cwd=ROOT, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for script, args in commands]
    outs = []
    for proc, (script, _) in zip(procs, commands):
        out, err = proc.communicate(timeout=600)
        assert proc.returncode == 0, f"{script}:\n{err[-4000:]}"
        outs.append(out)
    return outs


def _layout_runs(dataset, data_dir, work):
    """Every trainer, then evaluate.py, on one layout: evaluate's stdout."""
    data = [f"--dataset={dataset}", f"--data_dir={data_dir}"]
    icnn_out, csg_out, expl_out, eval_out = (work / n for n in ("icnn", "csg", "expl", "ev"))
    trainers = [("trainers/train_icnn.py", data + TINY + [
        "--epochs=1", "--train=interpretable", "--jit_compile=false", f"--output_dir={icnn_out}"])]
    models = f"--models={icnn_out / 'interpretable.keras'}"
    if dataset == "cub":  # CSG has nothing layout-specific: once is enough (the suite's time)
        trainers.append(("trainers/train_csg.py", data + TINY + [
            "--epochs=2", "--warmup=1", "--period=1", "--density=0.5",
            "--checkpoint=false", f"--output_dir={csg_out}"]))
        models += f",{csg_out / 'csg.keras'}"
    trainers.append(("trainers/train_explainer.py", data + TINY + [
        "--epochs=1", "--performer_epochs=1", f"--output_dir={expl_out}"]))
    _run(*trainers)
    out, = _run(("trainers/evaluate.py", data + [
        "--image_size=32", "--verbose=0", "--gradmap_examples=4", "--num_val=8",
        "--atlas_filters=8", "--atlas_images=3", "--ascent_steps=8", models,
        f"--output_dir={eval_out}"]))
    return out


@background.job("real-layouts", consumers=lambda nodeid: "real_layout" in nodeid)
def layout_runs(work):
    """Both layouts written (in a fresh process), then each run end to end: {dataset: (stdout
    of evaluate, output folder)}; a failure is kept per layout and raised in its test."""
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="")
    proc = subprocess.run(
        [sys.executable, "-c", "import sys; from tests.test_real_data import write_dirs; "
         "write_dirs(sys.argv[1])", str(work)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = {}
    for dataset, folder in (("cub", "CUB_200_2011"), ("folder", "photos")):
        (work / dataset).mkdir()
        try:
            out[dataset] = (_layout_runs(dataset, work / folder, work / dataset), work / dataset)
        except AssertionError as e:
            out[dataset] = e
    return out


@pytest.fixture(scope="module")
def layout_results(tmp_path_factory):
    return background.result("real-layouts", tmp_path_factory)


@pytest.mark.parametrize("dataset", ["cub", "folder"])
def test_all_trainers_and_evaluate_on_a_real_layout(dataset, layout_results):
    if isinstance(layout_results[dataset], AssertionError):
        raise layout_results[dataset]
    out, work = layout_results[dataset]
    icnn_out, csg_out, expl_out, eval_out = (work / n for n in ("icnn", "csg", "expl", "ev"))
    icnn = json.loads((icnn_out / "results.json").read_text())
    expl = json.loads((expl_out / "results.json").read_text())
    assert (expl_out / "performer.keras").is_file()  # saved before the distillation
    report = json.loads((eval_out / "report.json").read_text())
    # Every class is present: the class count is the dataset's, and the test split holds all.
    for r in (icnn, expl):
        assert r["num_classes"] == C and r["dataset"] == dataset
    if dataset == "cub":
        csg = json.loads((csg_out / "results.json").read_text())
        assert csg["num_classes"] == C and csg["dataset"] == dataset
        # (Mirrored training is tested in recipes/test_csg.py and models/test_csg.py.)
        assert np.asarray(np.load(csg_out / "gate.npy")).shape[0] == C
    assert (eval_out / "report.html").exists()
    interp = report["models"]["interpretable"]
    if dataset == "cub":
        assert icnn["part_annotations"] is True
        assert np.isfinite(icnn["interpretable"]["part_interpretability"])
        assert np.isfinite(expl["location_instability"]["explainer"])
        # evaluate.py streams the same test split the trainer measured: same figures.
        assert interp["accuracy"] == pytest.approx(icnn["interpretable"]["test_accuracy"])
        assert interp["part_interpretability"] == pytest.approx(
            icnn["interpretable"]["part_interpretability"])
    else:  # no part annotations: not applicable, never 0
        assert icnn["interpretable"]["part_interpretability"] is None
        assert icnn["interpretable"]["location_instability"] is None
        assert expl["location_instability"] is None
        assert "part_interpretability" not in interp and "mis" in interp
        assert "not applicable" in (eval_out / "report.md").read_text()
    assert "| interpretable |" in out


def test_bad_data_and_backbone_settings_name_the_field(tmp_path):
    from keras_icnn.recipes import CSGConfig, ExplainerConfig, ICNNConfig

    cases = [(ICNNConfig(dataset="cub"), "`data_dir` is needed with dataset='cub'"),
             (CSGConfig(dataset="folder", data_dir=str(tmp_path / "nope")), "`data_dir` not found"),
             (ICNNConfig(backbone="vgg", weights="imagenet"), "needs a keras.applications backbone"),
             (CSGConfig(backbone="resnet50", image_size=16), "needs --image_size >= 32"),
             (ExplainerConfig(backbone="resnet50", image_size=16), "needs --image_size >= 32"),
             (ICNNConfig(dataset="tfds", data_dir=str(tmp_path)), "`tfds_name` is needed"),
             (ICNNConfig(task="single", dataset="folder", data_dir=str(tmp_path)),
              "synthetic-data task")]
    for config, message in cases:
        with pytest.raises((ValueError, FileNotFoundError), match=message.replace("(", r"\(")):
            config.validate()
