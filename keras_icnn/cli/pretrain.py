r"""Pretrain a backbone as a plain classifier and save its convolutional base for --weights.

The papers fine-tune ImageNet-pretrained backbones on a few dozen images per class. Without
ImageNet weights (no internet, or a built-in backbone), pretrain on a corpus whose classes
no evaluation uses, then fine-tune any command with --weights=<output_dir>/backbone.weights.h5
and the same --backbone and --width (e.g. keras-icnn-train-icnn
--weights=/tmp/pre_syn/backbone.weights.h5 --num_train=180).

Examples:
    keras-icnn-pretrain --backbone=vgg --num_classes=30 --epochs=20 --output_dir=/tmp/pre_syn
    keras-icnn-pretrain --dataset=cub --data_dir=/tmp/pre_birds_data --backbone=resnet20 \
        --output_dir=/tmp/pre_birds

The bird corpus of the second line is written by ``python -m keras_icnn.data.synthetic_birds
--species_set=pretraining --num_species=30 --output_dir=/tmp/pre_birds_data`` (species no
evaluation directory has). The synthetic corpus (--dataset=synthetic) uses its pretraining
categories by default (--categories=pretraining: 30 body plans no evaluation uses). Writes
backbone.weights.h5, classifier.keras, config.json and results.json (accuracy on
--eval_split) into --output_dir.
"""
from absl import flags


def define_flags(module_name=None):
    """The command's flags: one per field of :class:`~keras_icnn.recipes.pretrain.PretrainConfig`."""
    from keras_icnn.recipes import define_flags as define
    from keras_icnn.recipes.pretrain import PretrainConfig

    define(PretrainConfig, module_name=module_name)


def main(argv):
    del argv
    from keras_icnn import recipes
    from keras_icnn.recipes.pretrain import PretrainConfig, run_pretraining

    config = recipes.config_from_flags(PretrainConfig, flags.FLAGS)
    results = run_pretraining(config)
    split = config.eval_split
    print(f"\n{split} accuracy of the pretrained classifier: "
          f"{results[f'{split}_accuracy']:.4f}")
    if results.get("written_by") == "chief":
        print(f"fine-tune with: --backbone={config.backbone} --width={config.width} "
              f"--weights={results['weights_file']}")
    print(recipes.common.results_line(config, results))


def run():
    """``pretrain``'s entry point (``keras-icnn-pretrain``)."""
    from keras_icnn.cli import run_command

    run_command(__doc__, define_flags, main)
