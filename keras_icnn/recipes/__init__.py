"""End-to-end recipes the trainers call: data -> models -> fit -> evaluate -> save.

Trainers in ``trainers/`` only parse flags into a config and call one of these.
"""

from keras_icnn.recipes.common import config_from_flags, format_table
from keras_icnn.recipes.csg import CSGConfig, run_csg_experiment
from keras_icnn.recipes.explainer import ExplainerConfig, run_explainer_experiment
from keras_icnn.recipes.icnn import ICNNConfig, build_icnn_pair, run_icnn_experiment, synthetic_splits

__all__ = ["config_from_flags", "format_table", "CSGConfig", "run_csg_experiment", "ExplainerConfig",
           "run_explainer_experiment", "ICNNConfig", "build_icnn_pair", "run_icnn_experiment",
           "synthetic_splits"]
