"""Public layers of keras_icnn."""

from keras_icnn.layers.class_specific_gate import ClassSpecificGate, GateProjection
from keras_icnn.layers.interpretable_conv import InterpretableConv
from keras_icnn.layers.label_context import label_scope
from keras_icnn.layers.norm_layer import NormLayer
from keras_icnn.layers.part_mask import PartMask

__all__ = ["ClassSpecificGate", "GateProjection", "InterpretableConv", "NormLayer", "PartMask",
           "label_scope"]
