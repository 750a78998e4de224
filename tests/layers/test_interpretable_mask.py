"""InterpretableMask (layers/interpretable_mask.py): the mask of InterpretableConv on existing
maps, with no kernel of its own."""
import keras
import numpy as np
import pytest

from keras_icnn.layers import InterpretableConv, InterpretableMask


def test_mask_equals_interpretable_conv_with_an_identity_kernel():
    rng = np.random.default_rng(0)
    maps = rng.uniform(0, 2, (3, 6, 6, 4)).astype("float32")
    mask = InterpretableMask(num_classes=2)
    conv = InterpretableConv(4, kernel_size=1, use_bias=False, num_classes=2)
    conv.build((None, 6, 6, 4))
    conv.set_weights([np.eye(4, dtype="float32")[None, None]] + conv.get_weights()[1:])
    out_mask = mask(maps).numpy()
    np.testing.assert_allclose(out_mask, conv(maps).numpy(), rtol=1e-5, atol=1e-6)
    assert mask.trainable_weights == []  # no kernel: only the class statistics and the epoch
    assert sorted(w.path.split("/")[-1] for w in mask.weights) == [
        "class_activation", "class_seen", "epoch"]
    assert np.all(out_mask <= maps + 1e-6) and np.all(out_mask >= 0)  # a mask keeps or damps
    config = mask.get_config()
    assert "filters" not in config and "kernel_size" not in config
    np.testing.assert_allclose(InterpretableMask.from_config(config)(maps).numpy(), out_mask,
                               rtol=1e-6)


def test_needs_a_4d_input_with_known_channels():
    with pytest.raises(ValueError, match="InterpretableMask expects a 4D input"):
        InterpretableMask(num_classes=2).build((None, 6, 4))
