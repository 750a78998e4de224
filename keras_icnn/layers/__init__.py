"""Public layers of keras_icnn."""

from keras_icnn.layers.class_specific_gate import ClassSpecificGate, GateProjection
from keras_icnn.layers.interpretable_conv import InterpretableConv
from keras_icnn.layers.interpretable_mask import InterpretableMask
from keras_icnn.layers.label_context import label_scope
from keras_icnn.layers.norm_layer import NormLayer
from keras_icnn.layers.part_mask import PartMask
from keras_icnn.layers.preprocess import ImagenetPreprocess

__all__ = ["ClassSpecificGate", "GateProjection", "ImagenetPreprocess", "InterpretableConv",
           "InterpretableMask", "NormLayer", "PartMask", "label_scope"]
