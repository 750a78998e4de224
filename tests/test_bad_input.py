"""Bad input gets a clear error naming the argument, what was expected and what was received."""
import os
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_icnn import export, losses, metrics, validation
from keras_icnn.layers import ClassSpecificGate, InterpretableConv
from keras_icnn.models import make_csg, make_interpretable, vgg_backbone
from keras_icnn.recipes import CSGConfig, ExplainerConfig, ICNNConfig
from keras_icnn.report import EvalConfig

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


# ---- labels -------------------------------------------------------------------------------


def test_interpretable_conv_rejects_float_out_of_range_and_miscounted_labels():
    layer = InterpretableConv(4, num_classes=3)
    x = tf.random.uniform([2, 6, 6, 3])
    layer(x, labels=tf.constant([0, 2]), training=True)  # fine
    with pytest.raises(TypeError, match=r"InterpretableConv .* whole numbers .*\[1\.5\]"):
        layer(x, labels=tf.constant([0.0, 1.5]), training=True)
    with pytest.raises(ValueError, match=r"must lie in \[0, 3\)\. Received: min=0, max=3"):
        layer(x, labels=tf.constant([0, 3]), training=True)
    with pytest.raises(ValueError, match=r"one label per example \(2\)\. Received: 3 labels"):
        layer(x, labels=tf.constant([0, 1, 2]), training=True)


def test_class_specific_gate_rejects_bad_labels():
    gate = ClassSpecificGate(3, density=0.5)
    f = tf.ones([2, 4, 4, 5])
    np.testing.assert_allclose(gate(f, labels=tf.constant([0, 2])).numpy(), f.numpy())
    with pytest.raises(ValueError, match=r"ClassSpecificGate .* must lie in \[0, 3\)\. "
                                         r"Received: min=0, max=5"):
        gate(f, labels=tf.constant([0, 5]))
    with pytest.raises(TypeError, match=r"whole numbers .*\[0\.5\]"):
        gate(f, labels=tf.constant([0.5, 1.0]))
    with pytest.raises(ValueError, match=r"one label per example \(2\)\. Received: 3 labels"):
        gate(f, labels=tf.constant([0, 1, 2]))


def test_class_specific_gate_label_asserts_in_graph_mode():
    gate = ClassSpecificGate(3, density=0.5)
    f = tf.ones([2, 4, 4, 5])
    gate(f, labels=tf.constant([0, 1]))

    @tf.function
    def gated(labels):
        return gate(f, labels=labels)

    with pytest.raises(tf.errors.InvalidArgumentError, match=r"labels must lie in \[0, 3\)"):
        gated(tf.constant([0, 7]))


def test_approximate_loss_checks_labels():
    x = tf.random.uniform([3, 4, 4, 2])
    targets = tf.constant([0, 1])
    losses.approximate_mutual_information_loss(x, tf.constant([0, 1, 2]), targets, num_classes=3)
    with pytest.raises(ValueError, match=r"approximate_mutual_information_loss: labels` must "
                                         r"lie in \[0, 3\)\. Received: min=0, max=4"):
        losses.approximate_mutual_information_loss(x, tf.constant([0, 1, 4]), targets,
                                                   num_classes=3)
    with pytest.raises(ValueError, match=r"labels` must be >= 0\. Received: min=-1"):
        losses.approximate_mutual_information_loss(x, tf.constant([0, -1, 1]), targets)
    with pytest.raises(TypeError, match=r"whole numbers"):
        losses.approximate_mutual_information_loss(x, tf.constant([0.0, 0.5, 1.0]), targets)
    with pytest.raises(ValueError, match=r"one label per example \(3\)\. Received: 2 labels"):
        losses.approximate_mutual_information_loss(x, tf.constant([0, 1]), targets)


def test_mutual_information_score_rejects_float_labels_and_bad_counts():
    feats = np.random.default_rng(0).normal(size=(6, 2))
    with pytest.raises(TypeError, match=r"whole numbers .*\[0\.5\]"):
        metrics.mutual_information_score(feats, [0, 0.5, 1, 1, 0, 1], 2)
    with pytest.raises(ValueError, match=r"one label per example \(6\)\. Received: 5 labels"):
        metrics.mutual_information_score(feats, [0, 1, 1, 0, 1], 2)
    with pytest.raises(ValueError, match=r"`features` must be finite"):
        metrics.mutual_information_score(np.full((6, 2), np.nan), [0, 1, 1, 0, 1, 0], 2)


# ---- training ------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def tiny_data():
    rng = np.random.default_rng(0)
    return rng.uniform(0, 255, (16, 32, 32, 3)).astype("float32"), np.arange(16) % 3


def _icnn(jit_compile=True):
    keras.utils.set_random_seed(0)
    model = make_interpretable(vgg_backbone((32, 32, 3), 3, width=4), "top_conv")
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(True),
                  jit_compile=jit_compile)
    return model


def test_fit_checks_labels_before_the_compiled_step(tiny_data):
    x, y = tiny_data
    model = _icnn()
    with pytest.raises(TypeError, match=r"InterpretableModel 'vgg_interpretable': y` must be "
                                        r"whole numbers .* Received: \[0\.5, 1\.5, 2\.5\]"):
        model.fit(x, y + 0.5, batch_size=8, verbose=0)
    with pytest.raises(ValueError, match=r"y` must lie in \[0, 3\)\. Received: min=3, max=5"):
        model.fit(x, y + 3, batch_size=8, verbose=0)
    ds = tf.data.Dataset.from_tensor_slices((x, y + 3)).batch(8)
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"labels must lie in \[0, 3\)"):
        model.fit(ds, verbose=0)
    csg = make_csg(vgg_backbone((32, 32, 3), 3, width=4), "top_conv", density=0.5)
    csg.compile()
    with pytest.raises(ValueError, match=r"CSGModel .* y` must lie in \[0, 3\)"):
        csg.fit(x, y - 1, batch_size=8, verbose=0)


def test_non_finite_maps_stop_training_naming_the_layer(tiny_data):
    x, y = tiny_data
    model = _icnn()
    bad = x.copy()
    bad[3, 4, 4, 0] = np.inf
    # The guard names the input first, then the layer whose filter loss saw the maps.
    with pytest.raises(ValueError, match=r"Non-finite values \(NaN or Inf\) in input at epoch 1, "
                                         r"step 1: .* reached the filter loss of layer\(s\) "
                                         r"'top_conv'"):
        model.fit(bad, y, batch_size=8, epochs=2, verbose=0)
    # The finite data trains, quietly (no XLA: the compiled step was the poisoned run's).
    history = _icnn(jit_compile=False).fit(x, y, batch_size=8, verbose=0)
    assert not any(k.startswith("nonfinite") for k in history.history)
    assert np.isfinite(history.history["filter_loss"][-1])


# ---- metrics -------------------------------------------------------------------------------

def test_metric_inputs_are_checked():
    with pytest.raises(ValueError, match=r"same N >= 1\. Received: \(0, 2, 2, 3\), \(0, 8, 8, 2\)"):
        metrics.part_interpretability(np.zeros((0, 2, 2, 3)), np.zeros((0, 8, 8, 2), bool))
    pos = np.zeros((4, 3, 2))
    scores = np.ones((4, 3))
    hidden = np.full((4, 2, 2), np.nan)
    with pytest.raises(ValueError, match=r"at least one landmark .* all 8 landmarks hidden"):
        metrics.location_instability(pos, hidden, (32, 32), scores)
    with pytest.raises(ValueError, match=r"`top_k` must be an integer >= 1\. Received: top_k=0"):
        metrics.location_instability(pos, np.ones((4, 2, 2)), (32, 32), scores, top_k=0)
    with pytest.raises(ValueError, match=r"`top_k` must be an integer >= 1"):
        metrics.location_instability_multi(pos, np.ones((4, 2, 2)), [0, 1, 0, 1], (32, 32),
                                           scores, 2, top_k=0)
    with pytest.raises(ValueError, match=r"non-empty \[C, K\] matrix\. Received: shape=\(0,\)"):
        metrics.l1_density([])
    with pytest.raises(ValueError, match=r"Received: shape=\(3,\)"):
        metrics.l1_density([1.0, 0.5, 0.0])
    assert metrics.l1_density([[1.0, 0.0], [0.5, 0.5]]) == 0.5


# ---- export --------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def served(tmp_path_factory):
    keras.utils.set_random_seed(0)
    model = make_interpretable(vgg_backbone((32, 32, 3), 3, width=4), "top_conv")
    base = tmp_path_factory.mktemp("served")
    path = export.export_model(model, str(base), "icnn", serving_warmup=False)
    return model, base, tf.saved_model.load(path)


@pytest.mark.parametrize("shape", [(32, 32, 3), (1, 2, 32, 32, 3), (1, 30, 32, 3)])
def test_exported_signatures_name_the_expected_shape(served, shape):
    for signature in ("serving_default", "explain"):
        with pytest.raises(tf.errors.InvalidArgumentError,
                           match=r"images must have shape \[batch, 32, 32, 3\]"):
            served[2].signatures[signature](images=tf.zeros(shape))


def test_exported_signatures_answer_an_empty_batch_with_empty_outputs(served):
    model, _, loaded = served
    out = loaded.signatures["explain"](images=tf.zeros((0, 32, 32, 3)))
    assert out["probabilities"].shape == (0, 3) and out["class_ids"].shape == (0,)
    assert out["part_locations"].shape == (0, 32, 2) and out["contribution_shares"].shape == (0, 32)
    assert out["filter_classes"].shape == (32,)
    assert loaded.signatures["serving_default"](images=tf.zeros((0, 32, 32, 3)))[
        "probabilities"].shape == (0, 3)
    x = np.random.default_rng(0).uniform(0, 255, (2, 32, 32, 3)).astype("float32")
    np.testing.assert_allclose(loaded.signatures["serving_default"](images=x)["probabilities"],
                               tf.nn.softmax(model(x)).numpy(), rtol=1e-5, atol=1e-6)


def test_export_arguments_are_checked(served):
    model, base, _ = served
    with pytest.raises(ValueError, match=r"`layer_name` must name a layer with 4D feature maps "
                                         r".* Received: layer_name='logits' \(Dense"):
        export.export_model(model, str(base), "x", layer_name="logits", serving_warmup=False)
    with pytest.raises(ValueError, match=r"`layer_name` must name a layer of model"):
        export.export_model(model, str(base), "x", layer_name="nope", serving_warmup=False)
    with pytest.raises(ValueError, match=r"`version` must be an integer >= 1\. Received: "
                                         r"version=-3"):
        export.export_model(model, str(base), "x", version=-3, serving_warmup=False)
    with pytest.raises(ValueError, match=r"`name` must be a plain folder name"):
        export.export_model(model, str(base), "a/b", serving_warmup=False)


# ---- models --------------------------------------------------------------------------------

def test_make_interpretable_and_make_csg_accept_a_sequential_model():
    keras.utils.set_random_seed(0)
    seq = keras.Sequential([keras.Input((16, 16, 3)),
                            keras.layers.Conv2D(8, 3, padding="same", activation="relu",
                                                name="top"),
                            keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(3)])
    x = np.random.default_rng(0).uniform(0, 1, (2, 16, 16, 3)).astype("float32")
    model = make_interpretable(seq, "top")
    assert [l.name for l in model.layers if isinstance(l, InterpretableConv)] == ["top",
                                                                                   "top_interp"]
    np.testing.assert_allclose(model.get_layer("top").kernel.numpy(),
                               seq.get_layer("top").kernel.numpy())
    csg = make_csg(seq, "top", density=0.5)
    np.testing.assert_allclose(csg(x).numpy(), seq(x).numpy(), rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match=r"make_csg: no layer named 'nope'"):
        make_csg(seq, "nope", density=0.5)
    with pytest.raises(ValueError, match=r"built Sequential model with a known input shape"):
        make_interpretable(keras.Sequential([keras.layers.Conv2D(4, 3)]), "x")


# ---- configs and command lines -------------------------------------------------------------

@pytest.mark.parametrize("config, message", [
    (CSGConfig(epochs=-1), r"`epochs` must be an integer >= 1\. Received: epochs=-1"),
    (CSGConfig(csg_epochs=3, period=2), r"`csg_epochs` must be <= `period`"),
    (CSGConfig(density=0.1), r"`density` must lie in \[1/num_classes, 1\] = \[0\.1667"),
    (CSGConfig(gate_learning_rate=0.0), r"`gate_learning_rate` must lie in \(0, inf\)\. Received: gate_learning_rate=0\.0"),
    (ICNNConfig(occlusion=1.5), r"`occlusion` must lie in \[0, 1\]\. Received: occlusion=1\.5"),
    (ICNNConfig(backbone="vgg19"), r"`backbone` must be one of .* Received: backbone='vgg19'"),
    (ExplainerConfig(initial_p=1.0), r"`initial_p` must lie in \(0, 1\)"),
    (EvalConfig(models=("a.keras",)), r"model file not found: a\.keras"),
])
def test_configs_name_the_bad_field(config, message):
    with pytest.raises((ValueError, TypeError, FileNotFoundError), match=message):
        config.validate()


def _clis(*commands):
    """Run the commands at once (each pays TensorFlow's start-up; two cores overlap them):
    their CompletedProcess, in order."""
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="")
    procs = [subprocess.Popen([sys.executable] + list(argv), cwd=ROOT, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for argv in commands]
    done = []
    for p in procs:
        out, err = p.communicate(timeout=300)
        done.append(subprocess.CompletedProcess(p.args, p.returncode, out, err))
    return done


def test_command_lines_reject_bad_flags(tmp_path):
    model = tmp_path / "m.keras"
    vgg_backbone((32, 32, 3), 3, width=4).save(model)
    csg, evaluate, export = _clis(
        ("trainers/train_csg.py", "--epochs=-1", f"--output_dir={tmp_path / 'csg'}"),
        ("trainers/evaluate.py", f"--models={model}", "--num_examples=0",
         f"--output_dir={tmp_path / 'eval'}"),
        ("export/export_savedmodel.py", f"--model={model}", "--version=-3",
         f"--base_dir={tmp_path / 'models'}"))
    assert csg.returncode != 0
    assert "`epochs` must be an integer >= 1. Received: epochs=-1" in csg.stderr
    assert not (tmp_path / "csg" / "results.json").exists()
    assert evaluate.returncode != 0
    assert "`num_examples` must be >= 1 with synthetic data. Received: num_examples=0" in evaluate.stderr
    assert export.returncode != 0
    assert "`version` must be an integer >= 0. Received: version=-3" in export.stderr
    assert not (tmp_path / "models").exists()


def test_model_level_metrics_check_images_and_filter_parts():
    keras.utils.set_random_seed(0)
    model = vgg_backbone((32, 32, 3), 3, width=4)
    images = np.zeros((2, 32, 32, 3), np.float32)
    with pytest.raises(ValueError, match=r"part_contributions: `images` must have shape "
                                         r"\[N >= 1, 32, 32, 3\] .* Received: shape=\(32, 32, 3\)"):
        metrics.part_contributions(model, "top_conv", images[0], np.zeros(32, int), 2)
    with pytest.raises(ValueError, match=r"`filter_parts` must give a part index .* 32 filters"):
        metrics.part_contributions(model, "top_conv", images, np.zeros(5, int), 2)
    with pytest.raises(ValueError, match=r"`filter_parts` must lie in \[-1, num_parts=2\)"):
        metrics.part_contributions(model, "top_conv", images, np.full(32, 2), 2)
    bad = images.copy()
    bad[0, 0, 0, 0] = np.nan
    with pytest.raises(ValueError, match=r"gradient_maps: `images` must be finite"):
        metrics.gradient_maps(model, "top_conv", bad)


def test_default_configs_are_valid():
    for config in (CSGConfig(), ICNNConfig(), ExplainerConfig(), CSGConfig(fixed_gate=True,
                                                                            filters_per_class=2)):
        assert config.validate() is config
    with pytest.raises(ValueError, match=r"`filters_per_class` must be >= 1 with fixed_gate"):
        CSGConfig(fixed_gate=True).validate()


# ---- issue 31: the raw errors that were left ------------------------------------------------

def _cub_missing_file(tmp_path):
    from keras_icnn.data import synthetic_birds

    root = tmp_path / "CUB_200_2011"
    synthetic_birds.write_cub_birds(str(root), num_species=2, per_species=3, size=48, seed=0)
    with open(root / "images.txt") as f:
        first = f.readline().split()[1]
    os.remove(root / "images" / first)
    return str(root), first


def _raw_error_cases(tmp_path):
    from keras_icnn.data import pipeline, sources, synthetic_parts

    maps = np.random.RandomState(0).uniform(0, 1, (2, 5, 5, 3)).astype(np.float32)
    nan_maps = maps.copy()
    nan_maps[0, 1, 1, 0] = np.nan
    masks = np.zeros((2, 5, 5, 2), bool)
    masks[:, :2, :2, 0] = True
    ex = synthetic_parts.make_examples(4, image_size=16)
    root, missing = _cub_missing_file(tmp_path)
    return [
        (lambda: losses.approximate_mutual_information_loss(
            maps, tf.constant([0, 1]), tf.constant([0, 1]), num_classes=2),
         ValueError, r"`target_classes` must give one class per filter: shape \[3\]"),
        (lambda: synthetic_parts.make_examples(2.5, image_size=16),
         TypeError, r"`n` must be an integer >= 0\. Received: n=2\.5"),
        (lambda: sources.read_cub(root), FileNotFoundError, f"image file not found: .*{missing}"),
        (lambda: sources.read_cub(root, image_size=0),
         ValueError, r"`image_size` must be an integer >= 1\. Received: image_size=0"),
        (lambda: pipeline.make_dataset(ex, batch_size=0),
         ValueError, r"`batch_size` must be an integer >= 1\. Received: batch_size=0"),
        (lambda: metrics.part_interpretability(nan_maps, masks),
         ValueError, r"`activation_maps` must be finite\. Received: 1 NaN/Inf"),
    ]


def test_the_remaining_raw_errors_name_their_argument(tmp_path):
    for call, kind, message in _raw_error_cases(tmp_path):
        with pytest.raises(kind, match=message):
            call()


def test_evaluate_names_the_flag_that_does_not_match_the_model(tmp_path):
    from keras_icnn.report import evaluate_models

    model = vgg_backbone((32, 32, 3), 3, width=4, dense_units=8)
    model.save(tmp_path / "m.keras")
    base = dict(models=(str(tmp_path / "m.keras"),), num_examples=6, verbose=0,
                output_dir=str(tmp_path / "eval"))
    with pytest.raises(ValueError, match=r"`image_size` does not match .* 32x32 images\. "
                                         r"Received: --image_size=64"):
        evaluate_models(EvalConfig(image_size=64, num_classes=3, **base))
    with pytest.raises(ValueError, match=r"predicts 3 classes but the data has 6 \(set by "
                                         r"--num_classes\)"):
        evaluate_models(EvalConfig(image_size=32, num_classes=6, **base))


# ---- issue 44: the seams a new user found ----------------------------------------------------

def _gap_model(classes=3):
    keras.utils.set_random_seed(0)
    inputs = keras.Input((16, 16, 3))
    maps = keras.layers.Conv2D(4, 3, activation="relu", name="conv")(inputs)
    out = keras.layers.Dense(classes, name="logits")(keras.layers.GlobalAveragePooling2D()(maps))
    return keras.Model(inputs, out)


@pytest.mark.parametrize("target", [2.7, True, np.float32(1.5), [0.5, 1.0]])
def test_explain_never_truncates_a_float_target(target):
    from keras_icnn.explain import explain

    x = np.random.default_rng(0).uniform(0, 255, (2, 16, 16, 3)).astype("float32")
    with pytest.raises(TypeError, match="`target` must be"):
        explain(_gap_model(), x, target=target)


def test_ascent_never_truncates_float_filters_or_classes():
    from keras_icnn import ascent

    model = _gap_model()
    with pytest.raises(TypeError, match=r"`filters` must be whole numbers.*1\.5"):
        ascent.filter_images(model, "conv", filters=[1.5], steps=1)
    with pytest.raises(TypeError, match=r"`classes` must be whole numbers.*0\.7"):
        ascent.class_images(model, classes=[0.7], steps=1)
    with pytest.raises(ValueError, match="`classes` must hold at least one index"):
        ascent.class_images(model, classes=[], steps=1)


def test_explain_names_empty_images_and_a_short_target_list():
    from keras_icnn.explain import explain

    model = _gap_model()
    x = np.random.default_rng(0).uniform(0, 255, (4, 16, 16, 3)).astype("float32")
    with pytest.raises(ValueError, match="`images` holds no image"):
        explain(model, x[:0], target=2)
    batches = tf.data.Dataset.from_tensor_slices(x).batch(2)
    with pytest.raises(ValueError, match="`target` holds 2 class indices but the dataset holds "
                                         "more images"):
        explain(model, batches, target=[0, 1])
    with pytest.raises(ValueError, match="`target` holds 5 class indices but the dataset held 4"):
        explain(model, batches, target=[0, 1, 2, 0, 1])
    assert explain(model, batches, target=[0, 1, 2, 0]).target.tolist() == [0, 1, 2, 0]


def test_fit_without_labels_is_a_clear_error(tiny_data):
    from keras_icnn.models import resnet20_backbone

    x, _ = tiny_data
    csg = make_csg(resnet20_backbone((32, 32, 3), 3, width=4, blocks_per_stage=1), "top_conv",
                   density=0.5)
    csg.compile("adam")
    for model in (csg, _icnn()):
        with pytest.raises(ValueError, match="needs labels: fit\\(images, labels\\)"):
            model.fit(x, epochs=1, verbose=0)
        with pytest.raises(ValueError, match="needs labels.*a dataset whose elements"):
            model.fit(tf.data.Dataset.from_tensor_slices(x).batch(4), epochs=1, verbose=0)


def test_make_csg_refuses_a_two_output_model():
    inputs = keras.Input((16, 16, 3))
    maps = keras.layers.Conv2D(4, 3, activation="relu", name="conv")(inputs)
    pooled = keras.layers.GlobalAveragePooling2D()(maps)
    two = keras.Model(inputs, [keras.layers.Dense(3)(pooled), keras.layers.Dense(2)(pooled)])
    with pytest.raises(ValueError, match=r"make_csg needs a classifier with one output of shape "
                                         r"\[batch, classes\].*\(None, 3\), \(None, 2\)"):
        make_csg(two, "conv")


@pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="needs /proc (Linux)")
def test_unwritable_output_directories_fail_before_any_work(tmp_path, monkeypatch):
    from keras_icnn import recipes
    from keras_icnn.recipes import icnn as icnn_recipe

    def must_not_run(*args, **kwargs):
        raise AssertionError("the recipe built models before checking --output_dir")

    monkeypatch.setattr(icnn_recipe, "build", must_not_run, raising=False)
    monkeypatch.setattr(recipes.common, "open_data", must_not_run)
    with pytest.raises(ValueError, match=r"`output_dir`: cannot create the directory /proc/x"):
        recipes.run_icnn_experiment(ICNNConfig(output_dir="/proc/x", verbose=0))
    a_file = tmp_path / "a_file"
    a_file.write_text("")
    with pytest.raises(ValueError, match=r"`tensorboard_dir` must be a directory; .*a_file is a "
                                         r"file"):
        recipes.run_csg_experiment(CSGConfig(output_dir=str(tmp_path / "out"), verbose=0,
                                             tensorboard_dir=str(a_file)))
    with pytest.raises(ValueError, match=r"`output_dir`: cannot create the directory /proc/x"):
        recipes.run_explainer_experiment(ExplainerConfig(output_dir="/proc/x", verbose=0))
    model = _gap_model()
    with pytest.raises(ValueError, match=r"`base_dir`: cannot create the directory /proc/x"):
        export.export_model(model, "/proc/x", "m", serving_warmup=False)


def test_model_files_that_are_not_keras_archives_are_named(tmp_path):
    import zipfile

    from keras_icnn.recipes.common import load_model_file

    junk = tmp_path / "junk.keras"
    junk.write_text("root:x:0:0:root:/root:/bin/bash\n")
    with pytest.raises(ValueError, match=r"`models`: .*junk.keras is not a Keras model file") as e:
        load_model_file(junk, "models")
    assert "root:" not in str(e.value)
    empty_zip = tmp_path / "nozip.keras"
    with zipfile.ZipFile(empty_zip, "w") as z:
        z.writestr("model.weights.h5", b"")
    with pytest.raises(ValueError, match=r"`model`: .*nozip.keras is a zip archive without "
                                         r"config.json"):
        load_model_file(empty_zip, "model")
    with pytest.raises(FileNotFoundError, match=r"`performer`: model file not found"):
        load_model_file(tmp_path / "nope.keras", "performer")
    model = _gap_model()
    model.save(tmp_path / "ok.keras")
    assert load_model_file(tmp_path / "ok.keras").count_params() == model.count_params()


def test_config_json_records_what_the_data_gave_the_run(tmp_path):
    from keras_icnn.data import layouts, sources, synthetic_parts
    from keras_icnn.reporting.outputs import run_settings

    ex = synthetic_parts.make_examples(16, image_size=16, num_classes=4, seed=1)
    order = np.argsort(ex["label"], kind="stable")
    root = layouts.write_cub_layout({k: v[order] for k, v in ex.items()}, str(tmp_path / "c"))
    config = ICNNConfig(dataset="cub", data_dir=root, image_size=16, num_val=2,
                        output_dir=str(tmp_path / "o"))
    assert (config.num_classes, config.num_val) == (6, 2)
    source = sources.open_source("cub", root, image_size=16, num_val=2)
    settings = run_settings(config, source)
    assert settings["num_classes"] == 4 and settings["num_val"] == source.size("validation")
    assert settings["num_train"] == source.size("train") > 0
    assert settings["num_test"] == source.size("test") > 0
    assert settings["from_data"]["flags_given"]["num_classes"] == 6
    assert settings["eval_images"] == source.size("test")
