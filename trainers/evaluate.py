"""Evaluate saved models with the papers' interpretability metrics; write a report and pictures.

Example:
    python trainers/evaluate.py \
        --models=/tmp/keras_icnn_demo/ordinary.keras,/tmp/keras_icnn_demo/interpretable.keras \
        --output_dir=/tmp/keras_icnn_eval

Writes report.json (all numbers), report.md (rows = models, columns = metrics)
and pictures/ (per-filter heatmaps, part association, MI matrix, gate matrix
for CSG models, part contributions to one prediction).
"""
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from absl import app, flags  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_list("models", [], "Comma-separated .keras files to evaluate.")
flags.DEFINE_list("names", [], "Names of the models in the report (default: file names).")
flags.DEFINE_enum("dataset", "synthetic", ["synthetic", "cub", "pascal_part"], "Evaluation data.")
flags.DEFINE_string("data_dir", "", "Local copy of CUB_200_2011 or Pascal-Part (real datasets).")
flags.DEFINE_string("split", "test", "Split: train/validation/test (synthetic), train/test (CUB).")
flags.DEFINE_enum("task", "multi", ["multi", "single"], "Synthetic task the models were trained on.")
flags.DEFINE_string("category", "bird", "Positive category of --task=single.")
flags.DEFINE_integer("num_examples", 1200, "Images to evaluate (synthetic; a limit for CUB).")
flags.DEFINE_integer("image_size", 64, "Image side in pixels.")
flags.DEFINE_integer("num_classes", 6, "Synthetic categories.")
flags.DEFINE_integer("seed", 0, "Synthetic data seed and MI estimator seed.")
flags.DEFINE_string("layer", "", "Layer to evaluate (default: the top conv layer).")
flags.DEFINE_integer("top_k", 100, "Images per filter and landmark in location instability.")
flags.DEFINE_integer("gradmap_examples", 48, "Images for GradMap localization (0 skips it).")
flags.DEFINE_integer("batch_size", 64, "Images per inference step.")
flags.DEFINE_string("output_dir", "/tmp/keras_icnn_eval", "Where the report goes.")
flags.DEFINE_integer("verbose", 1, "Progress bars (1) or quiet (0).")


def main(argv):
    del argv
    from keras_icnn import recipes, report

    result, table = report.evaluate_models(recipes.config_from_flags(report.EvalConfig, FLAGS))
    print("\n" + table)
    print(f"\nreport: {os.path.join(FLAGS.output_dir, 'report.md')} ({result['seconds']} s)")


if __name__ == "__main__":
    app.run(main)
