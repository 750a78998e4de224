"""Rendering the synthetic part data (data/synthetic_render.py): difficulty knobs."""
import numpy as np
import pytest

from keras_icnn.data import synthetic_parts, synthetic_render


@pytest.mark.parametrize("similarity,n_shared", [(0.0, 0), (0.3, 1), (0.5, 2), (0.75, 3), (1.0, 3)])
def test_similarity_shares_parts_between_siblings(similarity, n_shared):
    base = synthetic_parts.category_specs(10)
    specs = synthetic_parts.category_specs(10, similarity)
    t = np.clip(4 * similarity - 3, 0, 1)  # above 0.75 the last part's colour moves too
    for c in range(10):
        lead = c - c % 2
        shared = specs["shared_parts"][c]
        assert shared.sum() == (n_shared if c % 2 else 0)
        for k in range(4):
            source = lead if shared[k] else c
            colour = base["color"][source, k]
            if c % 2 and not shared[k]:
                colour = (1 - t) * colour + t * base["color"][lead, k]
            np.testing.assert_allclose(specs["color"][c, k], colour, rtol=1e-6)
            assert specs["texture"][c, k] == base["texture"][source, k]
            assert specs["exp"][c, k] == base["exp"][source, k]
        # Proportions: `similarity` of the way from its own to its sibling's.
        expect = (1 - similarity) * base["torso_a"][c] + similarity * base["torso_a"][lead]
        np.testing.assert_allclose(specs["torso_a"][c], expect, rtol=1e-12)
        if c % 2:  # at least one part always differs in texture
            assert not np.array_equal(specs["texture"][c], specs["texture"][lead])
    # With an odd count the last category has no sibling and keeps its own look.
    odd = synthetic_parts.category_specs(5, 0.75)
    assert not odd["shared_parts"][4].any()
    np.testing.assert_array_equal(synthetic_render.sibling(np.arange(5), 5), [1, 0, 3, 2, 4])
    with pytest.raises(ValueError, match=r"`similarity` must lie in \[0, 1\]"):
        synthetic_parts.category_specs(10, 1.5)


def test_color_jitter_is_a_per_image_channel_gain():
    common = dict(n=24, num_classes=10, seed=5, occlusion=0.0)
    plain = synthetic_parts.make_examples(**common)
    cast = synthetic_parts.make_examples(color_jitter=0.3, **common)
    for k in ("label", "part_masks", "landmarks", "object_mask"):
        np.testing.assert_array_equal(plain[k], cast[k])
    key = [5, synthetic_parts.SPLITS.index("train"), 0, 64, 10]
    checked = 0
    for i in range(24):
        r = np.random.default_rng(key + [i]).random(64)
        gain = 1 + 0.3 * (2 * r[53:56] - 1)  # the per-channel cast of image i
        colour = synthetic_parts.category_specs(10)["color"][plain["label"][i], 1]
        gain = np.minimum(colour * gain, 255) / colour  # the cast colour is clipped to 255
        torso = plain["part_masks"][i, ..., 1]
        a = plain["image"][i][torso].astype(float)
        b = cast["image"][i][torso].astype(float)
        ok = (a > 40).all(1) & (a * gain < 235).all(1)  # away from the noise floor and 255
        if ok.sum() < 20:
            continue
        checked += 1
        ratio = np.median(b[ok] / a[ok], axis=0)
        np.testing.assert_allclose(ratio, gain, rtol=0.05)
        # The background is not cast.
        bg = ~plain["object_mask"][i]
        assert np.mean(plain["image"][i][bg] == cast["image"][i][bg]) > 0.6
    assert checked >= 8


def test_second_distractor_is_clutter_behind_the_creature():
    common = dict(n=40, num_classes=10, seed=2)
    one = synthetic_parts.make_examples(**common)
    two = synthetic_parts.make_examples(distractors=2, **common)
    for k in ("label", "part_masks", "landmarks", "object_mask", "bbox"):
        np.testing.assert_array_equal(one[k], two[k])
    changed = (one["image"] != two["image"]).any(-1)
    assert changed.any(axis=(1, 2)).mean() > 0.4  # most images got a second part
    # It is drawn before the creature and the occluder: the visible parts are untouched.
    assert not (changed & two["part_masks"].any(-1)).any()


def test_variants_recolour_a_category_per_image():
    specs = synthetic_parts.category_specs(10, 1.0, variants=2)
    assert specs["color_variants"].shape == (10, 2, 4, 3)
    np.testing.assert_array_equal(specs["color_variants"][:, 0], specs["color"])
    palette = synthetic_parts._PALETTE
    for c in (0, 2):  # leads keep their own colours: palette shifted by 7 per variant
        for k in range(4):
            np.testing.assert_array_equal(specs["color_variants"][c, 1, k],
                                          palette[(c * 5 + k * 3 + 7) % 12])
    # Siblings share every variant's colours at similarity 1.
    np.testing.assert_allclose(specs["color_variants"][1], specs["color_variants"][0])
    ex = synthetic_parts.make_examples(40, num_classes=10, seed=0, category=4, occlusion=0.0,
                                       variants=2)
    torso = [np.median(img[m[..., 1]], axis=0) for img, m in zip(ex["image"], ex["part_masks"])
             if m[..., 1].sum() > 30]
    # Two colourings: the median torso colours fall in two clusters far apart.
    first = np.array([np.abs(t - torso[0]).max() < 30 for t in torso])
    assert 0.2 < first.mean() < 0.8
    with pytest.raises(ValueError, match=r"`variants` must lie in \[1, 4\]"):
        synthetic_parts.make_examples(2, variants=5)
