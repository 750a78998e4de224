r"""Evaluate saved models with the papers' interpretability metrics; write a report and pictures.

Example:
    keras-icnn-evaluate \
        --models=/tmp/keras_icnn_demo/ordinary.keras,/tmp/keras_icnn_demo/interpretable.keras \
        --output_dir=/tmp/keras_icnn_eval

    keras-icnn-evaluate --dataset=cub --data_dir=/data/CUB_200_2011 \
        --models=/tmp/keras_icnn_icnn/interpretable.keras --image_size=224 --num_examples=0

The data flags are the trainers' (same --seed, --num_val: the same splits).
Evaluation streams the images (two passes, memory independent of the split's
size). Writes report.json (all numbers), report.md (rows = models, columns = metrics),
report.html (one self-contained page: the metrics table and, per model, a filter
atlas: each filter's category, part, score and top-activating test images with
its map and peak, sortable and filterable; gate / MI / part-association matrices;
a few predictions explained filter by filter) and pictures/ (per-filter heatmaps,
part association, MI matrix, gate matrix for CSG models, part contributions to
one prediction).
"""
import os

from absl import flags


def define_flags(module_name=None):
    """The command's flags: one per field of ``EvalConfig``."""
    from keras_icnn.recipes import define_flags as define
    from keras_icnn.report import EvalConfig

    define(EvalConfig, module_name=module_name)


def main(argv):
    del argv
    FLAGS = flags.FLAGS
    from keras_icnn import recipes, report

    result, table = report.evaluate_models(recipes.config_from_flags(report.EvalConfig, FLAGS))
    print("\n" + table)
    print(f"\nreport: {os.path.join(FLAGS.output_dir, 'report.md')} ({result['seconds']} s)")
    print(f"filter atlas: {result['html']}")


def run():
    """``evaluate``'s entry point (``keras-icnn-evaluate``)."""
    from keras_icnn.cli import run_command

    run_command(__doc__, define_flags, main)
