"""The detection side of adversarial/ (detection.py): conv features, feature sites, the
detection protocol and its run."""
import keras
import numpy as np
import pytest

from keras_icnn import adversarial


def test_conv_features_are_pooled_conv_outputs(trained):
    model, images, _ = trained
    feats = adversarial.conv_features(model, images[:5])
    conv = [layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D)][0]
    maps = keras.Model(model.inputs[0], conv.output)(images[:5]).numpy()
    np.testing.assert_allclose(feats, maps.mean((1, 2)), rtol=1e-5, atol=1e-6)


def _gated_tiny_model():
    """conv(relu) -> conv -> BatchNorm -> add(shortcut) -> ReLU -> gate -> GAP -> dense."""
    from keras_icnn.models import make_csg

    keras.utils.set_random_seed(3)
    inputs = keras.Input((8, 8, 3))
    a = keras.layers.Conv2D(4, 3, padding="same", activation="relu", name="c1")(inputs)
    b = keras.layers.Conv2D(5, 3, padding="same", name="c2")(a)
    b = keras.layers.BatchNormalization(name="bn")(b)
    shortcut = keras.layers.Conv2D(5, 1, name="proj")(a)
    top = keras.layers.ReLU(name="top")(keras.layers.Add(name="add")([b, shortcut]))
    x = keras.layers.GlobalAveragePooling2D()(top)
    model = keras.Model(inputs, keras.layers.Dense(3, name="logits")(x))
    return make_csg(model, "top", num_classes=3, density=0.5)


def test_feature_sites_block_and_raw_conv_by_hand():
    model = _gated_tiny_model()
    # Make G far from ones: the STD path (inference) must still ignore it.
    model.gate_layer.gate.assign(np.tile([[1.0, 0.0, 0.5, 0.0, 1.0]], (3, 1)).astype("float32"))
    assert [l.name for l in adversarial.feature_layers(model, "block")] == \
        ["c1", "class_specific_gate"]
    assert [l.name for l in adversarial.feature_layers(model, "raw_conv")] == ["c1", "c2", "proj"]
    images = np.random.RandomState(0).uniform(0, 255, (6, 8, 8, 3)).astype(np.float32)
    maps = keras.Model(model.inputs[0], [model.get_layer(n).output for n in
                                         ("c1", "c2", "proj", "top")])(images)
    c1, c2, proj, top = (np.asarray(m).mean((1, 2)) for m in maps)
    block = adversarial.conv_features(model, images, where="block")
    np.testing.assert_allclose(block, np.concatenate([c1, top], 1), rtol=1e-5, atol=1e-6)
    # The gated layer's pooled output is among the columns: the last 5 are ReLU(add), ungated.
    assert block.shape == (6, 4 + 5) and np.all(block[:, 4:] >= 0)
    raw = adversarial.conv_features(model, images, where="raw_conv")
    np.testing.assert_allclose(raw, np.concatenate([c1, c2, proj], 1), rtol=1e-5, atol=1e-6)
    assert raw[:, 4:9].min() < 0  # before BatchNorm and the add: not post-activation
    with pytest.raises(ValueError, match="`where` must be one of"):
        adversarial.conv_features(model, images, where="pre_bn")


def test_detection_protocol_on_separable_and_identical_features():
    rng = np.random.RandomState(0)
    labels = np.repeat(np.arange(3), 40)
    clean = rng.normal(size=(120, 6)).astype(np.float32)
    shifted = clean + np.array([4.0, 0, 0, 0, 0, 0], np.float32)  # a detectable attack
    r = adversarial.detection_error(clean, shifted, labels, 20, 10, repeats=3)
    assert r["mean"] < 0.05 and len(r["errors"]) == 3
    # Adversarial features identical to the clean ones: no better than a coin.
    r = adversarial.detection_error(clean, clean.copy(), labels, 20, 10, repeats=3)
    assert r["mean"] >= 0.4
    train, test = adversarial.per_class_split(labels, 20, 10, seed=1)
    assert not set(train) & set(test)
    assert all((labels[train] == c).sum() == 20 and (labels[test] == c).sum() == 10
               for c in range(3))
    with pytest.raises(ValueError, match="class 0 has 40 images"):
        adversarial.per_class_split(labels, 35, 10)


def test_detection_run_writes_both_tables(tmp_path):
    """The recipe behind trainers/detect_adversarial.py, in process (the CLI is the shared
    define_flags / config_from_flags of every trainer)."""
    import json

    from keras_icnn.models import make_csg, resnet20_backbone
    from keras_icnn.recipes.adversarial import DetectConfig, run_detection

    keras.utils.set_random_seed(0)
    std = resnet20_backbone((32, 32, 3), 3, width=4, blocks_per_stage=1)
    csg = make_csg(resnet20_backbone((32, 32, 3), 3, width=4, blocks_per_stage=1), "top_conv",
                   density=0.4)
    std.save(tmp_path / "std.keras")
    csg.save(tmp_path / "csg.keras")
    config = DetectConfig(
        models=(str(tmp_path / "std.keras"), str(tmp_path / "csg.keras")), names=("STD", "CSG"),
        image_size=32, num_classes=3, num_test=60, num_train=30, num_val=6,
        train_per_class=("10",), test_per_class=10, repeats=2, cw_iterations=3,
        black_box_images=4, one_pixel_generations=1, local_search_rounds=1, verbose=0,
        output_dir=str(tmp_path / "out"))
    run_detection(config)
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    assert json.loads((tmp_path / "out" / "config.json").read_text())["names"] == ["STD", "CSG"]
    for name in ("STD", "CSG"):
        row = results["models"][name]
        assert set(row["detection"]) == {"fgsm", "pgd", "cw"}
        assert set(row["black_box"]) == {"one_pixel", "local_search"}
        for attack in row["detection"].values():
            assert 0.0 <= attack["10"]["mean"] <= 1.0 and len(attack["10"]["errors"]) == 2
    table = (tmp_path / "out" / "results.md").read_text()
    assert "| block | FGSM | 10 |" in table and "| one_pixel |" in table
    assert "class_specific_gate" in results["models"]["CSG"]["feature_layers"]["block"]
    with pytest.raises(ValueError, match="`attacks` must be among"):
        DetectConfig(models=config.models, attacks=("deepfool",)).validate()
    with pytest.raises(ValueError, match="`features` must be among"):
        DetectConfig(models=config.models, features=("pre_bn",)).validate()
    # The data options are checked as the trainers' are, before any model is loaded.
    with pytest.raises(ValueError, match="`synthetic_config` must be one of"):
        DetectConfig(models=config.models, synthetic_config="harder").validate()
    with pytest.raises(ValueError, match="`num_classes` must be >= 2"):
        DetectConfig(models=config.models, num_classes=1).validate()
    with pytest.raises(ValueError, match="smallest class; the protocol needs 60 per class"):
        run_detection(DetectConfig(**{**config.__dict__, "train_per_class": ("50",)}))
