"""End-to-end recipes the trainers call: data -> models -> fit -> evaluate -> save.

Trainers in ``trainers/`` only parse flags into a config and call one of these.
"""

import dataclasses  # noqa: F401  (trainers read the config fields through it)

from keras_icnn.recipes.common import format_table
from keras_icnn.recipes.csg import CSGConfig, run_csg_experiment
from keras_icnn.recipes.explainer import ExplainerConfig, run_explainer_experiment
from keras_icnn.recipes.icnn import ICNNConfig, build_icnn_pair, run_icnn_experiment, synthetic_splits

__all__ = ["format_table", "CSGConfig", "run_csg_experiment", "ExplainerConfig",
           "run_explainer_experiment", "ICNNConfig", "build_icnn_pair", "run_icnn_experiment",
           "synthetic_splits"]
