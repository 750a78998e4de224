"""End-to-end recipes the trainers call: data -> build -> fit -> measure -> save.

Trainers in ``trainers/`` only define flags from a config (``define_flags``),
parse them into it and call one of these.
"""

from keras_icnn.config.flags import config_from_flags, define_flags
from keras_icnn.config.options import DataOptions, ModelOptions, RecipeConfig, RunOptions
from keras_icnn.recipes.common import open_data, run_experiment
from keras_icnn.reporting.tables import format_table
from keras_icnn.recipes.csg import CSGConfig, run_csg_experiment
from keras_icnn.recipes.explainer import ExplainerConfig, run_explainer_experiment
from keras_icnn.recipes.icnn import ICNNConfig, build_icnn_pair, run_icnn_experiment, synthetic_splits

__all__ = ["DataOptions", "ModelOptions", "RecipeConfig", "RunOptions", "config_from_flags",
           "define_flags", "format_table", "open_data", "run_experiment", "CSGConfig",
           "run_csg_experiment", "ExplainerConfig", "run_explainer_experiment", "ICNNConfig",
           "build_icnn_pair", "run_icnn_experiment", "synthetic_splits"]
