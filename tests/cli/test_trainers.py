import json
import os
import shutil
import subprocess
import sys

import keras
import numpy as np
import pytest

from tests import background

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _run(args, timeout=300):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="")
    return subprocess.run([sys.executable] + args, cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=timeout)


def test_train_icnn_help_lists_flags():
    """In process: the flags train_icnn.py defines (test_cli runs a command's --help)."""
    from absl import flags

    from keras_icnn.recipes import ICNNConfig, define_flags

    fv = flags.FlagValues()
    define_flags(ICNNConfig, fv, module_name="train_icnn.py")
    text = fv.module_help("train_icnn.py")
    for flag in ("--task", "--category", "--epochs", "--batch_size", "--seed", "--output_dir",
                 "--loss_schedule"):
        assert flag in text


@background.job("train-icnn-validation",
                consumers=lambda nodeid: "measures_on_validation" in nodeid)
def _validation_run(tmp_path):
    return _run(["trainers/train_icnn.py", f"--output_dir={tmp_path}", "--num_train=64",
                 "--num_val=24", "--num_test=8", "--epochs=1", "--width=4", "--verbose=0",
                 "--image_size=32", "--eval_split=validation", "--train=interpretable",
                 "--jit_compile=false"]), tmp_path


def test_train_icnn_measures_on_validation_when_asked(tmp_path_factory):
    """--eval_split=validation --train=interpretable: one model, figures on the validation split."""
    out, tmp_path = background.result("train-icnn-validation", tmp_path_factory)
    assert out.returncode == 0, out.stderr[-3000:]
    results = json.loads((tmp_path / "results.json").read_text())
    assert "ordinary" not in results and "ratios" not in results
    assert results["eval_split"] == "validation"
    assert len(results["interpretable"]["val_accuracy"]) == 1
    import keras_icnn  # noqa: F401
    from keras_icnn.data import synthetic_parts

    model = keras.models.load_model(tmp_path / "interpretable.keras")
    val = synthetic_parts.make_examples(24, image_size=32, split="validation")
    acc = np.mean(np.argmax(model.predict(val["image"], verbose=0), -1) == val["label"])
    assert abs(acc - results["interpretable"]["validation_accuracy"]) < 1e-6
    assert "validation accuracy" in out.stdout


def test_train_icnn_rejects_bad_category(tmp_path):
    """In process (test_bad_input's command-line test runs the CLIs on bad flags)."""
    from keras_icnn.recipes import ICNNConfig

    with pytest.raises(ValueError, match="Unknown category 'unicorn'"):
        ICNNConfig(output_dir=str(tmp_path), task="single", category="unicorn").validate()


def test_train_explainer_missing_performer(tmp_path):
    out = _run(["trainers/train_explainer.py", f"--output_dir={tmp_path}",
                f"--performer={tmp_path / 'nope.keras'}", "--verbose=0", "--num_train=32",
                "--num_val=8", "--num_test=8", "--image_size=32", "--num_classes=3"])
    assert out.returncode != 0
    assert "performer model not found" in out.stderr


@background.job("help-without-cuda", consumers=lambda nodeid: "cuda_errors" in nodeid)
def _helps(_):
    """train-csg's --help through the console script and through the script: [(rc, out, err)]."""
    script = shutil.which("keras-icnn-train-csg")
    assert script, "keras-icnn-train-csg is not installed: pip install -e ."
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    procs = [subprocess.Popen(cmd, cwd="/", env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
             for cmd in ([script, "--help"],
                         [sys.executable, os.path.join(ROOT, "trainers", "train_csg.py"),
                          "--help"])]
    return [_finished(proc) for proc in procs]


def _finished(proc):
    out, err = proc.communicate(timeout=300)
    return proc.returncode, out, err


def test_console_script_and_script_both_run_without_cuda_errors(tmp_path_factory):
    for returncode, out, err in background.result("help-without-cuda", tmp_path_factory):
        assert returncode in (0, 1), err[-2000:]  # absl's --help exits with 1
        assert out.startswith("Train a CNN with class-specific gates")
        assert "--learning_rate" in out and "--tensorboard_dir" in out
        import keras_icnn_cli

        if not keras_icnn_cli._nvidia_driver_present():
            assert "cuInit" not in err, err[-2000:]
