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


# ---------------------------------------------------------------- difficulty knobs (hard data)


def test_default_config_is_the_original_look(examples):
    knobs = synthetic_parts.synthetic_config("default")
    again = synthetic_parts.make_examples(120, image_size=64, seed=3, **knobs)
    for k in examples:
        np.testing.assert_array_equal(examples[k], again[k])
    with pytest.raises(ValueError, match="`synthetic_config` must be one of"):
        synthetic_parts.synthetic_config("impossible")


def test_bad_difficulty_arguments():
    with pytest.raises(ValueError, match=r"`color_jitter` must lie in \[0, 1\]"):
        synthetic_parts.make_examples(2, color_jitter=-0.1)
    with pytest.raises(ValueError, match="`distractors` must be 1 or 2"):
        synthetic_parts.make_examples(2, distractors=3)


def test_pretraining_categories_are_none_of_the_evaluation_categories():
    """keras-icnn-pretrain's synthetic corpus: 30 body plans, each differing from every
    evaluation category (all 12) in colour or in part shapes; same parts, landmarks and
    balance; another image stream (image i is not an evaluation image recoloured)."""
    evaluation = synthetic_parts.category_specs(12)
    pre = synthetic_parts.category_specs(30, categories="pretraining")
    colour_gap = np.abs(pre["color"][:, None] - evaluation["color"][None]).mean(axis=(2, 3))
    same_shapes = (pre["exp"][:, None] == evaluation["exp"][None]).all(-1) & (
        pre["texture"][:, None] == evaluation["texture"][None]).all(-1)
    assert ((colour_gap > 20) | ~same_shapes).all()
    assert len({tuple(c.ravel()) for c in pre["color"]}) == 30
    ex = synthetic_parts.make_examples(60, 32, num_classes=30, categories="pretraining")
    np.testing.assert_array_equal(np.bincount(ex["label"]), np.full(30, 2))
    assert ex["landmarks"].shape == (60, 4, 2) and ex["part_masks"].any()
    first = synthetic_parts.make_examples(6, 32, num_classes=6)
    other = synthetic_parts.make_examples(6, 32, num_classes=6, categories="pretraining")
    assert not np.array_equal(first["bbox"], other["bbox"])
    assert synthetic_parts.category_names("pretraining")[0] == "pretraining_01"
    with pytest.raises(ValueError, match=r"\[1, 30\] \(pretraining categories\)"):
        synthetic_parts.category_specs(31, categories="pretraining")
    with pytest.raises(ValueError, match="categories"):
        synthetic_parts.make_examples(2, 32, categories="other")
