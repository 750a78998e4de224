import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_icnn import export, metrics
from keras_icnn.models import (build_explainer, gate_matrix, make_csg, make_interpretable,
                               resnet20_backbone, vgg_backbone)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "export"))
import serving_client  # noqa: E402


def _images(n, seed=0):
    return np.random.RandomState(seed).uniform(0, 255, (n, 32, 32, 3)).astype("float32")


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    keras.utils.set_random_seed(0)
    base = tmp_path_factory.mktemp("models")
    models = {
        "ordinary": vgg_backbone((32, 32, 3), 3, width=4),
        "interpretable": make_interpretable(vgg_backbone((32, 32, 3), 3, width=4), "top_conv"),
        "csg": make_csg(resnet20_backbone((32, 32, 3), 3, width=4, blocks_per_stage=1),
                        "top_conv", density=0.4),
        "explainer": build_explainer(vgg_backbone((32, 32, 3), 3, width=4), "block3_pool")[1],
    }
    gate = models["csg"].gate_layer.gate
    gate.assign(np.random.RandomState(1).uniform(0, 1, gate.shape).astype("float32"))
    paths = {k: export.export_model(m, str(base), k) for k, m in models.items()}
    return models, paths, str(base)


@pytest.mark.parametrize("kind", export.KINDS)
def test_serve_matches_predict_at_two_batch_sizes(exported, kind):
    models, paths, _ = exported
    served = tf.saved_model.load(paths[kind])
    classifier = models[kind].performer if kind == "explainer" else models[kind]
    for n in (1, 7):
        x = _images(n, seed=n)
        out = served.signatures["serving_default"](images=tf.constant(x))
        want = tf.nn.softmax(classifier.predict(x, verbose=0)).numpy()
        np.testing.assert_allclose(out["probabilities"].numpy(), want, rtol=1e-5, atol=1e-6)
        np.testing.assert_array_equal(out["class_ids"].numpy(), want.argmax(-1))
        ex = served.signatures["explain"](images=tf.constant(x))
        np.testing.assert_allclose(ex["probabilities"].numpy(), want, rtol=1e-5, atol=1e-6)
        assert ex["part_locations"].shape[:1] == (n,) and ex["part_locations"].shape[-1] == 2


def test_explain_matches_library_metrics(exported):
    models, paths, _ = exported
    model = models["interpretable"]
    x = _images(6)
    ex = tf.saved_model.load(paths["interpretable"]).signatures["explain"](images=tf.constant(x))
    r = metrics.collect_responses(model, "top_conv_interp", {"image": x}, verbose=0)
    np.testing.assert_allclose(ex["part_locations"].numpy(), r["positions"])
    np.testing.assert_allclose(ex["part_scores"].numpy(), r["scores"], rtol=1e-5, atol=1e-7)
    layer = model.get_layer("top_conv_interp")
    np.testing.assert_array_equal(ex["filter_classes"].numpy(), layer.target_classes.numpy())
    f = layer.filters
    shares, _, _ = metrics.part_contributions(model, "top_conv_interp", x, np.arange(f), f)
    np.testing.assert_allclose(ex["contribution_shares"].numpy(), shares[:, :f], rtol=1e-4, atol=1e-6)
    csg = tf.saved_model.load(paths["csg"]).signatures["explain"](images=tf.constant(x))
    g = gate_matrix(models["csg"])
    np.testing.assert_allclose(csg["filter_relevance"].numpy(), g[csg["class_ids"].numpy()])
    np.testing.assert_array_equal(csg["filter_classes"].numpy(), g.argmax(0))


@pytest.mark.parametrize("kind", export.KINDS)
def test_exported_explain_agrees_with_the_python_call(exported, kind):
    from keras_icnn.explain import explain

    models, paths, _ = exported
    x = _images(5, seed=11)
    served = tf.saved_model.load(paths[kind]).signatures["explain"](images=tf.constant(x))
    e = explain(models[kind], x, heatmaps=None)
    np.testing.assert_array_equal(served["class_ids"].numpy(), e.classes)
    np.testing.assert_array_equal(served["filter_classes"].numpy(), e.filter_classes)
    fields = ["probabilities", "part_locations", "part_scores", "contributions",
              "contribution_shares"] + (["filter_relevance"] if kind == "csg" else [])
    assert set(served) == set(fields) | {"class_ids", "filter_classes"}
    for field in fields:
        np.testing.assert_allclose(served[field].numpy(), getattr(e, field), rtol=1e-6,
                                   atol=1e-6, err_msg=field)


def test_loads_in_a_fresh_process_without_keras_icnn(exported):
    _, paths, _ = exported
    script = (
        "import sys, numpy as np, tensorflow as tf\n"
        "for path in sys.argv[1:]:\n"
        "    m = tf.saved_model.load(path)\n"
        "    x = tf.constant(np.zeros((2, 32, 32, 3), np.float32))\n"
        "    assert m.signatures['serving_default'](images=x)['probabilities'].shape == (2, 3)\n"
        "    assert m.signatures['explain'](images=x)['part_scores'].shape[0] == 2\n"
        "assert not any(k.startswith('keras_icnn') for k in sys.modules), 'keras_icnn imported'\n"
        "print('ok')\n")
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="")
    proc = subprocess.run([sys.executable, "-c", script] + list(paths.values()), cwd="/",
                          env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip().endswith("ok")


def _cli(*args):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="")
    return subprocess.run([sys.executable, "-m", "tensorflow.python.tools.saved_model_cli"] + list(args),
                          env=env, capture_output=True, text=True, timeout=300)


def test_saved_model_cli_show_and_run(exported, tmp_path):
    _, paths, _ = exported
    shown = _cli("show", "--all", "--dir", paths["interpretable"])
    assert shown.returncode == 0, shown.stderr[-2000:]
    text = shown.stdout
    for name in ("signature_def['serving_default']", "signature_def['explain']",
                 "inputs['images']", "outputs['probabilities']", "outputs['class_ids']",
                 "outputs['part_locations']", "outputs['part_scores']",
                 "outputs['filter_classes']", "outputs['contributions']",
                 "outputs['contribution_shares']"):
        assert name in text
    explain = text[text.index("signature_def['explain']"):text.index("signature_def['serving_default']")]
    assert "dtype: DT_FLOAT" in explain and "shape: (-1, 32, 2)" in explain
    assert "shape: (32)" in explain and "dtype: DT_INT64" in explain
    np.save(tmp_path / "x.npy", _images(2))
    ran = _cli("run", "--dir", paths["interpretable"], "--tag_set", "serve",
               "--signature_def", "explain", "--inputs", f"images={tmp_path / 'x.npy'}",
               "--outdir", str(tmp_path / "out"))
    assert ran.returncode == 0, ran.stderr[-2000:]
    loc = np.load(tmp_path / "out" / "part_locations.npy")
    assert loc.shape == (2, 32, 2) and set(np.unique(loc)) <= {4.0, 12.0, 20.0, 28.0}


def test_warmup_file_parses_as_prediction_log(exported):
    from tensorflow_serving.apis import prediction_log_pb2

    _, paths, _ = exported
    path = os.path.join(paths["csg"], "assets.extra", export.WARMUP_FILE)
    logs = [prediction_log_pb2.PredictionLog.FromString(r.numpy())
            for r in tf.data.TFRecordDataset(path)]
    assert [log.predict_log.request.model_spec.signature_name for log in logs] == \
        ["serving_default", "explain"]
    images = tf.make_ndarray(logs[0].predict_log.request.inputs["images"])
    assert images.shape == (1, 32, 32, 3) and images.dtype == np.float32


def test_bad_inputs_give_the_documented_error(exported):
    _, paths, _ = exported
    fn = tf.saved_model.load(paths["ordinary"]).signatures["serving_default"]
    for bad in (np.zeros((32, 32, 3, 1, 1), np.float32)[..., 0], np.zeros((2, 31, 32, 3), np.float32),
                np.zeros((2, 32, 32, 1), np.float32)):
        with pytest.raises(tf.errors.InvalidArgumentError,
                           match=r"images must have shape \[batch, 32, 32, 3\]"):
            fn(images=tf.constant(bad))
    nan = np.zeros((1, 32, 32, 3), np.float32)
    nan[0, 0, 0, 0] = np.nan
    with pytest.raises(tf.errors.InvalidArgumentError, match="images must be finite"):
        fn(images=tf.constant(nan))
    # A dtype the signature does not take is refused before the graph runs.
    with pytest.raises(tf.errors.InvalidArgumentError, match="expected to be a float tensor"):
        fn(images=tf.constant(np.zeros((1, 32, 32, 3), np.int32)))


def test_client_request_builders_round_trip(exported):
    _, paths, _ = exported
    x = _images(2)
    body = serving_client.rest_payload(x, "explain")
    assert body["signature_name"] == "explain" and np.allclose(body["instances"], x)
    json.dumps(body)
    request = serving_client.grpc_request(x, "explain", model_name="icnn", version=1)
    assert request.model_spec.name == "icnn" and request.model_spec.version.value == 1
    out = serving_client.answer_locally(paths["interpretable"], request)
    direct = tf.saved_model.load(paths["interpretable"]).signatures["explain"](images=tf.constant(x))
    np.testing.assert_allclose(out["contribution_shares"], direct["contribution_shares"].numpy())


def test_versions_and_existing_directory(exported, tmp_path):
    models, _, base = exported
    assert export.next_version(os.path.join(base, "ordinary")) == 2
    with pytest.raises(FileExistsError, match="already exists"):
        export.export_model(models["ordinary"], base, "ordinary", version=1)
    with pytest.raises(ValueError, match=r"`input_dtype` must be one of \('float32', 'uint8'\)"):
        export.export_model(models["ordinary"], str(tmp_path), "x", input_dtype="int8")
