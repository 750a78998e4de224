import json
import os
import socket
import subprocess
import sys

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = ["--num_train=96", "--num_val=32", "--num_test=48", "--image_size=32", "--width=4",
        "--batch_size=32", "--verbose=0", "--num_classes=3", "--density=0.4"]


def _env(**extra):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="")
    env.update(extra)
    return env


def _run(args, timeout=400, **env):
    return subprocess.run([sys.executable, "trainers/train_csg.py"] + TINY + args, cwd=ROOT,
                          env=_env(**env), capture_output=True, text=True, timeout=timeout)


def test_kill_and_resume_same_epoch_phase_and_gate(tmp_path):
    args = [f"--output_dir={tmp_path}", "--epochs=4", "--warmup=1", "--period=2", "--csg_epochs=1"]
    # Phases: std csg std csg. Die after epoch 2 (a CSG epoch), right after its backup.
    crashed = _run(args + ["--crash_after_epoch=2"])
    assert crashed.returncode == 3, crashed.stderr[-3000:]
    assert (tmp_path / "phase_at_crash.txt").read_text() == "csg"
    resumed = _run(args)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    results = json.loads((tmp_path / "results.json").read_text())
    assert results["started_at"] == {"epoch": 2, "phase": "std"}  # epoch 3 of 4 is STD
    np.testing.assert_array_equal(np.load(tmp_path / "gate_at_resume.npy"),
                                  np.load(tmp_path / "gate_at_crash.npy"))
    assert np.load(tmp_path / "gate_at_crash.npy").min() < 1.0  # G had moved before the kill


def test_resume_into_a_csg_epoch(tmp_path):
    args = [f"--output_dir={tmp_path}", "--epochs=3", "--warmup=1", "--period=1", "--csg_epochs=1"]
    assert _run(args + ["--crash_after_epoch=1"]).returncode == 3
    resumed = _run(args)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    results = json.loads((tmp_path / "results.json").read_text())
    assert results["started_at"] == {"epoch": 1, "phase": "csg"}


def _free_ports(n):
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def test_two_worker_multi_worker_mirrored_on_localhost(tmp_path):
    ports = _free_ports(2)
    cluster = {"worker": [f"127.0.0.1:{p}" for p in ports]}
    procs, logs = [], []
    for index in range(2):
        tf_config = json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}})
        out = tmp_path / f"worker{index}"
        # Output to files, not pipes: a worker blocked on a full pipe that nobody reads
        # would stall the other worker inside a collective.
        logs.append(open(tmp_path / f"worker{index}.log", "w+"))
        procs.append(subprocess.Popen(
            [sys.executable, "trainers/train_csg.py"] + TINY +
            ["--strategy=multi_worker", "--epochs=2", "--warmup=1", "--period=1",
             "--checkpoint=false", f"--output_dir={out}"],
            cwd=ROOT, env=_env(TF_CONFIG=tf_config), stdout=logs[-1], stderr=subprocess.STDOUT,
            text=True))
    for p, log in zip(procs, logs):
        p.wait(timeout=500)
        log.seek(0)
        assert p.returncode == 0, log.read()[-4000:]
        log.close()
    g0 = np.load(tmp_path / "worker0" / "gate.npy")
    assert g0.min() < 1.0  # the CSG epoch updated G
    r0 = json.loads((tmp_path / "worker0" / "results.json").read_text())
    assert r0["replicas"] == 2 and r0["written_by"] == "chief"
    # Every weight, BatchNorm moving statistics included (synchronized BatchNorm), is the
    # same on both workers: checked across workers by an all_gather at the end of the run.
    assert r0["weights_agree"] is True and r0["batchnorm_statistics_agree"] is True
    # Only the chief writes results and models.
    written = os.listdir(tmp_path / "worker1") if (tmp_path / "worker1").exists() else []
    assert not [f for f in written if f.endswith((".json", ".keras", ".npy", ".png"))], written


def test_train_csg_rejects_out_of_range_density(tmp_path):
    out = _run([f"--output_dir={tmp_path}", "--density=0.1", "--epochs=1"])
    assert out.returncode != 0
    assert "`density` must lie in [1/num_classes, 1]" in out.stderr


def test_cosine_learning_rates_span_the_steps_each_optimizer_takes():
    from keras_icnn.models.csg import phase_table
    from keras_icnn.recipes import CSGConfig
    from keras_icnn.recipes.csg import _network_learning_rates

    config = CSGConfig(epochs=7, period=2, csg_epochs=1, warmup=1, lr=2e-3, csg_lr=1e-3,
                       lr_schedule="cosine")
    phases = phase_table(7, period=2, csg_epochs=1, warmup=1)  # s c s c s c s
    std, csg, base = _network_learning_rates(config, 10, phases)
    assert std.decay_steps == 40 and csg.decay_steps == 30 and base.decay_steps == 70
    # Cosine decay by hand: lr * (1 + cos(pi * t / T)) / 2.
    np.testing.assert_allclose(float(std(20)), 2e-3 * (1 + np.cos(np.pi * 20 / 40)) / 2, rtol=1e-6)
    np.testing.assert_allclose(float(std(10)), 2e-3 * (1 + np.cos(np.pi * 10 / 40)) / 2, rtol=1e-6)
    assert abs(float(csg(30))) < 1e-12
    np.testing.assert_allclose(float(base(0)), 2e-3, rtol=1e-6)
    config.lr_schedule = "constant"
    assert _network_learning_rates(config, 10, phases) == (2e-3, 1e-3, 2e-3)
    config.lr_schedule = "step"
    try:
        _network_learning_rates(config, 10, phases)
    except ValueError as err:
        assert "lr_schedule" in str(err)
    else:
        raise AssertionError("an unknown lr_schedule was accepted")
