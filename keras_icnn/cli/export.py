r"""Export a trained model to SavedModel for TensorFlow Serving, with an `explain` signature.

Examples:
    keras-icnn-export --model=/tmp/keras_icnn_demo/interpretable.keras \
        --base_dir=/tmp/models --name=icnn
    keras-icnn-export --model=/tmp/keras_icnn_explainer/performer.keras \
        --explainer=/tmp/keras_icnn_explainer/explainer.keras --explainer_layer=block3_pool \
        --base_dir=/tmp/models --name=explainer

Writes <base_dir>/<name>/<version>/ (TF Serving's layout) with signatures
`serving_default` (images -> probabilities, class_ids) and `explain`
(+ part_locations, part_scores, filter_classes, contributions,
contribution_shares and, for CSG models, filter_relevance: keras_icnn.explain's
fields for the predicted class), plus assets.extra/config.json (this command's
flags) and assets.extra/tf_serving_warmup_requests when tensorflow-serving-api
is installed.
"""
from absl import flags


def define_flags(module_name=None, flag_values=None):
    """The exporter's flags, one per field of :class:`keras_icnn.export.ExportConfig`
    (``--warmup`` is the deprecated name of ``--serving_warmup``), in ``flag_values``
    (default ``absl.flags.FLAGS``)."""
    from keras_icnn.config.flags import define_flags as define
    from keras_icnn.export import ExportConfig

    define(ExportConfig, flag_values=flag_values, module_name=module_name)


def main(argv):
    del argv
    from keras_icnn import export
    from keras_icnn.config.flags import config_from_flags

    config = config_from_flags(export.ExportConfig, flags.FLAGS)
    path, kind = export.export_from_config(config)
    print(f"exported {kind} model to {path}")


def run():
    """The exporter's entry point (``keras-icnn-export``)."""
    from keras_icnn.cli import run_command

    run_command(__doc__, define_flags, main)
