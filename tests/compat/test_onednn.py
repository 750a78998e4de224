"""Regression tests for the heap corruption of uxlfoundation/oneDNN#6035 (issue 12).

oneDNN's strided 1x1 backward-weights kernel overruns its workspace on a batch
smaller than the thread count when the conv has fewer than 16 input channels.
Before the fix, ``part_contributions`` on one image of a narrow ResNet (eager
tape: every conv's filter gradient) and ``fit`` ending on a batch of one both
corrupted the heap; glibc's malloc checker turns that into an immediate abort.
"""
import os
import subprocess
import sys
import warnings

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_icnn import keras_compat  # the old path, kept as a re-export
from keras_icnn.compat import multi_worker
from keras_icnn.models import make_interpretable, resnet20_backbone
from tests import background

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MALLOC_DEBUG = "/lib/x86_64-linux-gnu/libc_malloc_debug.so.0"

SCRIPT = r"""
import numpy as np, keras, tensorflow as tf
from keras_icnn import metrics
from keras_icnn.models import resnet20_backbone
keras.utils.set_random_seed(0)
model = resnet20_backbone((32, 32, 3), 3, width=4, blocks_per_stage=1)
images = np.random.default_rng(0).uniform(0, 255, (33, 32, 32, 3)).astype("float32")
for _ in range(15):  # one image: the batch the evaluation report explains
    metrics.part_contributions(model, "top_conv", images[:1], np.arange(16) % 3 - 1, 2)
model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
model.fit(images, np.arange(33) % 3, batch_size=32, epochs=3, verbose=0)  # last batch: 1 image
print("survived")
"""


@background.job("onednn-batch-of-one", consumers=lambda nodeid: "heap_corruption" in nodeid)
def _batch_of_one(_):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="")
    if os.path.exists(MALLOC_DEBUG):  # glibc >= 2.34: checks every free/malloc
        env.update(LD_PRELOAD=MALLOC_DEBUG, GLIBC_TUNABLES="glibc.malloc.check=3")
    return subprocess.run([sys.executable, "-c", SCRIPT], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)


def test_no_heap_corruption_on_batches_of_one(tmp_path_factory):
    proc = background.result("onednn-batch-of-one", tmp_path_factory)
    assert proc.returncode == 0, (proc.returncode, proc.stderr[-2000:])
    assert "survived" in proc.stdout


def test_resnet_projection_subsamples_then_convolves_with_stride_one():
    keras.utils.set_random_seed(0)
    model = resnet20_backbone((32, 32, 3), 3, width=4, blocks_per_stage=1)
    proj = model.get_layer("stage2_block0_proj")
    assert tuple(proj.strides) == (1, 1) and tuple(proj.kernel_size) == (1, 1)
    assert keras_compat.onednn_unsafe_convs(model, check_enabled=False) == []
    # Same function as the strided 1x1 conv it replaces.
    x = np.random.default_rng(1).normal(size=(2, 16, 16, 4)).astype("float32")
    sub = model.get_layer("stage2_block0_subsample")
    got = proj(sub(x)).numpy()
    want = tf.nn.conv2d(x, proj.kernel, strides=2, padding="VALID").numpy()
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)


def _strided(channels):
    inputs = keras.Input((16, 16, channels))
    x = keras.layers.Conv2D(8, 1, strides=2, name="proj")(inputs)
    x = keras.layers.Conv2D(8, 3, padding="same", activation="relu", name="top")(x)
    outputs = keras.layers.Dense(3)(keras.layers.GlobalAveragePooling2D()(x))
    return keras.Model(inputs, outputs, name=f"strided{channels}")


def test_unsafe_convs_are_found_and_named_in_a_warning():
    assert keras_compat.onednn_unsafe_convs(_strided(4), check_enabled=False) == ["proj"]
    assert keras_compat.onednn_unsafe_convs(_strided(16), check_enabled=False) == []
    if not keras_compat.onednn_enabled():
        pytest.skip("oneDNN is off in this process: nothing to warn about")
    with pytest.warns(UserWarning, match=r"1x1 convolutions with stride > 1 .*\(proj\).*"
                                         r"oneDNN#6035"):
        make_interpretable(_strided(4), "top")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        make_interpretable(_strided(16), "top")


def test_multi_worker_patch_is_written_against_these_keras_sources():
    minor = ".".join(keras.__version__.split(".")[:2])
    if minor not in multi_worker.VERIFIED_KERAS:
        pytest.skip(f"Keras {keras.__version__} is outside the verified versions")
    # Fails loudly when Keras changes a function the patch replaces: re-verify, then update.
    assert multi_worker.source_hashes() == multi_worker.PATCHED_SOURCES


def test_multi_worker_patch_refuses_unverified_keras(monkeypatch):
    monkeypatch.setattr(multi_worker, "_PATCHED", False)
    monkeypatch.setattr(keras, "__version__", "3.99.0")
    from keras.src.backend.tensorflow import trainer as tf_trainer

    before = tf_trainer.reduce_per_replica
    with pytest.warns(RuntimeWarning, match=r"verified on Keras 3\.15; Keras 3\.99\.0 is left"):
        assert multi_worker.patch_multi_worker_fit() is False
    assert tf_trainer.reduce_per_replica is before
