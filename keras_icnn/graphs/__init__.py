"""The explanatory graph (survey §4.3, SPEC §10): a trained CNN's filters split into part
patterns linked across layers, learned without part annotations, and what it is for —
stabler part detectors than the raw filters, and parts localised from a few examples.

Example:
    >>> from keras_icnn.graphs import ExplanatoryGraph, localize_parts
    >>> g = ExplanatoryGraph.fit(model, train_images)
    >>> inf = g.infer(test_images)
    >>> found = localize_parts(g, train_images[:3], train_landmarks[:3], test_images)
"""
from keras_icnn.graphs.graph import ExplanatoryGraph, GraphInference
from keras_icnn.graphs.localize import (
    FilterDetectors, NearestNeighbourParts, localize_parts, normalised_distance,
    predict_parts, select_detectors)
from keras_icnn.graphs.peaks import LayerPeaks, default_graph_layers, local_peaks

__all__ = ["ExplanatoryGraph", "GraphInference", "LayerPeaks", "default_graph_layers",
           "local_peaks", "FilterDetectors", "NearestNeighbourParts", "localize_parts",
           "normalised_distance", "predict_parts", "select_detectors"]
