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


@pytest.fixture(scope="session")
def evaluated(tmp_path_factory):
    """`keras-icnn-evaluate` run once on three tiny saved models (an interpretable VGG, a
    ResNet, a CSG model): (process, output dir, models). Shared by the evaluation and
    reporting tests."""
    import subprocess
    import sys

    import keras
    import numpy as np

    from keras_icnn.models import make_csg, make_interpretable, resnet20_backbone, vgg_backbone

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
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
            "--atlas_filters=20", "--atlas_images=5", "--ascent_steps=16", "--trees",
            "--tree_images=6",
            f"--output_dir={out_dir}"]
    proc = subprocess.run([sys.executable, "trainers/evaluate.py"] + args, cwd=root, env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc, out_dir, {"icnn": vgg, "resnet": res, "csg": csg}
