"""Test configuration: quiet TensorFlow, two logical CPU devices for strategy tests."""
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402

_cpus = tf.config.list_physical_devices("CPU")
try:
    tf.config.set_logical_device_configuration(
        _cpus[0], [tf.config.LogicalDeviceConfiguration()] * 2)
except RuntimeError:  # already initialised
    pass


# The suite traces hundreds of tiny fits: the non-finite guard's checks as plain ops (no XLA
# compile per trace: every model's ``fused_checks`` read False unless set);
# tests/models/test_guard.py runs the fused path users get.
import keras as _keras  # noqa: E402

_keras.Model.fused_checks = False


@pytest.fixture(autouse=True)
def _reset_policy():
    yield
    keras.mixed_precision.set_global_policy("float32")
    keras.backend.clear_session(free_memory=False)


ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="session", autouse=True)
def _background_jobs(request, tmp_path_factory):
    """Start the process-bound jobs the selected tests need (tests/background.py)."""
    from tests import background

    background.start_needed(request.session.items, tmp_path_factory)
    yield
    background.shutdown()


def pytest_terminal_summary(terminalreporter):
    from tests import background

    done = background.report()
    if done:
        terminalreporter.write_line("background jobs (wall s, beside the in-process tests): " +
                                    ", ".join(f"{name} {s:.1f}" for name, s in done))


def build_evaluated_models(folder):
    """The three tiny models `evaluated` evaluates (an interpretable VGG, a ResNet, a CSG
    model), saved in ``folder``; run in the job's own process."""
    import keras
    import numpy as np

    from keras_icnn.models import make_csg, make_interpretable, resnet20_backbone, vgg_backbone

    keras.utils.set_random_seed(0)
    vgg = make_interpretable(vgg_backbone((32, 32, 3), 3, width=4), "top_conv")
    res = resnet20_backbone((32, 32, 3), 3, width=4, blocks_per_stage=1)
    csg = make_csg(resnet20_backbone((32, 32, 3), 3, width=4, blocks_per_stage=1), "top_conv",
                   density=0.4)
    gate = csg.gate_layer.gate
    gate.assign(np.random.RandomState(1).uniform(0, 1, gate.shape).astype("float32"))
    for name, model in (("icnn", vgg), ("resnet", res), ("csg", csg)):
        model.save(os.path.join(folder, f"{name}.keras"))


EVALUATED = ("icnn", "resnet", "csg")
EVALUATED_BY = ("tests.evaluation.test_evaluate", "tests.evaluation.test_atlas",
                "tests.reporting.test_html")


def _evaluate_job(directory):
    import subprocess
    import sys

    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="")
    built = subprocess.run(
        [sys.executable, "-c", "import sys; from tests.conftest import build_evaluated_models; "
         "build_evaluated_models(sys.argv[1])", str(directory)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert built.returncode == 0, built.stderr[-3000:]
    paths = [str(directory / f"{name}.keras") for name in EVALUATED]
    args = [f"--models={','.join(paths)}", f"--names={','.join(EVALUATED)}", "--num_examples=36",
            "--image_size=32", "--num_classes=3", "--gradmap_examples=4", "--verbose=0",
            "--atlas_filters=20", "--atlas_images=5", "--ascent_steps=16", "--trees",
            "--tree_images=6", "--graph", "--graph_images=6",
            f"--output_dir={directory / 'eval'}"]
    proc = subprocess.run([sys.executable, "trainers/evaluate.py"] + args, cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc, directory / "eval"


def _register_evaluate_job():
    from tests import background

    background.job("evaluate", modules=EVALUATED_BY)(_evaluate_job)


_register_evaluate_job()


@pytest.fixture(scope="session")
def evaluated(tmp_path_factory):
    """`keras-icnn-evaluate` run once (a background job, started at the suite's first test) on
    three tiny saved models (an interpretable VGG, a ResNet, a CSG model): (process, output
    dir, {name: model loaded from its file}). Shared by the evaluation and reporting tests."""
    import keras

    from tests import background

    proc, out_dir = background.result("evaluate", tmp_path_factory)
    models = {name: keras.models.load_model(out_dir.parent / f"{name}.keras")
              for name in EVALUATED}
    return proc, out_dir, models
