import socket

import numpy as np
import pytest
import tensorflow as tf

from keras_icnn.data import pipeline, synthetic_parts, synthetic_preview, synthetic_render


@pytest.fixture(scope="module")
def examples():
    return synthetic_parts.make_examples(120, image_size=64, seed=3)


def test_deterministic_and_pure_in_index(examples):
    again = synthetic_parts.make_examples(120, image_size=64, seed=3)
    for k in examples:
        np.testing.assert_array_equal(examples[k], again[k])
    tail = synthetic_parts.make_examples(20, image_size=64, seed=3, start=100)
    for k in examples:
        np.testing.assert_array_equal(examples[k][100:], tail[k])
    other = synthetic_parts.make_examples(20, image_size=64, seed=4)
    assert np.mean(other["image"] != examples["image"][:20]) > 0.5
    test_split = synthetic_parts.make_examples(20, image_size=64, seed=3, split="test")
    assert np.mean(test_split["image"] != examples["image"][:20]) > 0.5


def test_shapes_and_dtypes(examples):
    assert examples["image"].shape == (120, 64, 64, 3) and examples["image"].dtype == np.uint8
    assert examples["part_masks"].shape == (120, 64, 64, 4) and examples["part_masks"].dtype == bool
    assert examples["landmarks"].shape == (120, 4, 2)
    assert examples["object_mask"].shape == (120, 64, 64)
    assert examples["bbox"].shape == (120, 4)


def test_classes_balanced(examples):
    counts = np.bincount(examples["label"], minlength=6)
    np.testing.assert_array_equal(counts, np.full(6, 20))


def test_landmarks_inside_their_part_masks(examples):
    lm, masks = examples["landmarks"], examples["part_masks"]
    visible = np.isfinite(lm[..., 0])
    assert visible.mean() > 0.8  # most parts are visible
    for i, k in zip(*np.nonzero(visible)):
        x, y = lm[i, k]
        assert masks[i, int(y), int(x), k], (i, k)
    # A part hidden entirely has a NaN landmark.
    empty = ~masks.any(axis=(1, 2))
    assert not np.any(visible & empty)


def test_masks_inside_object_and_disjoint(examples):
    masks, obj = examples["part_masks"], examples["object_mask"]
    assert not np.any(masks.any(-1) & ~obj)
    assert masks.sum(-1).max() <= 1
    # The box encloses the object mask.
    for i in range(len(obj)):
        rows, cols = np.nonzero(obj[i])
        x0, y0, x1, y1 = examples["bbox"][i]
        assert cols.min() == x0 and rows.min() == y0 and cols.max() + 1 == x1 and rows.max() + 1 == y1


def test_object_scale_and_variation(examples):
    b = examples["bbox"]
    extent = np.maximum(b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]) / 64.0
    assert 0.25 < extent.min() and extent.max() <= 1.0
    assert extent.std() > 0.08  # scales vary


def test_categories_differ_in_part_appearance():
    a = synthetic_parts.make_examples(30, category=0, occlusion=0.0)
    b = synthetic_parts.make_examples(30, category=1, occlusion=0.0)
    head_a = a["image"][a["part_masks"][..., 0]].mean(0)
    head_b = b["image"][b["part_masks"][..., 0]].mean(0)
    assert np.abs(head_a - head_b).max() > 30


def test_negatives_and_single_category():
    neg = synthetic_parts.make_examples(10, negatives=True)
    assert np.all(neg["label"] == -1) and not neg["part_masks"].any()
    assert np.all(np.isnan(neg["landmarks"]))
    single = synthetic_parts.make_single_category_examples("cat", 10)
    np.testing.assert_array_equal(single["label"], [1, 0] * 5)
    assert single["object_mask"][0::2].any(axis=(1, 2)).all()
    assert not single["object_mask"][1::2].any()


def test_bad_arguments():
    with pytest.raises(ValueError, match="`split` must be one of"):
        synthetic_parts.make_examples(2, split="dev")
    with pytest.raises(ValueError, match=r"`num_classes` must lie in \[1, 12\]"):
        synthetic_parts.make_examples(2, num_classes=13)
    with pytest.raises(ValueError, match="Unknown category 'unicorn'"):
        synthetic_parts.make_single_category_examples("unicorn", 2)


def test_flip_keeps_landmarks_on_parts(examples):
    ex = {k: examples[k][:40] for k in examples}
    ds = tf.data.Dataset.from_tensor_slices(ex).map(pipeline.flip_example)
    flipped = {k: np.stack([e[k].numpy() for e in ds]) for k in ex}
    np.testing.assert_array_equal(flipped["image"], ex["image"][:, :, ::-1])
    visible = np.isfinite(flipped["landmarks"][..., 0])
    for i, k in zip(*np.nonzero(visible)):
        x, y = flipped["landmarks"][i, k]
        assert flipped["part_masks"][i, int(y), int(x), k]
    for i in range(40):
        rows, cols = np.nonzero(flipped["object_mask"][i])
        np.testing.assert_array_equal(flipped["bbox"][i],
                                      [cols.min(), rows.min(), cols.max() + 1, rows.max() + 1])


def test_training_pipeline_batches_and_flips(examples):
    ds = pipeline.make_dataset(examples, batch_size=32, training=True, seed=1)
    images, labels = next(iter(ds))
    assert images.shape == (32, 64, 64, 3) and labels.shape == (32,)
    ds_eval = pipeline.make_dataset(examples, batch_size=50, as_supervised=False)
    batch = next(iter(ds_eval))
    np.testing.assert_array_equal(batch["image"].numpy(), examples["image"][:50])


def test_validate_examples_errors(examples):
    bad = dict(examples, image=examples["image"].astype(np.float32))
    bad["image"][5, 0, 0, 0] = np.nan
    with pytest.raises(ValueError, match="image 5 contains NaN or Inf"):
        pipeline.validate_examples(bad, 6)
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 4\). Received: min=0, max=5"):
        pipeline.validate_examples(examples, 4)
    with pytest.raises(ValueError, match=r"`image` must have shape \[N, H, W, 3\]"):
        pipeline.validate_examples({"image": np.zeros((2, 8, 8)), "label": np.zeros(2, int)})


def test_tfds_build_and_load_offline(tmp_path, monkeypatch):
    def no_network(*args, **kwargs):
        raise OSError("network access attempted in an offline test")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    monkeypatch.setattr(socket, "create_connection", no_network)
    import tensorflow_datasets as tfds

    from keras_icnn.data import tfds_builder

    builder = tfds_builder.build("tiny_64", str(tmp_path))
    assert builder.info.splits["train"].num_examples == 96
    ds = tfds.load("synthetic_parts/tiny_64", split="test", data_dir=str(tmp_path), download=False)
    got = sorted((ex["label"].numpy(), ex["image"].numpy().tobytes(),
                  ex["part_masks"].numpy().tobytes()) for ex in ds)
    ref = synthetic_parts.make_examples(48, split="test")
    want = sorted((ref["label"][i], ref["image"][i].tobytes(), ref["part_masks"][i].tobytes())
                  for i in range(48))
    assert [g[0] for g in got] == [w[0] for w in want]
    assert [g[1:] for g in got] == [w[1:] for w in want]


def test_preview_writes_png_into_a_new_directory_without_choosing_a_backend(tmp_path):
    import matplotlib

    backend = matplotlib.get_backend()
    out = tmp_path / "not" / "yet" / "preview.png"  # `make preview` on a fresh clone
    synthetic_preview.main(["--preview", str(out), "--n", "4"])
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert matplotlib.get_backend() == backend


# ---------------------------------------------------------------- difficulty knobs (hard data)


def test_default_config_is_the_original_look(examples):
    knobs = synthetic_parts.synthetic_config("default")
    again = synthetic_parts.make_examples(120, image_size=64, seed=3, **knobs)
    for k in examples:
        np.testing.assert_array_equal(examples[k], again[k])
    with pytest.raises(ValueError, match="`synthetic_config` must be one of"):
        synthetic_parts.synthetic_config("impossible")


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


def test_bad_difficulty_arguments():
    with pytest.raises(ValueError, match=r"`color_jitter` must lie in \[0, 1\]"):
        synthetic_parts.make_examples(2, color_jitter=-0.1)
    with pytest.raises(ValueError, match="`distractors` must be 1 or 2"):
        synthetic_parts.make_examples(2, distractors=3)


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
