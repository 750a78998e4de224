"""Streamed filter metrics equal the in-memory ones (issue 13: evaluation streams)."""
import keras
import numpy as np
import pytest

from keras_icnn import metrics
from keras_icnn.data import pipeline, synthetic_parts
from keras_icnn.evaluation.streaming import _quantile_from_top, stream_filter_metrics
from keras_icnn.models import vgg_backbone


def test_quantile_from_the_top_values_matches_numpy():
    rng = np.random.default_rng(0)
    values = rng.normal(size=(1000, 3))
    for q in (0.995, 0.7, 0.5):
        n = len(values)
        m = n - int(np.floor((n - 1) * q)) + 1
        top = -np.sort(-values, axis=0)[:m]
        np.testing.assert_allclose(_quantile_from_top(top, n, q), np.quantile(values, q, axis=0))


@pytest.mark.parametrize("task", ["multi", "single"])
def test_streamed_metrics_equal_in_memory_metrics(task):
    keras.utils.set_random_seed(0)
    if task == "single":
        ex = synthetic_parts.make_single_category_examples("cat", 40, image_size=32)
        classes = 2
    else:
        ex = synthetic_parts.make_examples(40, image_size=32, num_classes=3)
        classes = 3
    model = vgg_backbone((32, 32, 3), classes, width=4)
    layer = "top_conv"
    r = metrics.collect_responses(model, layer, ex, verbose=0)
    labels = ex["label"]
    single = task == "single"
    pos = labels == 1 if single else np.ones(len(labels), bool)
    kernel = np.random.default_rng(1).normal(size=(32, classes))

    stream = stream_filter_metrics(
        model, layer, lambda: pipeline.make_dataset(ex, 8, as_supervised=False), len(labels),
        classes, single=single, top_k=10, dense_kernel=kernel, verbose=0, atlas_images=3)
    # Pass 2 on pass 1's kept maps (the default budget) or running the model again: the same.
    rerun = stream_filter_metrics(
        model, layer, lambda: pipeline.make_dataset(ex, 8, as_supervised=False), len(labels),
        classes, single=single, top_k=10, dense_kernel=kernel, verbose=0, atlas_images=3,
        maps_budget=0)
    np.testing.assert_array_equal(rerun["p"], stream["p"])
    np.testing.assert_array_equal(rerun["dissection"]["iou"], stream["dissection"]["iou"])
    # Running the model again runs it on the wanted images of each batch only: another batch
    # size, which may take another CPU kernel (on an AVX2-only AMD EPYC, 7 of 1536 values
    # moved by 1.5e-6 relative), hence a float tolerance on the maps; the thresholded
    # figures above and below stay exactly equal.
    np.testing.assert_allclose(rerun["atlas"]["maps"], stream["atlas"]["maps"], rtol=1e-5,
                               atol=1e-8)
    assert rerun["activmap"]["avg_iou"] == stream["activmap"]["avg_iou"]

    if single:
        li, _ = metrics.location_instability(r["positions"][pos], ex["landmarks"][pos], (32, 32),
                                             r["scores"][pos], 10)
        pi, p_f, _ = metrics.part_interpretability(r["maps"][pos], ex["part_masks"][pos])
    else:
        li, _, _ = metrics.location_instability_multi(r["positions"], ex["landmarks"], labels,
                                                      (32, 32), r["scores"], classes, 10)
        fc = metrics.filter_classes_by_activation(r["maps"], labels, classes)
        np.testing.assert_array_equal(stream["filter_classes"], fc)
        pi, p_f, _ = metrics.part_interpretability(r["maps"], ex["part_masks"], labels=labels,
                                                   filter_classes=fc)
    np.testing.assert_allclose(stream["location_instability"], li, rtol=1e-6)
    np.testing.assert_allclose(stream["p_f"], p_f)
    np.testing.assert_allclose(stream["part_interpretability"], pi)
    act = metrics.activation_map_localization(r["maps"][pos], ex["object_mask"][pos], labels[pos],
                                              classes)
    for key in ("avg_iou", "ap20", "ap30"):
        np.testing.assert_allclose(stream["activmap"][key], act[key], rtol=1e-6)
    cam = metrics.cam_localization(r["maps"][pos], kernel, ex["object_mask"][pos], labels[pos])
    np.testing.assert_allclose(stream["cam"]["avg_iou"], cam["avg_iou"], rtol=1e-6)
    np.testing.assert_allclose(stream["pooled"], r["maps"].mean(axis=(1, 2)), rtol=1e-5)
    # Network Dissection over the stream = the in-memory function on (category, part) concepts.
    concepts, _ = metrics.category_part_concepts(ex["part_masks"][pos], labels[pos], classes)
    dis = metrics.dissection(r["maps"][pos], concepts)
    for key in ("iou", "best_iou", "ceiling", "thresholds"):
        np.testing.assert_allclose(stream["dissection"][key], dis[key], rtol=1e-6, atol=1e-12)
    for key in ("unique_detectors", "detector_count"):
        assert stream["dissection"][key] == dis[key]
    assert stream["accuracy"] == float(np.mean(r["logits"].argmax(-1) == labels))
    assert len(stream["kept"]) == 40 and stream["kept"][3]["maps"].shape == (4, 4, 32)
    # Part consistency and stability (SPEC §12): the in-memory functions on the same peaks,
    # the noisy ones on the images plus the stream's seeded noise (drawn batch by batch).
    fc = stream["filter_classes"]
    rng = np.random.default_rng([0, 12])
    noisy = np.concatenate([ex["image"][a:a + 8] + rng.normal(0, metrics.parts.NOISE_STD,
                                                                ex["image"][a:a + 8].shape)
                            for a in range(0, 40, 8)]).astype(np.float32)
    noisy_positions = metrics.collect_responses(model, layer, dict(ex, image=noisy),
                                                verbose=0)["positions"]
    consistency, _, _ = metrics.part_consistency(r["positions"], ex["landmarks"], labels, fc,
                                                 (32, 32))
    stability, _ = metrics.part_stability(r["positions"], noisy_positions, ex["landmarks"],
                                          labels, fc, (32, 32))
    np.testing.assert_allclose(stream["part_consistency"], consistency)
    np.testing.assert_allclose(stream["part_stability"], stability)
    assert 0 < stability < 1  # the noise moves some peaks, not all


def test_streamed_metrics_without_parts_report_none_of_them():
    ex = synthetic_parts.make_examples(12, image_size=32, num_classes=3)
    model = vgg_backbone((32, 32, 3), 3, width=4)
    plain = {"image": ex["image"], "label": ex["label"]}
    out = stream_filter_metrics(model, "top_conv",
                                lambda: pipeline.make_dataset(plain, 5, as_supervised=False), 12,
                                3, verbose=0)
    assert "part_interpretability" not in out and "location_instability" not in out
    assert "part_consistency" not in out and "part_stability" not in out
    assert "activmap" not in out and out["pooled"].shape == (12, 32)
    with pytest.raises(ValueError, match="held 12 images, expected num_examples=13"):
        stream_filter_metrics(model, "top_conv",
                              lambda: pipeline.make_dataset(plain, 5, as_supervised=False), 13,
                              3, verbose=0)
    with pytest.raises(ValueError, match="held at least 12 images, expected num_examples=11"):
        stream_filter_metrics(model, "top_conv",
                              lambda: pipeline.make_dataset(plain, 5, as_supervised=False), 11,
                              3, verbose=0)


def test_peak_responses_equal_collect_responses():
    from keras_icnn.evaluation.streaming import peak_responses

    ex = synthetic_parts.make_examples(10, image_size=32, num_classes=3)
    model = vgg_backbone((32, 32, 3), 3, width=4)
    r = metrics.collect_responses(model, "top_conv", ex, verbose=0)
    positions, scores = peak_responses(model, "top_conv")(ex["image"])
    np.testing.assert_array_equal(positions, r["positions"])
    np.testing.assert_allclose(scores, r["scores"], rtol=1e-6)


@pytest.mark.parametrize("masks", [True, False], ids=["masks", "images-only"])
def test_the_atlas_kept_in_pass_2_is_each_filters_top_images_and_maps(masks):
    """Issue 45: the atlas (each filter's top images by peak, their maps) is collected during
    the stream's second pass, not by a third read: checked against the in-memory responses."""
    import tensorflow as tf

    keras.utils.set_random_seed(0)
    ex = synthetic_parts.make_examples(24, image_size=32, num_classes=3, seed=2)
    if not masks:
        ex = {k: ex[k] for k in ("image", "label")}
    model = vgg_backbone((32, 32, 3), 3, width=4)
    r = metrics.collect_responses(model, "top_conv", ex, verbose=0)
    stream = stream_filter_metrics(
        model, "top_conv", lambda: pipeline.make_dataset(ex, 5, as_supervised=False), 24, 3,
        verbose=0, atlas_images=3, atlas_size=16)
    atlas = stream["atlas"]
    want_top = np.argsort(-r["scores"], axis=0, kind="stable")[:3]  # [3, F]
    np.testing.assert_array_equal(atlas["top"], want_top)
    f = np.arange(want_top.shape[1])
    # atlas["maps"][k, f] is filter f's map on its k-th top image: [3, F, h, w].
    np.testing.assert_allclose(atlas["maps"], r["maps"][want_top, :, :, f[None, :]], rtol=1e-5,
                               atol=1e-6)
    assert sorted(atlas["images"]) == sorted(set(want_top.ravel().tolist()))
    for i, small in atlas["images"].items():
        want = tf.image.resize(ex["image"][i][None].astype(np.float32), (16, 16),
                               method="area").numpy()[0]
        np.testing.assert_allclose(small.astype(np.float32), want, rtol=2e-3, atol=0.5)
    assert tuple(atlas["image_size"]) == (32, 32)
