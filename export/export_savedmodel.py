"""Export a trained model to SavedModel for TensorFlow Serving, with an `explain` signature.

Examples:
    python export/export_savedmodel.py --model=/tmp/keras_icnn_demo/interpretable.keras \
        --base_dir=/tmp/models --name=icnn
    python export/export_savedmodel.py --model=/tmp/keras_icnn_explainer/performer.keras \
        --explainer=/tmp/keras_icnn_explainer/explainer.keras --layer=block3_pool \
        --base_dir=/tmp/models --name=explainer

Writes <base_dir>/<name>/<version>/ (TF Serving's layout) with signatures
`serving_default` (images -> probabilities, class_ids) and `explain`
(+ part_locations, part_scores, filter_classes, contributions,
contribution_shares and, for CSG models, filter_relevance: keras_icnn.explain's
fields for the predicted class), plus
assets.extra/tf_serving_warmup_requests when tensorflow-serving-api is installed.
"""
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from absl import app, flags  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_string("model", None, "The .keras model (for an explainer: its performer).")
flags.DEFINE_string("explainer", "", "An explainer .keras to export together with --model.")
flags.DEFINE_string("layer", "", "Layer to explain (default: top conv); for --explainer, "
                                 "the performer layer the explainer reads.")
flags.DEFINE_string("base_dir", "/tmp/keras_icnn_models", "TF Serving model base directory.")
flags.DEFINE_string("name", "icnn", "Model name (a folder under --base_dir).")
flags.DEFINE_integer("version", 0, "Version number (0: the next free one).", lower_bound=0)
flags.DEFINE_enum("input_dtype", "float32", ["float32", "uint8"], "dtype of the images input.")
flags.DEFINE_bool("warmup", None, "Write assets.extra/tf_serving_warmup_requests (needs the "
                  "serving extra). Default: when tensorflow-serving-api is installed.")
flags.mark_flag_as_required("model")


def main(argv):
    del argv
    import keras

    import keras_icnn  # noqa: F401  (registers the custom layers for loading)
    from keras_icnn import export
    from keras_icnn.models import ExplainerDistiller

    for path in (FLAGS.model, FLAGS.explainer):
        if path and not os.path.exists(path):
            raise FileNotFoundError(f"model file not found: {path}")
    model = keras.models.load_model(FLAGS.model)
    if FLAGS.explainer:
        if not FLAGS.layer:
            raise ValueError("--explainer needs --layer (the performer layer it reads)")
        model = ExplainerDistiller(model, keras.models.load_model(FLAGS.explainer), FLAGS.layer)
    path = export.export_model(model, FLAGS.base_dir, FLAGS.name, FLAGS.version or None,
                               FLAGS.layer or None, FLAGS.input_dtype, FLAGS.warmup)
    print(f"exported {export.model_kind(model)} model to {path}")


if __name__ == "__main__":
    app.run(main)
