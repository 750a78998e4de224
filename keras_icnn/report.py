"""``keras-icnn-evaluate``'s library code moved to :mod:`keras_icnn.recipes.evaluate` (the
command) and :mod:`keras_icnn.evaluation` (one model's metrics and atlas); this path stays for
the code that imports it."""
from keras_icnn.recipes.evaluate import (  # noqa: F401
    COLUMNS, EvalConfig, check_model_matches, evaluate_models, load_source, markdown_table)
from keras_icnn.evaluation.evaluate import evaluate_model  # noqa: F401
from keras_icnn.evaluation.atlas import atlas_section  # noqa: F401

__all__ = ["COLUMNS", "EvalConfig", "check_model_matches", "evaluate_models", "load_source",
           "markdown_table", "evaluate_model", "atlas_section"]
