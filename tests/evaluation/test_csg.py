"""The CSG evaluation pass (evaluation/csg.py): both paths' logits and the pooled maps, equal to
the model's own calls."""
import keras
import numpy as np

from keras_icnn.evaluation.csg import csg_pass
from keras_icnn.models import make_csg
from tests.models.conftest import tiny_backbone, tiny_data


def test_one_pass_gives_both_paths_and_the_pooled_maps():
    model = make_csg(tiny_backbone(), "top_conv", num_classes=3, density=0.5)
    gate = model.gate_layer.gate
    gate.assign(np.random.default_rng(0).uniform(0, 1, gate.shape).astype("float32"))
    x, y = tiny_data(10)
    batches = lambda: ({"image": x[a:a + 4], "label": y[a:a + 4]} for a in range(0, 10, 4))  # noqa: E731
    out = csg_pass(model, "top_conv", batches)
    np.testing.assert_allclose(out["std"], model.predict(x, verbose=0), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(out["csg"], np.asarray(model.csg_logits(x, y)), rtol=1e-5,
                               atol=1e-6)
    maps = keras.Model(model.inputs, model.get_layer("top_conv").output)(x).numpy()
    np.testing.assert_allclose(out["pooled"], maps.mean(axis=(1, 2)), rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(out["label"], y)
    assert not np.allclose(out["std"], out["csg"])  # the gate changes the CSG path
    assert "csg" not in csg_pass(model, "top_conv", batches, csg=False)
