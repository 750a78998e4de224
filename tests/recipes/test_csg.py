import dataclasses
import json
import os
import socket
import subprocess
import sys

import numpy as np
import pytest

from tests import background

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TINY = ["--num_train=96", "--num_val=32", "--num_test=48", "--image_size=32", "--width=4",
        "--batch_size=32", "--verbose=0", "--num_classes=3", "--density=0.4"]


def _env(**extra):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="")
    env.update(extra)
    return env


def _run(args, timeout=400, **env):
    return subprocess.run([sys.executable, "trainers/train_csg.py"] + TINY + args, cwd=ROOT,
                          env=_env(**env), capture_output=True, text=True, timeout=timeout)


@background.job("csg-kill-resume")
def kill_and_resume(tmp_path):
    """A run killed right after epoch 3's backup, then the same command again."""
    args = [f"--output_dir={tmp_path}", "--epochs=4", "--warmup=1", "--period=2", "--csg_epochs=1"]
    # Phases: std csg std csg. Die after epoch 3 (an STD epoch after a CSG one).
    return _run(args + ["--crash_after_epoch=3"]), _run(args), tmp_path


def test_kill_and_resume_same_epoch_phase_and_gate(tmp_path_factory):
    """Killed right after an epoch's backup, a run resumes at the next epoch, in that epoch's
    phase (here a CSG epoch), with the gate matrix G of the moment it died."""
    crashed, resumed, tmp_path = background.result("csg-kill-resume", tmp_path_factory)
    assert crashed.returncode == 3, crashed.stderr[-3000:]
    assert (tmp_path / "phase_at_crash.txt").read_text() == "std"
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    results = json.loads((tmp_path / "results.json").read_text())
    assert results["started_at"] == {"epoch": 3, "phase": "csg"}  # epoch 4 of 4 is CSG
    np.testing.assert_array_equal(np.load(tmp_path / "gate_at_resume.npy"),
                                  np.load(tmp_path / "gate_at_crash.npy"))
    assert np.load(tmp_path / "gate_at_crash.npy").min() < 1.0  # G had moved before the kill


def _free_ports(n):
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


@background.job("csg-multi-worker")
def two_workers(tmp_path):
    """Two train_csg.py workers of one MultiWorkerMirroredStrategy cluster on localhost:
    [(return code, log)] per worker."""
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
    finished = []
    try:
        for p, log in zip(procs, logs):
            p.wait(timeout=500)
            log.seek(0)
            finished.append((p.returncode, log.read()))
    finally:  # a worker that outlived the other's failure is not left behind
        for p, log in zip(procs, logs):
            if p.poll() is None:
                p.kill()
                p.wait()
            log.close()
    return finished, tmp_path


def test_two_worker_multi_worker_mirrored_on_localhost(tmp_path_factory):
    finished, tmp_path = background.result("csg-multi-worker", tmp_path_factory)
    for returncode, log in finished:
        assert returncode == 0, log[-4000:]
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


def test_train_csg_rejects_out_of_range_density():
    """The flag path in process (test_command_lines_reject_bad_flags runs the CLIs)."""
    from absl import app, flags

    from keras_icnn.recipes import CSGConfig, config_from_flags, define_flags

    fv = flags.FlagValues()
    define_flags(CSGConfig, flag_values=fv)
    fv(["train_csg.py", "--density=0.1", "--num_classes=3"])
    with pytest.raises(app.UsageError, match=r"`density` must lie in \[1/num_classes, 1\]"):
        config_from_flags(CSGConfig, fv)


def test_cosine_learning_rates_span_the_steps_each_optimizer_takes():
    from keras_icnn.models.csg import phase_table
    from keras_icnn.recipes import CSGConfig
    from keras_icnn.recipes.optim import network_learning_rates as _network_learning_rates

    config = CSGConfig(epochs=7, period=2, csg_epochs=1, warmup=1, learning_rate=2e-3, csg_learning_rate=1e-3,
                       learning_rate_schedule="cosine")
    phases = phase_table(7, period=2, csg_epochs=1, warmup=1)  # s c s c s c s
    std, csg, base = _network_learning_rates(config, 10, phases)
    assert std.decay_steps == 40 and csg.decay_steps == 30 and base.decay_steps == 70
    # Cosine decay by hand: lr * (1 + cos(pi * t / T)) / 2.
    np.testing.assert_allclose(float(std(20)), 2e-3 * (1 + np.cos(np.pi * 20 / 40)) / 2, rtol=1e-6)
    np.testing.assert_allclose(float(std(10)), 2e-3 * (1 + np.cos(np.pi * 10 / 40)) / 2, rtol=1e-6)
    assert abs(float(csg(30))) < 1e-12
    np.testing.assert_allclose(float(base(0)), 2e-3, rtol=1e-6)
    config.learning_rate_schedule = "constant"
    assert _network_learning_rates(config, 10, phases) == (2e-3, 1e-3, 2e-3)
    config.learning_rate_schedule = "linear"
    try:
        _network_learning_rates(config, 10, phases)
    except ValueError as err:
        assert "learning_rate_schedule" in str(err)
    else:
        raise AssertionError("an unknown learning_rate_schedule was accepted")


def test_the_csg_network_and_its_baseline_end_on_a_settled_rate_by_default():
    """Issue 48: the CSG network (both phases) and its STD baseline decay the same way, to 0
    at their last step, so the reported last-epoch weights of both are settled ones (with a
    constant rate the baseline's last epoch swung by points and decided the comparison)."""
    from keras_icnn.models.csg import phase_table
    from keras_icnn.recipes import CSGConfig
    from keras_icnn.recipes.optim import network_learning_rates

    config = CSGConfig()
    assert config.learning_rate_schedule == "cosine"
    phases = phase_table(config.epochs, period=config.period, csg_epochs=config.csg_epochs,
                         warmup=config.warmup)
    std, csg, base = network_learning_rates(config, 47, phases)
    for schedule, steps in ((std, phases.count("std") * 47), (csg, phases.count("csg") * 47),
                            (base, len(phases) * 47)):
        assert schedule.decay_steps == steps
        np.testing.assert_allclose(float(schedule(0)), schedule.initial_learning_rate)
        assert abs(float(schedule(steps))) < 1e-12
        # The last epoch starts below a third of the initial rate and ends at 0.
        assert float(schedule(steps - 47)) < 0.32 * schedule.initial_learning_rate


def test_paper_recipe_presets_what_flags_leave_alone():
    """--recipe=paper sets App. B's values; a flag on the command line wins, even when it
    equals the plain default."""
    from absl import flags

    from keras_icnn.recipes import CSGConfig, config_from_flags, define_flags
    from keras_icnn.recipes.csg import RECIPES

    fv = flags.FlagValues()
    define_flags(CSGConfig, flag_values=fv)
    fv(["train_csg.py", "--recipe=paper", "--warmup=1", "--batch_size=128", "--epochs=9"])
    config = config_from_flags(CSGConfig, fv)
    assert config.warmup == 1 and config.epochs == 9  # given: kept (1 is the plain default)
    assert config.learning_rate == config.csg_learning_rate == 0.1 * 128 / 256  # App. B's 0.1 at 256, linear rule
    assert (config.optimizer, config.momentum, config.learning_rate_schedule, config.gate_optimizer) == \
        ("sgd", 0.9, "step", "csg")
    assert (config.period, config.csg_epochs, config.final_std, config.std_in_csg) == \
        (3, 1, True, False)
    plain = CSGConfig()
    assert plain.optimizer == "adam" and plain.gate_optimizer == "own" and not plain.final_std
    # Every preset value names a real field, and the preset changes nothing else.
    paper = CSGConfig(recipe="paper")
    changed = {k for k in dataclasses.asdict(plain) if getattr(paper, k) != getattr(plain, k)}
    assert changed - {"recipe"} <= set(RECIPES["paper"]) and "recipe" in changed
    assert paper.warmup == 2 and paper.learning_rate == 0.025
    # From Python, from_recipe keeps every field given, even one at its plain default.
    own = CSGConfig.from_recipe("paper", gate_optimizer="own", warmup=1)
    assert (own.gate_optimizer, own.warmup, own.optimizer) == ("own", 1, "sgd")


def test_paper_recipe_builds_sgd_with_g_in_the_csg_optimizer():
    import keras

    from keras_icnn.recipes import CSGConfig
    from keras_icnn.recipes import csg as recipe
    from keras_icnn.recipes.common import get_strategy, open_data

    config = CSGConfig(recipe="paper", num_train=96, num_val=32, num_test=48, image_size=32,
                       width=4, num_classes=3, density=0.4, epochs=4, train_baseline=True,
                       verbose=0).validate()
    source = open_data(config)
    models = recipe.build(config, source, get_strategy(config))
    model, baseline = models["csg"], models["baseline"]
    for opt in (model.optimizer, model.csg_optimizer, baseline.optimizer):
        assert isinstance(opt, keras.optimizers.SGD) and opt.momentum == 0.9
        assert isinstance(opt._learning_rate, keras.optimizers.schedules.PiecewiseConstantDecay)
    assert model.gate_optimizer is model.csg_optimizer
    # 96 images / batch 64 = 2 steps per epoch; phases s s c s: 6 STD steps, 2 CSG, 8 baseline;
    # milestones at round(0.4, 0.6, 0.8 x steps).
    assert model.optimizer._learning_rate.boundaries == [2, 4, 5]
    assert model.csg_optimizer._learning_rate.boundaries == [1, 1, 2]
    assert baseline.optimizer._learning_rate.boundaries == [3, 5, 6]
    np.testing.assert_allclose(float(model.optimizer.learning_rate), 0.1 * 64 / 256)


def _tiny_pair_run(tmp_path, **fields):
    """(config, source, strategy) of a one-epoch CSG run with its STD baseline. The VGG
    backbone unless said: what these tests check is the recipe's, and a VGG traces in half a
    ResNet-20's time (the subprocess tests above run the default ResNet-20)."""
    from keras_icnn.recipes import CSGConfig
    from keras_icnn.recipes.common import get_strategy, open_data

    settings = dict(num_train=64, num_val=16, num_test=16, image_size=32, width=4,
                    num_classes=3, density=0.4, epochs=1, batch_size=32, train_baseline=True,
                    verbose=0, output_dir=str(tmp_path), backbone="vgg")
    config = CSGConfig(**dict(settings, **fields)).validate()
    return config, open_data(config), get_strategy(config)


def test_the_std_baseline_trains_on_the_batches_the_csg_model_saw(tmp_path):
    """With no CSG epoch, the CSG model's STD path and the STD baseline are the same network
    trained on the same batches from the same weights: equal weights. (A shared pipeline
    fed the baseline the next passes of the shuffle instead.)"""
    from keras_icnn.recipes import csg as recipe

    # ResNet-20: no dropout, so the same batches from the same weights give the same weights.
    config, source, strategy = _tiny_pair_run(tmp_path, warmup=1, checkpoint=False,
                                              backbone="resnet20")
    models = recipe.build(config, source, strategy)
    recipe.fit(config, source, strategy, models)
    layers = [layer for layer in models["baseline"].layers if layer.weights]
    assert len(layers) > 10
    for layer in layers:
        for got, want in zip(models["csg"].get_layer(layer.name).get_weights(),
                             layer.get_weights()):
            np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6, err_msg=layer.name)


def test_a_run_killed_while_the_baseline_trains_keeps_the_finished_csg_model(tmp_path):
    """The CSG model's backup is deleted when its fit ends; its weights stay in the output
    directory until the baseline has finished, and a restarted run loads them instead of
    training the CSG model again."""
    import keras

    from keras_icnn.recipes import csg as recipe

    config, source, strategy = _tiny_pair_run(tmp_path, warmup=0, checkpoint=True)
    models = recipe.build(config, source, strategy)
    # What the killed run left: the finished CSG model's weights (a recognisable G).
    gate = models["csg"].gate_layer.gate
    gate.assign(np.full(gate.shape, 0.25, np.float32))
    kept = [w.copy() for w in models["csg"].get_weights()]
    trained = tmp_path / recipe.TRAINED_CSG_WEIGHTS
    models["csg"].save_weights(str(trained))
    keras.utils.set_random_seed(1)
    models = recipe.build(config, source, strategy)
    recipe.fit(config, source, strategy, models)
    for got, want in zip(models["csg"].get_weights(), kept):
        np.testing.assert_array_equal(got, want)  # loaded, not trained again
    assert not trained.exists()  # removed once the baseline finished
    assert not (tmp_path / "backup_baseline").exists()


def test_tensorboard_summaries_of_a_csg_run(tmp_path):
    """--tensorboard_dir: per epoch every logged loss term and metric, the phase (a CSG
    epoch, then an STD one), L1-density and the gate matrix as an image; the settings once."""
    from keras_icnn.callbacks import read_summaries
    from keras_icnn.recipes import csg as recipe

    config, source, strategy = _tiny_pair_run(
        tmp_path, warmup=0, epochs=2, train_baseline=False, checkpoint=False,
        tensorboard_dir=str(tmp_path / "tb"))
    models = recipe.build(config, source, strategy)
    recipe.fit(config, source, strategy, models)
    tags = read_summaries(tmp_path / "tb" / "csg")
    assert tags["csg_phase"] == {0: 1.0, 1: 0.0}
    assert set(tags["gate_matrix"]) == {0, 1} and set(tags["l1_density"]) == {0, 1}
    gate = np.abs(models["csg"].gate_layer.gate.numpy())
    assert tags["l1_density"][1] > 0 and gate.max() > 0
    assert 0 in tags["csg_loss"] and 1 in tags["accuracy"] and 1 in tags["val_accuracy"]
    assert "_hparams_/session_start_info" in tags and 0 in tags["hparams"]
