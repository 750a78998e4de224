"""One table of bad arguments to the public API (issue 31, part 3).

A row per public callable and argument: integers given floats, sizes given 0 or
negatives, arrays given NaN or the wrong rank, names that do not exist, choices
that are not among the choices. Each row asserts the error type and that the
message names the argument (and, where the row says, what was received).
Every call fails before any heavy work: the whole table takes seconds.
"""
import re

import numpy as np
import pytest

import keras

from keras_icnn import adversarial, distribute, explain, export, layers, losses, metrics, models
from keras_icnn import templates, viz
from keras_icnn.data import pipeline, sources, synthetic_parts
from keras_icnn.metrics import stats

RNG = np.random.RandomState(0)
MAPS = RNG.uniform(0, 1, (4, 6, 6, 3)).astype("float32")          # [N, h, w, K]
NAN_MAPS = MAPS.copy()
NAN_MAPS[1, 2, 2, 0] = np.nan
MASKS = RNG.uniform(0, 1, (4, 12, 12, 2)) > 0.5                    # [N, H, W, P]
LABELS = np.array([0, 1, 2, 0])
IMAGES = RNG.uniform(0, 255, (4, 32, 32, 3)).astype("float32")
NAN_IMAGES = IMAGES.copy()
NAN_IMAGES[0, 0, 0, 0] = np.nan
FEATURES = RNG.uniform(0, 1, (4, 5)).astype("float32")


@pytest.fixture(scope="module")
def model():
    keras.utils.set_random_seed(0)
    return models.vgg_backbone((32, 32, 3), 3, width=4, dense_units=8)


def _examples():
    return synthetic_parts.make_examples(6, image_size=32, num_classes=3, seed=0)


# (id, call taking the tiny model, error type, regex the message must match)
CASES = [
    # layers
    ("InterpretableConv.filters float", lambda m: layers.InterpretableConv(2.5, num_classes=3), TypeError, "filters"),
    ("InterpretableConv.filters 0", lambda m: layers.InterpretableConv(0), ValueError, "filters"),
    ("InterpretableConv.kernel_size 0", lambda m: layers.InterpretableConv(4, kernel_size=0),
     ValueError, "kernel_size"),
    ("InterpretableConv.num_classes 0", lambda m: layers.InterpretableConv(4, num_classes=0),
     ValueError, "num_classes"),
    ("InterpretableConv.num_classes float",
     lambda m: layers.InterpretableConv(4, num_classes=2.5), TypeError, "num_classes"),
    ("InterpretableConv.gradient", lambda m: layers.InterpretableConv(4, num_classes=3, gradient="exactly"),
     ValueError, "gradient"),
    ("InterpretableConv rank", lambda m: layers.InterpretableConv(4, num_classes=3)(
        np.zeros((2, 8, 3), "float32")), ValueError, "rank|4D|\\[N, H, W, C\\]"),
    ("InterpretableMask.num_classes 0", lambda m: layers.InterpretableMask(num_classes=0),
     ValueError, "num_classes"),
    ("ClassSpecificGate.num_classes 0", lambda m: layers.ClassSpecificGate(0), ValueError,
     "num_classes"),
    ("ClassSpecificGate.num_classes float", lambda m: layers.ClassSpecificGate(2.5), TypeError,
     "num_classes"),
    ("ClassSpecificGate.density > 1", lambda m: layers.ClassSpecificGate(4, density=1.5),
     ValueError, "density"),
    ("ClassSpecificGate.sparsity", lambda m: layers.ClassSpecificGate(4, density=0.5, sparsity="l3"),
     ValueError, "sparsity"),
    ("NormLayer.momentum", lambda m: layers.NormLayer(momentum=1.5), ValueError, "momentum"),
    ("NormLayer.epsilon", lambda m: layers.NormLayer(epsilon=-1.0), ValueError, "epsilon"),
    ("NormLayer.alpha_floor", lambda m: layers.NormLayer(alpha_floor=-0.1), ValueError,
     "alpha_floor"),
    ("PartMask.beta 0", lambda m: layers.PartMask(beta=0.0), ValueError, "beta"),
    ("PartMask.mu", lambda m: layers.PartMask(mu="middle"), ValueError, "mu"),
    ("PartMask rank", lambda m: layers.PartMask()(np.zeros((2, 8, 3), "float32")), ValueError,
     "rank|4D|\\[N, H, W, C\\]"),
    ("ImagenetPreprocess.mode", lambda m: layers.ImagenetPreprocess(mode="imagenet"),
     ValueError, "mode"),
    # templates
    ("template_matrix.h 0", lambda m: templates.template_matrix(0, 4), ValueError, "h"),
    ("template_matrix.w float", lambda m: templates.template_matrix(4, 2.5), TypeError, "w"),
    ("template_matrix.beta", lambda m: templates.template_matrix(4, 4, beta=0.0), ValueError,
     "beta"),
    ("template_matrix.tau", lambda m: templates.template_matrix(4, 4, tau=-1.0), ValueError,
     "tau"),
    ("location_mask.h", lambda m: templates.location_mask(0, 4, (0, 0)), ValueError, "h"),
    ("location_mask.mu", lambda m: templates.location_mask(4, 4, (7, 0)), ValueError, "mu"),
    ("uniform_log_priors.w", lambda m: templates.uniform_log_priors(4, 0), ValueError, "w"),
    ("uniform_log_priors.alpha", lambda m: templates.uniform_log_priors(4, 4, alpha=1.5),
     ValueError, "alpha"),
    ("l1_distance_matrix.h", lambda m: templates.l1_distance_matrix(-1, 3), ValueError, "h"),
    ("default_tau.w", lambda m: templates.default_tau(3, 0), ValueError, "w"),
    # losses
    ("mutual_information_loss rank", lambda m: losses.mutual_information_loss(MAPS[0]),
     ValueError, "x"),
    ("mutual_information_loss.beta", lambda m: losses.mutual_information_loss(MAPS, beta=0.0),
     ValueError, "beta"),
    ("approximate_mutual_information_loss rank",
     lambda m: losses.approximate_mutual_information_loss(MAPS[0], LABELS[:1], np.zeros(3)),
     ValueError, "x"),
    ("approximate_mutual_information_loss.labels length",
     lambda m: losses.approximate_mutual_information_loss(MAPS, LABELS[:3], np.zeros(3)),
     ValueError, "labels"),
    ("approximate_mutual_information_loss.target_classes length",
     lambda m: losses.approximate_mutual_information_loss(MAPS, LABELS, np.zeros(2)),
     ValueError, "target_classes"),
    ("filter_statistics rank", lambda m: losses.filter_statistics(MAPS[0]), ValueError, "x"),
    ("template_scores rank", lambda m: losses.template_scores(
        MAPS[0], templates.template_matrix(6, 6)), ValueError, "x"),
    ("target_templates.h", lambda m: losses.target_templates(
        np.ones(2, bool), np.zeros(2), np.zeros(2), 0, 4), ValueError, "h"),
    # metrics
    ("filter_thresholds rank", lambda m: metrics.filter_thresholds(MAPS[0]), ValueError,
     "activation_maps"),
    ("filter_thresholds.top_quantile 0",
     lambda m: metrics.filter_thresholds(MAPS, top_quantile=0.0), ValueError, "top_quantile"),
    ("filter_thresholds NaN", lambda m: metrics.filter_thresholds(NAN_MAPS), ValueError,
     "activation_maps"),
    ("l1_density rank", lambda m: metrics.l1_density(np.ones(3)), ValueError, "gate"),
    ("l1_density NaN", lambda m: metrics.l1_density(np.full((2, 3), np.nan)), ValueError, "gate"),
    ("location_instability.top_k", lambda m: metrics.location_instability(
        np.zeros((4, 3, 2)), np.zeros((4, 2, 2)), (32, 32), np.ones((4, 3)), top_k=0), ValueError,
     "top_k"),
    ("mutual_information_score.features rank",
     lambda m: metrics.mutual_information_score(np.ones(4), LABELS, 3), ValueError, "features"),
    ("mutual_information_score.labels count",
     lambda m: metrics.mutual_information_score(FEATURES, LABELS[:3], 3), ValueError, "labels"),
    ("mutual_information_score.num_classes",
     lambda m: metrics.mutual_information_score(FEATURES, LABELS, 0), ValueError, "num_classes"),
    ("mutual_information_score NaN", lambda m: metrics.mutual_information_score(
        np.full((4, 5), np.nan), LABELS, 3), ValueError, "features"),
    ("mutual_information_ceiling.num_classes",
     lambda m: metrics.mutual_information_ceiling(LABELS, 1.5), TypeError, "num_classes"),
    ("part_interpretability.part_masks shape",
     lambda m: metrics.part_interpretability(MAPS, MASKS[:3]), ValueError, "part_masks"),
    ("part_interpretability.iou_threshold",
     lambda m: metrics.part_interpretability(MAPS, MASKS, iou_threshold=-0.1), ValueError,
     "iou_threshold"),
    ("part_interpretability NaN", lambda m: metrics.part_interpretability(NAN_MAPS, MASKS),
     ValueError, "activation_maps"),
    ("upsample_maps.size", lambda m: metrics.upsample_maps(MAPS, 0), ValueError, "size"),
    ("redundancy_ratio.s", lambda m: metrics.redundancy_ratio(np.eye(3), s=1.5), ValueError,
     "s"),
    ("filter_correlation rank", lambda m: metrics.filter_correlation(np.ones((3, 3))),
     ValueError, "kernel"),
    ("class_activation_maps.dense_kernel", lambda m: metrics.class_activation_maps(
        MAPS, np.ones((5, 3)), LABELS), ValueError, "dense_kernel"),
    ("gradient_maps.layer_name", lambda m: metrics.gradient_maps(m, "no_such_layer", IMAGES),
     ValueError, "no_such_layer"),
    ("receptive_field.layer_name", lambda m: metrics.receptive_field(m, "no_such_layer"),
     ValueError, "no_such_layer"),
    ("collect_responses.batch_size", lambda m: metrics.collect_responses(
        m, "top_conv", _examples(), batch_size=0), ValueError, "batch_size"),
    ("t_interval.values", lambda m: stats.t_interval([1.0]), ValueError, "values"),
    ("t_interval.confidence", lambda m: stats.t_interval([1.0, 2.0], confidence=1.5),
     ValueError, "confidence"),
    ("wilson_interval.n", lambda m: stats.wilson_interval(3, 0), ValueError, "n"),
    ("wilson_interval.successes", lambda m: stats.wilson_interval(6, 5), ValueError,
     "successes"),
    ("bootstrap_interval.n", lambda m: stats.bootstrap_interval(np.mean, 0), ValueError, "n"),
    ("bootstrap_interval.repeats", lambda m: stats.bootstrap_interval(np.mean, 5, repeats=0),
     ValueError, "repeats"),
    ("mcnemar_exact lengths", lambda m: stats.mcnemar_exact([True, False], [True]), ValueError,
     "a|b"),
    # adversarial
    ("fgsm.eps", lambda m: adversarial.fgsm(m, IMAGES, LABELS, eps=-0.1), ValueError, "eps"),
    ("fgsm.labels", lambda m: adversarial.fgsm(m, IMAGES, LABELS[:3]), ValueError, "labels"),
    ("fgsm.images NaN", lambda m: adversarial.fgsm(m, NAN_IMAGES, LABELS), ValueError, "images"),
    ("pgd.iterations", lambda m: adversarial.pgd(m, IMAGES, LABELS, iterations=0), ValueError,
     "iterations"),
    ("pgd.step", lambda m: adversarial.pgd(m, IMAGES, LABELS, step=-1.0), ValueError, "step"),
    ("cw_l2.iterations", lambda m: adversarial.cw_l2(m, IMAGES, LABELS, iterations=0),
     ValueError, "iterations"),
    ("cw_l2.c", lambda m: adversarial.cw_l2(m, IMAGES, LABELS, c=-1.0), ValueError, "c"),
    ("one_pixel.pixels", lambda m: adversarial.one_pixel(m, IMAGES, LABELS, pixels=0),
     ValueError, "pixels"),
    ("local_search.rounds", lambda m: adversarial.local_search(m, IMAGES, LABELS, rounds=0),
     ValueError, "rounds"),
    ("random_targets.num_classes", lambda m: adversarial.random_targets(LABELS, 1), ValueError,
     "num_classes"),
    ("per_class_split.train_per_class",
     lambda m: adversarial.per_class_split(LABELS, 0, 1), ValueError, "train_per_class"),
    ("detection_error.repeats", lambda m: adversarial.detection_error(
        FEATURES, FEATURES, LABELS, 1, 1, repeats=0), ValueError, "repeats"),
    ("conv_features.where", lambda m: adversarial.conv_features(m, IMAGES, where="everywhere"),
     ValueError, "where"),
    ("feature_layers.where", lambda m: adversarial.feature_layers(m, where="everywhere"),
     ValueError, "where"),
    ("probabilities.batch_size", lambda m: adversarial.probabilities(m, IMAGES, batch_size=0),
     ValueError, "batch_size"),
    # models
    ("vgg_backbone.input_shape", lambda m: models.vgg_backbone((32, 32)), ValueError,
     "input_shape"),
    ("vgg_backbone.num_classes", lambda m: models.vgg_backbone((32, 32, 3), 0), ValueError,
     "num_classes"),
    ("vgg_backbone.width", lambda m: models.vgg_backbone((32, 32, 3), 3, width=0), ValueError,
     "width"),
    ("resnet20_backbone.blocks_per_stage",
     lambda m: models.resnet20_backbone((32, 32, 3), 3, blocks_per_stage=0), ValueError,
     "blocks_per_stage"),
    ("alexnet_backbone.width", lambda m: models.alexnet_backbone((64, 64, 3), 3, width=2.5),
     TypeError, "width"),
    ("get_backbone.name", lambda m: models.get_backbone("lenet"), ValueError, "lenet"),
    ("make_interpretable.layer_name", lambda m: models.make_interpretable(m, "no_such_layer"),
     ValueError, "no_such_layer"),
    ("make_interpretable.num_classes",
     lambda m: models.make_interpretable(m, "top_conv", num_classes=0), ValueError,
     "num_classes"),
    ("make_csg.layer_name", lambda m: models.make_csg(m, "no_such_layer"), ValueError,
     "no_such_layer"),
    ("make_csg.density", lambda m: models.make_csg(m, "top_conv", density=1.5), ValueError,
     "density"),
    ("phase_table.epochs", lambda m: models.phase_table(-1), ValueError, "epochs"),
    ("phase_table.period", lambda m: models.phase_table(4, period=0), ValueError, "period"),
    ("phase_table.csg_epochs", lambda m: models.phase_table(4, period=2, csg_epochs=3),
     ValueError, "csg_epochs"),
    ("phase_for_epoch.epoch", lambda m: models.phase_for_epoch(-1), ValueError, "epoch"),
    ("CSGSchedule.warmup", lambda m: models.CSGSchedule(warmup=-1), ValueError, "warmup"),
    ("build_explainer.target_layer", lambda m: models.build_explainer(m, "no_such_layer"),
     ValueError, "no_such_layer"),
    ("guard.protect.model", lambda m: models.guard.protect(object()), TypeError, "model"),
    ("find_layer.name", lambda m: models.find_layer(m, "no_such_layer"), ValueError,
     "no_such_layer"),
    ("logits_model.logits_layer", lambda m: models.logits_model(m, "no_such_layer"),
     ValueError, "no_such_layer"),
    # explain
    ("explain.images rank", lambda m: explain.explain(m, IMAGES[0, 0]), ValueError, "images"),
    ("explain.images NaN", lambda m: explain.explain(m, NAN_IMAGES), ValueError, "images|NaN"),
    ("explain.target", lambda m: explain.explain(m, IMAGES, target=7), ValueError, "target"),
    ("explain.layer", lambda m: explain.explain(m, IMAGES, layer="no_such_layer"), ValueError,
     "no_such_layer"),
    ("explain.heatmaps", lambda m: explain.explain(m, IMAGES, heatmaps="every"), ValueError,
     "heatmaps"),
    ("explain.num_heatmaps", lambda m: explain.explain(m, IMAGES, num_heatmaps=0), ValueError,
     "num_heatmaps"),
    ("explain.batch_size", lambda m: explain.explain(m, IMAGES, batch_size=0), ValueError,
     "batch_size"),
    ("explain.interpolation", lambda m: explain.explain(m, IMAGES, interpolation="lanczos9"),
     ValueError, "interpolation"),
    ("grad_cam rank", lambda m: explain.grad_cam(MAPS[0], MAPS[0]), ValueError, "maps"),
    # export
    ("export_model.version", lambda m: export.export_model(m, "/tmp/x_audit", "m", version=0),
     ValueError, "version"),
    ("export_model.name", lambda m: export.export_model(m, "/tmp/x_audit", ""), ValueError,
     "name"),
    ("export_model.input_dtype", lambda m: export.export_model(
        m, "/tmp/x_audit", "m", input_dtype="int64"), ValueError, "input_dtype"),
    ("write_warmup.height", lambda m: export.write_warmup("/tmp/x_audit_w", "m", 0, 32,
                                                          "float32"), ValueError, "height"),
    # data
    ("make_examples.n float", lambda m: synthetic_parts.make_examples(2.5), TypeError, "n"),
    ("make_examples.n negative", lambda m: synthetic_parts.make_examples(-1), ValueError, "n"),
    ("make_examples.image_size", lambda m: synthetic_parts.make_examples(2, image_size=0),
     ValueError, "image_size"),
    ("make_examples.num_classes", lambda m: synthetic_parts.make_examples(2, num_classes=0),
     ValueError, "num_classes"),
    ("make_examples.split", lambda m: synthetic_parts.make_examples(2, split="dev"),
     ValueError, "split"),
    ("make_dataset.batch_size", lambda m: pipeline.make_dataset(_examples(), batch_size=0),
     ValueError, "batch_size"),
    ("validate_examples NaN", lambda m: pipeline.validate_examples(
        dict(_examples(), image=np.full((6, 32, 32, 3), np.nan, "float32"))), ValueError,
     "image"),
    ("read_cub.root", lambda m: sources.read_cub("/nonexistent_cub_root"), FileNotFoundError,
     "nonexistent_cub_root"),
    ("open_folder.data_dir", lambda m: sources.open_folder("/nonexistent_photos"),
     FileNotFoundError, "nonexistent_photos"),
    ("open_synthetic.num_train", lambda m: sources.open_synthetic(num_train=-1), ValueError,
     "num_train"),
    ("open_source.dataset", lambda m: sources.open_source("imagenet"), ValueError, "dataset"),
    # distribute
    ("get_strategy.name", lambda m: distribute.get_strategy("tpu"), ValueError, "tpu"),
    ("split_cpu.num_devices", lambda m: distribute.split_cpu(0), ValueError, "num_devices"),
    # viz
    ("matrix_heatmap rank", lambda m: viz.matrix_heatmap(np.ones(3), "x", "y", "t"), ValueError,
     "matrix"),
    ("overlay_mosaic.filters", lambda m: viz.overlay_mosaic(IMAGES, MAPS, [7]), ValueError,
     "filters"),
]


def test_every_bad_argument_gets_a_named_error(model):
    """The whole table in one test (a per-row test would pay the suite's per-test
    clean-up 126 times); every row that misbehaves is listed."""
    assert len({c[0] for c in CASES}) == len(CASES)
    wrong = []
    for name, call, kind, message in CASES:
        try:
            call(model)
        except Exception as err:  # noqa: BLE001  (the row says which type is right)
            if not isinstance(err, kind):
                wrong.append(f"{name}: {type(err).__name__} instead of {kind.__name__}: {err}")
            elif not re.search(message, str(err)):
                wrong.append(f"{name}: message does not match {message!r}: {err}")
        else:
            wrong.append(f"{name}: no error")
    assert not wrong, "\n".join(wrong)
