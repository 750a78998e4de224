r"""Export a trained model to SavedModel for TensorFlow Serving, with an `explain` signature.

Examples:
    keras-icnn-export --model=/tmp/keras_icnn_demo/interpretable.keras \
        --base_dir=/tmp/models --name=icnn
    keras-icnn-export --model=/tmp/keras_icnn_explainer/performer.keras \
        --explainer=/tmp/keras_icnn_explainer/explainer.keras --layer=block3_pool \
        --base_dir=/tmp/models --name=explainer

Writes <base_dir>/<name>/<version>/ (TF Serving's layout) with signatures
`serving_default` (images -> probabilities, class_ids) and `explain`
(+ part_locations, part_scores, filter_classes, contributions,
contribution_shares and, for CSG models, filter_relevance: keras_icnn.explain's
fields for the predicted class), plus assets.extra/config.json (this command's
flags) and assets.extra/tf_serving_warmup_requests when tensorflow-serving-api
is installed.
"""
import json
import os

from absl import flags


def define_flags(module_name=None, flag_values=None):
    """The exporter's flags (``--warmup`` is the deprecated name of ``--serving_warmup``), in
    ``flag_values`` (default ``absl.flags.FLAGS``)."""
    from keras_icnn.config.flags import define_alias

    kw = dict(module_name=module_name,
              flag_values=flags.FLAGS if flag_values is None else flag_values)
    flags.DEFINE_string("model", None, "The .keras model (for an explainer: its performer).",
                        **kw)
    flags.DEFINE_string("explainer", "", "An explainer .keras to export together with --model.",
                        **kw)
    flags.DEFINE_string("layer", "", "Layer to explain (default: top conv); for --explainer, "
                                     "the performer layer the explainer reads.", **kw)
    flags.DEFINE_string("base_dir", "/tmp/keras_icnn_models", "TF Serving model base directory.",
                        **kw)
    flags.DEFINE_string("name", "icnn", "Model name (a folder under --base_dir).", **kw)
    flags.DEFINE_integer("version", 0, "Version number (0: the next free one).", lower_bound=0,
                         **kw)
    from keras_icnn.export import INPUT_DTYPES

    flags.DEFINE_enum("input_dtype", "float32", list(INPUT_DTYPES),
                      "dtype of the images input.", **kw)
    flags.DEFINE_bool("serving_warmup", None, "Write assets.extra/tf_serving_warmup_requests "
                      "(needs the serving extra). Default: when tensorflow-serving-api is "
                      "installed.", **kw)
    define_alias("warmup", "serving_warmup", kw["flag_values"], module_name)
    flags.mark_flag_as_required("model", flag_values=kw["flag_values"])


def main(argv):
    del argv
    import keras_icnn  # noqa: F401  (registers the custom layers for loading)
    from keras_icnn import export
    from keras_icnn.models import ExplainerDistiller
    from keras_icnn.config.flags import resolve_aliases
    from keras_icnn.recipes.common import load_model_file

    FLAGS = flags.FLAGS
    resolve_aliases(FLAGS)
    model = load_model_file(FLAGS.model, "model")
    if FLAGS.explainer:
        if not FLAGS.layer:
            raise ValueError("--explainer needs --layer (the performer layer it reads)")
        model = ExplainerDistiller(model, load_model_file(FLAGS.explainer, "explainer"),
                                   FLAGS.layer)
    path = export.export_model(model, FLAGS.base_dir, FLAGS.name, FLAGS.version or None,
                               FLAGS.layer or None, FLAGS.input_dtype, FLAGS.serving_warmup)
    names = ("model", "explainer", "layer", "base_dir", "name", "version", "input_dtype",
             "serving_warmup")
    extra = os.path.join(path, "assets.extra")
    os.makedirs(extra, exist_ok=True)
    with open(os.path.join(extra, "config.json"), "w") as f:
        json.dump({name: FLAGS[name].value for name in names}, f, indent=2)
    print(f"exported {export.model_kind(model)} model to {path}")


def run():
    """The exporter's entry point (``keras-icnn-export``)."""
    from keras_icnn.cli import run_command

    run_command(__doc__, define_flags, main)
