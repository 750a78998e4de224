"""Interpretability metrics: plain functions over arrays, plus model-level wrappers
(``stats`` and ``streaming`` are imported on first use)."""

from keras_icnn.metrics.interpretability import (
    filter_thresholds, l1_density, location_instability, location_instability_multi,
    mutual_information_ceiling, mutual_information_matrix, mutual_information_score,
    part_interpretability, part_ious, region_counts, upsample_maps)
from keras_icnn.metrics.network_dissection import (
    category_part_concepts, dissection, dissection_counts, dissection_from_counts, iou_ceiling)
from keras_icnn.metrics.faithfulness import deletion, insertion, mu_fidelity
from keras_icnn.metrics.localization import (
    activation_map_localization, cam_localization, class_activation_maps, filter_correlation,
    gradient_map_localization, gradient_maps, inter_class_correlation, redundancy_ratio)
from keras_icnn.metrics.model_eval import (
    collect_responses, default_layer, evaluate_interpretability, filter_classes_by_activation,
    part_contributions)
from keras_icnn.receptive_field import AxisField, ReceptiveField, receptive_field
from keras_icnn import _lazy

__getattr__, __dir__ = _lazy.submodules(__name__, ("stats", "streaming"))

__all__ = [
    "filter_thresholds", "l1_density", "location_instability", "location_instability_multi",
    "mutual_information_ceiling", "mutual_information_matrix", "mutual_information_score",
    "part_interpretability", "part_ious", "region_counts", "upsample_maps", "collect_responses",
    "default_layer",
    "evaluate_interpretability", "filter_classes_by_activation", "AxisField", "ReceptiveField",
    "receptive_field", "activation_map_localization", "cam_localization",
    "class_activation_maps", "filter_correlation", "gradient_map_localization", "gradient_maps",
    "inter_class_correlation", "redundancy_ratio", "part_contributions",
    "category_part_concepts", "dissection", "dissection_counts", "dissection_from_counts",
    "iou_ceiling", "deletion", "insertion", "mu_fidelity",
]
