"""Models: backbones and the interpretable-CNN construction."""

from keras_icnn.models.backbones import (
    APPLICATIONS, BACKBONES, alexnet_backbone, application_backbone, default_layer, get_backbone,
    resnet20_backbone, vgg_backbone)
from keras_icnn.models.csg import (
    CSGModel, CSGSchedule, StopOnNonFinite, gate_matrix, make_csg, phase_for_epoch, phase_table)
from keras_icnn.models.distiller import ExplainerDistiller
from keras_icnn.models.explainer_build import build_explainer
from keras_icnn.models.explainer import ChannelScale, Explainer, HeadPlan, plan_head, split_performer
from keras_icnn.models.interpretable import (
    FilterLossEpoch, InterpretableModel, make_interpretable)
from keras_icnn.models import graph, guard, heads  # noqa: E402  (nested models, heads; NaN guard)
from keras_icnn.models.graph import find_layer, flatten
from keras_icnn.models.heads import logits_model

__all__ = [
    "APPLICATIONS", "BACKBONES", "alexnet_backbone", "application_backbone", "default_layer", "get_backbone", "resnet20_backbone", "vgg_backbone",
    "FilterLossEpoch", "InterpretableModel", "make_interpretable",
    "CSGModel", "CSGSchedule", "StopOnNonFinite", "gate_matrix", "make_csg", "phase_for_epoch",
    "phase_table", "Explainer", "ExplainerDistiller", "build_explainer",
    "ChannelScale", "HeadPlan", "plan_head", "split_performer",
    "graph", "guard", "heads", "find_layer", "flatten", "logits_model",
]
