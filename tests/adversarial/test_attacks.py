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
