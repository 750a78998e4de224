"""The second evaluation set: bird scenes in a CUB-200-2011 directory."""
import numpy as np
import pytest

from keras_icnn.data import layouts, sources, synthetic_birds

EYE = 0.05 * 255  # the eye's colour, before the pixel noise (std 5)


@pytest.fixture(scope="module")
def scenes():
    return synthetic_birds.make_bird_scenes(36, num_species=6, size=96, seed=3)


def test_each_scene_is_a_function_of_seed_and_index(scenes):
    part = synthetic_birds.make_bird_scenes(5, num_species=6, size=96, seed=3, start=30)
    for key in scenes:
        np.testing.assert_array_equal(part[key], scenes[key][30:35])
    other = synthetic_birds.make_bird_scenes(5, num_species=6, size=96, seed=4, start=30)
    assert not np.array_equal(other["image"], part["image"])


def test_labels_are_balanced(scenes):
    np.testing.assert_array_equal(np.bincount(scenes["label"], minlength=6), [6] * 6)


def test_landmarks_sit_on_their_parts(scenes):
    pid = {n: k for k, n in enumerate(layouts.CUB_PART_LIST)}
    n = len(scenes["label"])
    for eye in ("left eye", "right eye"):
        k = pid[eye]
        vis = scenes["visible"][:, k]
        x, y = scenes["points"][vis, k].T
        pixels = scenes["image"][np.flatnonzero(vis), y.astype(int), x.astype(int)]
        assert (np.abs(pixels.astype(float) - EYE) < 25).all(), eye  # a dark eye pixel
    # exactly one eye visible unless a leaf hides it; both legs or none
    assert (scenes["visible"][:, pid["left eye"]] & scenes["visible"][:, pid["right eye"]]).sum() == 0
    # every visible point lies in the frame and (but for the tail tip's margin) in the box
    x0, y0, w, h = scenes["box"].T
    px, py = scenes["points"][..., 0], scenes["points"][..., 1]
    vis = scenes["visible"]
    assert ((px[vis] >= 0) & (px[vis] < 96) & (py[vis] >= 0) & (py[vis] < 96)).all()
    inside = (px >= x0[:, None] - 1) & (px <= (x0 + w)[:, None] + 1) \
        & (py >= y0[:, None] - 1) & (py <= (y0 + h)[:, None] + 1)
    assert inside[vis].mean() > 0.97
    assert n == 36


def test_pair_members_differ_in_parts_not_body():
    spec = synthetic_birds.species_specs(6)
    np.testing.assert_array_equal(spec["body"][0], spec["body"][1])
    assert spec["beak_length"][1] > 1.4 * spec["beak_length"][0]
    assert spec["tail_length"][1] > 1.3 * spec["tail_length"][0]
    with pytest.raises(ValueError, match="num_species"):
        synthetic_birds.species_specs(1)


def test_cub_directory_reads_back(tmp_path):
    root = synthetic_birds.write_cub_birds(str(tmp_path / "birds"), num_species=3,
                                           per_species=10, size=64, seed=1, train_fraction=0.6)
    source = sources.open_source("cub", root, 32, num_val=3, seed=0)
    assert source.num_classes == 3 and source.has_parts
    assert (source.size("train"), source.size("validation"), source.size("test")) == (15, 3, 12)
    test = source.materialize("test")
    np.testing.assert_array_equal(np.bincount(test["label"]), [4, 4, 4])
    assert test["part_masks"].any(axis=(1, 2)).mean() > 0.5
    with pytest.raises(ValueError, match="per_species"):
        synthetic_birds.write_cub_birds(str(tmp_path / "x"), per_species=1)


def _look(spec):
    keys = ("body", "wing", "crown", "breast", "beak", "aspect", "head", "beak_length",
            "tail_length", "tail_fan", "bars", "crest")
    return np.concatenate([np.asarray(spec[k], float).reshape(len(spec["head"]), -1)
                           for k in keys], 1)


def test_pretraining_species_are_none_of_the_evaluation_species(tmp_path):
    """A pretraining corpus (keras-icnn-pretrain) shares no species with any evaluation
    directory: every pretraining look is farther from every evaluation look (any species
    count) than half the closest two evaluation species are from each other."""
    pre = _look(synthetic_birds.species_specs(synthetic_birds.MAX_PRETRAINING_SPECIES,
                                              "pretraining"))
    evaluation = _look(synthetic_birds.species_specs(synthetic_birds.MAX_SPECIES))
    within = np.linalg.norm(evaluation[:, None] - evaluation[None], axis=-1)
    closest_pair = within[np.triu_indices(len(evaluation), 1)].min()
    for n in range(2, synthetic_birds.MAX_SPECIES + 1):
        looks = _look(synthetic_birds.species_specs(n))
        gap = np.linalg.norm(pre[:, None] - looks[None], axis=-1).min()
        assert gap > 0.3 and gap > 0.4 * closest_pair, (n, gap, closest_pair)
    # The same rendering otherwise: scenes and a CUB directory with the pretraining names.
    scenes = synthetic_birds.make_bird_scenes(4, num_species=30, size=64,
                                              species_set="pretraining")
    assert scenes["image"].shape == (4, 64, 64, 3)
    root = synthetic_birds.write_cub_birds(str(tmp_path / "pre"), num_species=3, per_species=2,
                                           size=48, species_set="pretraining")
    names = (tmp_path / "pre" / "classes.txt").read_text().split()
    assert root and names[1] == "001.pretraining_species_01"
    with pytest.raises(ValueError, match="species_set"):
        synthetic_birds.species_specs(6, "other")
    with pytest.raises(ValueError, match=r"\[2, 12\] for the evaluation"):
        synthetic_birds.species_specs(13)
