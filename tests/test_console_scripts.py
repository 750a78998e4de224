"""Every installed ``keras-icnn-*`` command end to end, run the way a user runs it: through its
console script (the file pip wrote on PATH), in a fresh process, on tiny data and tiny saved
models. Each test checks the exit code and the files the command's ``--help`` promises.

The commands run in two parallel waves (a background job, tests/background.py, started at the
suite's first test): the trainers that make the tiny models (``train-icnn``, ``train-csg
--train_baseline``) and ``preview``; then the commands that read those models (``evaluate``,
``train-explainer --performer``, ``detect-adversarial``, ``export``). A command that crashes, is renamed or loses its entry point turns this module red
(``test_every_console_script_is_tested``).
"""
import importlib.metadata
import json
import os
import shutil
import subprocess
import sys
import time

import pytest

from tests import background

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = ["--image_size=32", "--num_classes=3", "--verbose=0", "--width=4", "--batch_size=16"]
TRAIN = ["--num_train=64", "--num_val=16", "--num_test=32"]
TESTED = ("train-icnn", "train-csg", "train-explainer", "evaluate", "detect-adversarial",
          "export", "preview", "pretrain")


def _script(name):
    path = shutil.which(f"keras-icnn-{name}")
    assert path, f"keras-icnn-{name} is not on PATH: pip install -e '.[test]'"
    return path


class _Run:
    """A command started in the background; ``result()`` waits and returns (rc, output)."""

    def __init__(self, name, args, work):
        self.name, self.log_path = name, work / f"{name}.log"
        env = dict(os.environ, CUDA_VISIBLE_DEVICES="")
        env.pop("TF_CPP_MIN_LOG_LEVEL", None)  # the launcher's own default, as for a user
        self.log = open(self.log_path, "w")
        self.t0 = time.monotonic()
        self.proc = subprocess.Popen([_script(name)] + list(args), cwd=work, env=env,
                                     stdout=self.log, stderr=subprocess.STDOUT, text=True)

    def result(self, timeout=400):
        self.proc.wait(timeout=timeout)
        self.log.close()
        return self.proc.returncode, self.log_path.read_text()


def _wave(runs):
    return {run.name: run.result() for run in runs}


def fit_trees(model_path, folder):
    """One decision tree per class of the tiny interpretable model (what --trees exports),
    filters given made-up parts (filter d: part d mod 4); run in a process of its own."""
    import keras
    import numpy as np

    from keras_icnn.data import synthetic_parts
    from keras_icnn.trees import DecisionTree, save_trees

    model = keras.models.load_model(model_path, compile=False)
    ex = synthetic_parts.make_examples(30, image_size=32, num_classes=3, seed=0)
    trees = {}
    for c in range(3):
        images = ex["image"][ex["label"] == c]
        filters = DecisionTree.fit(model, images[:1], c).omega.shape[1]
        trees[c] = DecisionTree.fit(model, images, c, filter_parts=np.arange(filters) % 4,
                                    part_names=list(synthetic_parts.PART_NAMES))
    return save_trees(trees, str(folder))


def _fit_trees(model_path, folder):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="")
    proc = subprocess.run(
        [sys.executable, "-c", "import sys; from tests.test_console_scripts import fit_trees; "
         "print(fit_trees(sys.argv[1], sys.argv[2]))", str(model_path), str(folder)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=400)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout.strip().splitlines()[-1]


@background.job("console-scripts", consumers=lambda nodeid: "every_console_script" not in nodeid)
def console_runs(work):
    out = {"work": work}
    first = [
        _Run("train-icnn", TRAIN + TINY + ["--epochs=1", "--jit_compile=false",
                                           f"--tensorboard_dir={work / 'icnn_tb'}",
                                           f"--output_dir={work / 'icnn'}"], work),
        _Run("train-csg", TRAIN + TINY + ["--epochs=2", "--warmup=1", "--period=1",
                                          "--density=0.5", "--train_baseline",
                                          "--checkpoint=false", f"--output_dir={work / 'csg'}"],
             work),
        _Run("preview", ["--preview", str(work / "preview.png"), "--n=4", "--image_size=32"],
             work),
        _Run("pretrain", TRAIN + TINY + ["--epochs=1", "--categories=pretraining",
                                         f"--output_dir={work / 'pretrain'}"], work),
    ]
    out.update(_wave(first))
    icnn, csg = work / "icnn", work / "csg"
    second = []
    if out["train-icnn"][0] == 0:
        second += [
            _Run("evaluate", [f"--models={icnn / 'ordinary.keras'},{icnn / 'interpretable.keras'}",
                              "--names=ordinary,interpretable", "--num_examples=8",
                              "--gradmap_examples=2", "--ascent_steps=2",
                              "--num_val=16", "--num_test=48", "--image_size=32",
                              "--num_classes=3", "--verbose=0", f"--output_dir={work / 'eval'}"],
                 work),
            _Run("train-explainer", TRAIN + TINY + [f"--performer={icnn / 'ordinary.keras'}",
                                                    "--epochs=1", "--explainer_cls",
                                                    f"--tensorboard_dir={work / 'explainer_tb'}",
                                                    f"--output_dir={work / 'explainer'}"],
                 work),
            _Run("export", [f"--model={icnn / 'interpretable.keras'}",
                            f"--base_dir={work / 'served'}", "--name=icnn", "--version=3",
                            f"--trees={_fit_trees(icnn / 'interpretable.keras', work / 'trees')}"],
                 work),
        ]
    if out["train-csg"][0] == 0:
        second.append(_Run("detect-adversarial", [
            f"--models={csg / 'baseline.keras'},{csg / 'csg.keras'}", "--names=STD,CSG",
            "--num_train=1", "--num_val=0", "--num_test=60", "--train_per_class=6",
            "--test_per_class=4", "--repeats=2", "--attacks=fgsm,pgd",
            "--pgd_iterations=2", "--black_box=one_pixel", "--black_box_images=4",
            "--one_pixel_generations=1", "--image_size=32", "--num_classes=3", "--verbose=0",
            f"--output_dir={work / 'detect'}"], work))
    out.update(_wave(second))
    return out


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    return background.result("console-scripts", tmp_path_factory)


def _ok(runs, name):
    if name not in runs:
        pytest.fail(f"keras-icnn-{name} did not run: the command it needs models from failed")
    rc, log = runs[name]
    assert rc == 0, f"keras-icnn-{name} exited {rc}:\n{log[-4000:]}"
    return log


def _json(path):
    assert path.is_file(), f"{path} was not written"
    return json.loads(path.read_text())


def test_every_console_script_is_tested():
    scripts = {ep.name for ep in importlib.metadata.entry_points(group="console_scripts")
               if ep.value.startswith("keras_icnn_cli:")}
    assert scripts == {f"keras-icnn-{name}" for name in TESTED}


def test_train_icnn(runs):
    log = _ok(runs, "train-icnn")
    out = runs["work"] / "icnn"
    results = _json(out / "results.json")
    for name in ("ordinary", "interpretable"):
        assert (out / f"{name}.keras").is_file()
        assert 0.0 <= results[name]["test_accuracy"] <= 1.0
    config = _json(out / "config.json")
    assert config["num_train"] == 64 and config["num_classes"] == 3
    assert "interpretable" in log and "test accuracy" in log
    # TensorBoard: one run per model; the interpretable one logs its filter loss and lambda_f
    # (the constant schedule: --loss_weight's 0.05) per epoch, both their settings once.
    from keras_icnn.callbacks import read_summaries

    ordinary, icnn = (read_summaries(runs["work"] / "icnn_tb" / n)
                      for n in ("ordinary", "interpretable"))
    assert {"loss", "accuracy", "val_accuracy", "hparams"} <= set(ordinary) & set(icnn)
    assert "filter_loss" not in ordinary and 0 in icnn["filter_loss"]
    lambdas = [v for tag, v in icnn.items() if tag.startswith("lambda_f/")]
    assert len(lambdas) == 2 and all(v == {0: pytest.approx(0.05)} for v in lambdas)
    # The saved model, loaded as a user does, reproduces the test accuracy it reported.
    import keras
    import numpy as np

    import keras_icnn  # noqa: F401  (registers the custom classes)
    from keras_icnn.data import synthetic_parts

    model = keras.models.load_model(out / "interpretable.keras")
    assert len(model.interpretable_layers) == 2
    test = synthetic_parts.make_examples(32, image_size=32, num_classes=3, split="test")
    acc = np.mean(np.argmax(model.predict(test["image"], verbose=0), -1) == test["label"])
    assert abs(acc - results["interpretable"]["test_accuracy"]) < 1e-6


def test_train_csg(runs):
    _ok(runs, "train-csg")
    out = runs["work"] / "csg"
    results = _json(out / "results.json")
    assert {"csg.keras", "baseline.keras", "gate.npy", "gate.png", "config.json"} \
        <= set(os.listdir(out))
    assert 0.0 <= results["l1_density"] <= 1.0


def test_pretrain(runs):
    """The pretrained classifier's conv base lands in backbone.weights.h5, which --weights
    (get_backbone) reads back into a backbone with another head."""
    import keras
    import numpy as np

    from keras_icnn.data import synthetic_parts
    from keras_icnn.models.backbones import conv_base, get_backbone

    log = _ok(runs, "pretrain")
    out = runs["work"] / "pretrain"
    results = _json(out / "results.json")
    assert results["classes"] == list(synthetic_parts.PRETRAINING_CATEGORY_NAMES[:3])
    assert 0.0 <= results["test_accuracy"] <= 1.0
    assert f"--weights={out / 'backbone.weights.h5'}" in log
    classifier = keras.models.load_model(out / "classifier.keras")
    fine = get_backbone("vgg", (32, 32, 3), 5, weights=str(out / "backbone.weights.h5"),
                        width=4)
    x = np.random.default_rng(0).uniform(0, 255, (2, 32, 32, 3)).astype("float32")
    np.testing.assert_array_equal(conv_base(fine)(x), conv_base(classifier)(x))
    assert fine.outputs[0].shape[-1] == 5 and classifier.outputs[0].shape[-1] == 3


def test_preview(runs):
    log = _ok(runs, "preview")
    png = runs["work"] / "preview.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and f"wrote {png}" in log


def test_evaluate(runs):
    _ok(runs, "evaluate")
    out = runs["work"] / "eval"
    report = _json(out / "report.json")
    assert {"report.md", "report.html", "config.json", "pictures"} <= set(os.listdir(out))
    assert list(report["models"]) == ["ordinary", "interpretable"]
    # Where each model's time went: the stages, within the evaluation's total.
    stages = [r["stage_seconds"] for r in report["models"].values()]
    assert all("stream" in s and min(s.values()) >= 0 for s in stages)
    assert sum(sum(s.values()) for s in stages) <= report["seconds"] + 0.1


def test_train_explainer(runs):
    import numpy as np

    from keras_icnn.callbacks import read_summaries

    log = _ok(runs, "train-explainer")
    out = runs["work"] / "explainer"
    results = _json(out / "results.json")
    assert (out / "explainer.keras").is_file() and (out / "explainer_cls.keras").is_file()
    assert 0.0 < results["p"] < 1.0 and results["performer_unchanged"] is True
    # The decoder reconstructs fc1; the performer's own dropout + classifier classify it.
    assert results["reconstructs"] == ["fc1"]
    assert results["classified_by"] == ["dropout", "logits"]
    assert 0.0 <= results["explainer_cls_test_error"] <= 1.0
    assert results["delta_error"] == pytest.approx(
        results["reconstruction_test_error"] - results["performer_test_error"])
    assert results["location_instability"]["explainer"] >= 0
    tags = read_summaries(runs["work"] / "explainer_tb" / "explainer")  # p, -log p, filter loss
    assert tags["neg_log_p"][0] == pytest.approx(-np.log(tags["p"][0]), rel=1e-5)
    assert 0 in tags["filter_loss"] and 0 in tags["loss"]
    assert {"explainer", "explainer_cls"} <= set(os.listdir(runs["work"] / "explainer_tb"))
    assert "p = " in log and "delta error" in log and "Explainer+cls" in log


def test_detect_adversarial(runs):
    _ok(runs, "detect-adversarial")
    out = runs["work"] / "detect"
    results = _json(out / "results.json")
    assert (out / "results.md").is_file() and (out / "config.json").is_file()
    assert list(results["models"]) == ["STD", "CSG"]


def test_export(runs):
    log = _ok(runs, "export")
    version = runs["work"] / "served" / "icnn" / "3"
    assert (version / "saved_model.pb").is_file()
    assert _json(version / "assets.extra" / "config.json")["version"] == 3
    assert f"to {version}" in log
    # --trees: the explain signature answers each image's decision mode and its part shares.
    import numpy as np
    import tensorflow as tf

    names = _json(version / "assets.extra" / "trees.json")["part_names"]
    assert names == ["head", "torso", "legs", "tail", "no part"]
    out = tf.saved_model.load(str(version)).signatures["explain"](
        images=tf.zeros((2, 32, 32, 3)) + 120.0)
    assert out["mode"].shape == (2,) and out["mode_part_shares"].shape == (2, 5)
    assert np.all(out["mode"].numpy() >= 0)
