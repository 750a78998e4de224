import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_icnn import adversarial


def _linear(seed=0):
    """logits = W^T flatten(x / 255) + b on 4x4x1 images: FGSM has a closed form."""
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((4, 4, 1))
    x = keras.layers.Rescaling(1.0 / 255.0)(inputs)
    x = keras.layers.Flatten()(x)
    model = keras.Model(inputs, keras.layers.Dense(3, name="dense")(x))
    w = np.random.RandomState(seed).normal(size=(16, 3)).astype(np.float32)
    model.get_layer("dense").kernel.assign(w)
    model.get_layer("dense").bias.assign(np.zeros(3, np.float32))
    return model, w


@pytest.fixture(scope="module")
def trained():
    """A tiny undefended CNN that separates three colour classes (accuracy > 0.95)."""
    keras.utils.set_random_seed(0)
    rng = np.random.RandomState(0)
    labels = rng.randint(0, 3, 300)
    images = rng.uniform(60, 120, (300, 8, 8, 3)).astype(np.float32)
    images[np.arange(300), :, :, labels] += 90.0
    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Rescaling(1.0 / 255.0)(inputs)
    x = keras.layers.Conv2D(8, 3, activation="relu", padding="same")(x)
    # Max pooling: a few pixels can move the prediction (a black-box attack has a chance).
    x = keras.layers.GlobalMaxPooling2D()(x)
    model = keras.Model(inputs, keras.layers.Dense(3)(x))
    model.compile(keras.optimizers.Adam(0.05),
                  keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(images, labels, epochs=30, batch_size=50, verbose=0)
    accuracy = float(np.mean(model.predict(images, verbose=0).argmax(-1) == labels))
    assert accuracy > 0.95, accuracy
    return model, images[:60], labels[:60]


def test_fgsm_closed_form_on_a_linear_model():
    model, w = _linear()
    rng = np.random.RandomState(1)
    x = rng.uniform(40, 215, (6, 4, 4, 1)).astype(np.float32)
    y = rng.randint(0, 3, 6)
    eps = 0.031
    # d CE / d x = W (softmax - onehot) / 255 per pixel: the step is eps * 255 * its sign.
    logits = x.reshape(6, 16) / 255.0 @ w
    p = np.exp(logits - logits.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    grad = (p - np.eye(3)[y]) @ w.T
    want = np.clip(x + eps * 255.0 * np.sign(grad).reshape(x.shape), 0, 255)
    np.testing.assert_allclose(adversarial.fgsm(model, x, y, eps=eps), want, rtol=1e-6, atol=1e-4)
    # Targeted: down the target's loss.
    t = adversarial.random_targets(y, 3, seed=2)
    assert np.all(t != y)
    grad_t = (p - np.eye(3)[t]) @ w.T
    want_t = np.clip(x - eps * 255.0 * np.sign(grad_t).reshape(x.shape), 0, 255)
    np.testing.assert_allclose(adversarial.fgsm(model, x, y, eps=eps, targets=t), want_t,
                               rtol=1e-6, atol=1e-4)


def test_pgd_stays_in_the_ball_and_the_pixel_range(trained):
    model, images, labels = trained
    eps = 0.031
    adv = adversarial.pgd(model, images, labels, eps=eps, step=0.01, iterations=7)
    assert np.abs(adv - images).max() <= eps * 255 + 1e-3
    assert adv.min() >= 0 and adv.max() <= 255
    edge = images.copy()
    edge[:, 0, 0, :] = 255.0  # pixels at the range's edge stay in it
    adv = adversarial.pgd(model, edge, labels, eps=eps, step=0.01, iterations=3)
    assert adv.max() <= 255 and np.abs(adv - edge).max() <= eps * 255 + 1e-3


def test_white_box_attacks_succeed_far_above_chance(trained):
    model, images, labels = trained
    targets = adversarial.random_targets(labels, 3, seed=0)
    rates = {
        "fgsm": adversarial.success_rate(
            model, images, adversarial.fgsm(model, images, labels, eps=0.3), labels),
        "pgd": adversarial.success_rate(
            model, images, adversarial.pgd(model, images, labels, eps=0.3, step=0.05,
                                           iterations=10, targets=targets), labels, targets),
        "cw": adversarial.success_rate(
            model, images, adversarial.cw_l2(model, images, labels, targets=targets,
                                             iterations=60, c=10.0, learning_rate=0.1),
            labels, targets),
    }
    # The baseline: random-sign noise of the same L-infinity size (0.3 of the range).
    rng = np.random.RandomState(0)
    noise = np.clip(images + 0.3 * 255 * rng.choice([-1.0, 1.0], images.shape), 0, 255)
    chance = adversarial.success_rate(model, images, noise.astype(np.float32), labels)
    assert all(rate > chance + 0.3 for rate in rates.values()), (rates, chance)
    assert rates["pgd"] > 0.9 and rates["cw"] > 0.9, rates


def test_cw_returns_the_image_when_it_fails():
    model, _ = _linear()
    x = np.full((2, 4, 4, 1), 128.0, np.float32)
    y = model.predict(x, verbose=0).argmax(-1)
    adv = adversarial.cw_l2(model, x, y, iterations=2, c=1e-6, learning_rate=1e-6)
    np.testing.assert_allclose(adv, x, atol=1e-3)


def test_black_box_attacks_succeed_far_above_chance(trained):
    model, images, labels = trained
    adv = adversarial.local_search(model, images, labels, rounds=20, candidates=32, per_round=4)
    changed = (np.abs(adv - images).sum(-1) > 0).sum((1, 2))
    assert changed.max() <= 20 * 4
    rate = adversarial.success_rate(model, images, adv, labels)
    assert rate > 0.5, rate
    adv = adversarial.one_pixel(model, images, labels, pixels=8, population=32, generations=10)
    assert ((np.abs(adv - images).sum(-1) > 0).sum((1, 2)) <= 8).all()
    noise = images.copy()  # the same budget at random pixels and colours: the baseline
    rng = np.random.RandomState(0)
    for i in range(len(noise)):
        noise[i, rng.randint(0, 8, 8), rng.randint(0, 8, 8)] = rng.uniform(0, 255, (8, 3))
    assert (adversarial.success_rate(model, images, adv, labels)
            > adversarial.success_rate(model, images, noise, labels) + 0.2)


def test_bad_input():
    model, _ = _linear()
    x = np.zeros((2, 4, 4, 1), np.float32)
    with pytest.raises(ValueError, match=r"`images` must be \[N, H, W, C\]"):
        adversarial.fgsm(model, x[0], [0, 1])
    with pytest.raises(ValueError, match="finite"):
        adversarial.fgsm(model, np.full_like(x, np.nan), [0, 1])
    with pytest.raises(ValueError, match="labels"):
        adversarial.fgsm(model, x, [0])
    with pytest.raises(ValueError, match="iterations"):
        adversarial.pgd(model, x, [0, 1], iterations=0)


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


def test_attack_succeeded_is_the_per_image_form_of_success_rate(trained):
    model, images, labels = trained
    targets = adversarial.random_targets(labels, 3, seed=4)
    adv = adversarial.fgsm(model, images, labels, eps=0.2, targets=targets)
    won = adversarial.attack_succeeded(model, images, adv, labels, targets)
    clean = adversarial.probabilities(model, images).argmax(-1)
    after = adversarial.probabilities(model, adv).argmax(-1)
    np.testing.assert_array_equal(won, (clean == labels) & (after == targets))  # by hand
    assert adversarial.success_rate(model, images, adv, labels, targets) == pytest.approx(
        won.sum() / (clean == labels).sum())
    r = adversarial.detection_error(np.zeros((60, 2)), np.ones((60, 2)), labels, 5, 5,
                                    repeats=2, per_image=True)
    assert len(r["per_image"]) == 2 and len(r["per_image"][0]["index"]) == 15
    assert not any(r["per_image"][0]["clean_wrong"]) and r["mean"] == 0.0
