"""Figures (matplotlib; ``pip install 'keras_icnn[viz]'``): moved to
:mod:`keras_icnn.reporting.figures`; this path stays for the code and docs that use it."""
from keras_icnn.reporting.figures import (  # noqa: F401
    available, explanation, filter_heatmaps, matrix_heatmap, overlay_mosaic, part_contributions,
    to_png)
