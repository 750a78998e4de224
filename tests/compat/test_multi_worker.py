import json
import os
import subprocess
import sys

from keras_icnn.compat import multi_worker as keras_compat

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_patch_is_idempotent_and_replaces_exactly_two_functions():
    from keras.src.backend.tensorflow import trainer as tf_trainer

    before_reduce = tf_trainer.reduce_per_replica
    before_build = tf_trainer.TensorFlowTrainer._maybe_symbolic_build
    assert keras_compat.patch_multi_worker_fit() is True
    after_reduce = tf_trainer.reduce_per_replica
    assert keras_compat.patch_multi_worker_fit() is True  # a second call changes nothing
    assert tf_trainer.reduce_per_replica is after_reduce
    assert (before_reduce is not after_reduce or keras_compat._PATCHED)
    assert tf_trainer.TensorFlowTrainer._maybe_symbolic_build is not before_build or \
        keras_compat._PATCHED


SCRIPT = r"""
import json, os, sys
os.environ["TF_CONFIG"] = json.dumps({"cluster": {"worker": ["127.0.0.1:%d"]},
                                      "task": {"type": "worker", "index": 0}})
import tensorflow as tf
from keras_icnn.compat import multi_worker as keras_compat
if sys.argv[1] == "patched":
    keras_compat.patch_multi_worker_fit()
from keras.src.backend.tensorflow import trainer as tf_trainer
strategy = tf.distribute.MultiWorkerMirroredStrategy()
scalar = strategy.run(lambda: tf.constant(2.0))
vector = strategy.run(lambda: tf.constant([1.0, 3.0]))
out = tf_trainer.reduce_per_replica({"s": scalar, "v": vector}, strategy, "auto")
print(json.dumps({"s": float(out["s"]), "v": [float(x) for x in out["v"]]}))
"""


def _run_script(mode):
    import socket

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="")
    return subprocess.run([sys.executable, "-c", SCRIPT % port, mode], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)


def test_patched_reduce_handles_scalars_under_multi_worker():
    proc = _run_script("patched")
    assert proc.returncode == 0, proc.stderr[-3000:]
    got = json.loads(proc.stdout.strip().splitlines()[-1])
    assert got == {"s": 2.0, "v": [1.0, 3.0]}

