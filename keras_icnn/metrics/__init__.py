"""Interpretability metrics: plain functions over arrays (``stats`` is imported on first use).
The model-level wrappers (running a model to get a metric's inputs) live in
:mod:`keras_icnn.evaluation` and are re-exported here under their old names."""

from keras_icnn.metrics.interpretability import (
    filter_thresholds, l1_density, location_instability, location_instability_multi,
    part_interpretability, part_ious, region_counts, upsample_maps)
from keras_icnn.metrics.mutual_information import (
    mutual_information_ceiling, mutual_information_matrix, mutual_information_score)
from keras_icnn.metrics.parts import PartCounts, part_consistency, part_coverage, part_stability
from keras_icnn.metrics.network_dissection import (
    category_part_concepts, dissection, dissection_counts, dissection_counts_from_parts,
    dissection_from_counts, iou_ceiling)
from keras_icnn.evaluation.faithfulness import deletion, insertion, mu_fidelity
from keras_icnn.metrics.localization import (
    activation_map_localization, cam_localization, class_activation_maps, filter_correlation,
    gradient_map_localization, inter_class_correlation, redundancy_ratio)
from keras_icnn.evaluation.gradient_maps import gradient_maps
from keras_icnn.evaluation.part_metrics import part_consistency_and_stability
from keras_icnn.evaluation.model_eval import (
    collect_responses, default_layer, evaluate_interpretability, filter_classes_by_activation,
    part_contributions)
from keras_icnn.models.receptive_field import AxisField, ReceptiveField, receptive_field
from keras_icnn import _lazy

_submodule, __dir__ = _lazy.submodules(__name__, ("stats", "streaming"))


def __getattr__(name):
    """``keras_icnn.metrics.streaming`` (the streaming metrics' old path) is
    :mod:`keras_icnn.evaluation.streaming`; ``stats`` loads on first use."""
    if name == "streaming":
        import importlib

        return importlib.import_module("keras_icnn.evaluation.streaming")
    return _submodule(name)

__all__ = [
    "filter_thresholds", "l1_density", "location_instability", "location_instability_multi",
    "mutual_information_ceiling", "mutual_information_matrix", "mutual_information_score",
    "part_interpretability", "part_ious", "region_counts", "upsample_maps", "collect_responses",
    "default_layer",
    "evaluate_interpretability", "filter_classes_by_activation", "AxisField", "ReceptiveField",
    "receptive_field", "activation_map_localization", "cam_localization",
    "class_activation_maps", "filter_correlation", "gradient_map_localization", "gradient_maps",
    "inter_class_correlation", "redundancy_ratio", "part_contributions",
    "category_part_concepts", "dissection", "dissection_counts", "dissection_counts_from_parts",
    "dissection_from_counts",
    "iou_ceiling", "deletion", "insertion", "mu_fidelity", "PartCounts", "part_consistency",
    "part_coverage", "part_stability", "part_consistency_and_stability",
]
