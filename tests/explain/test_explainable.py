"""Explainable (explain/explainable.py): traced once per model and layer, wrappers keep p."""
import keras
import numpy as np
import pytest

from keras_icnn.explain import Explainable, explain, explainable_for
from keras_icnn.models import build_explainer, vgg_backbone
from tests.explain.conftest import linear_model


def test_explainable_traces_once_per_shape():
    model = linear_model()
    ex = Explainable(model)
    images = np.zeros((3, 4, 4, 1), np.float32)
    explain(ex, images)
    explain(ex, images + 1)
    assert ex.traced().experimental_get_tracing_count() == 1


def test_a_second_call_on_the_same_model_traces_nothing_whatever_the_batch():
    model = linear_model()
    images = np.random.RandomState(4).uniform(-1, 1, (7, 4, 4, 1)).astype(np.float32)
    first = explain(model, images, batch_size=4)  # batches of 4 and 3
    ex = explainable_for(model)
    traces = ex.traces
    assert traces == 1
    second = explain(model, images[:5], batch_size=2)  # other batch sizes, same Explainable
    assert explainable_for(model) is ex and ex.traces == traces
    np.testing.assert_allclose(second.contributions, first.contributions[:5], rtol=1e-6)
    # The cache lives on the model: another model gets its own.
    other = linear_model()
    explain(other, images)
    assert explainable_for(other) is not ex


def test_explainable_wrappers_keep_their_p_and_honour_layer():
    keras.utils.set_random_seed(0)
    performer = vgg_backbone((32, 32, 3), 3, width=4, dense_units=16)
    _, distiller = build_explainer(performer, "block3_pool", initial_p=0.7)
    images = np.random.RandomState(3).uniform(0, 255, (2, 32, 32, 3)).astype("float32")
    # Was: AttributeError, 'Explainable' object has no attribute 'explainer'.
    assert explain(Explainable(distiller), images).p == pytest.approx(0.7)
    # Was: layer= silently ignored for an Explainable of another layer.
    ex = Explainable(performer, "top_conv")
    e = explain(ex, images, layer="block3_pool")
    assert e.layer == "block3_pool"
    assert e.contributions.shape[1] == int(performer.get_layer("block3_pool").output.shape[-1])
    assert explain(ex, images).layer == "top_conv"
