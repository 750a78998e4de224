r"""CSG's applications: adversarial-sample detection (CSG §5.2, Table 3) and black-box
robustness (appendix J, Table 4) of saved models, e.g. an STD and a CSG network.

Examples:
    keras-icnn-detect-adversarial --models=/tmp/keras_icnn_csg/baseline.keras,\
/tmp/keras_icnn_csg/csg.keras --names=STD,CSG
    keras-icnn-detect-adversarial --models=std.keras,csg.keras --attacks=fgsm,pgd,cw \
        --train_per_class=500,1000,2000 --num_test=0 --cw_iterations=100   # the paper's sizes

For each model and white-box attack (FGSM, PGD, CW-L2, targeted at a random other
class unless --notargeted) the images of --eval_split are attacked; the detector's
features are the global-average-pooled outputs of every conv layer; a random forest
is trained on --train_per_class clean and adversarial images per class and tested on
--test_per_class others, --repeats times (mean ± std error rate). The black-box
attacks (one-pixel, local search) report their success rate on correctly classified
images. Writes results.json and results.md (tables laid out as the paper's) to
--output_dir. The data flags are the trainers'.
"""
import os

from absl import flags


def define_flags(module_name=None):
    """The command's flags: one per field of ``DetectConfig``."""
    from keras_icnn.recipes import define_flags as define
    from keras_icnn.recipes.adversarial import DetectConfig

    define(DetectConfig, module_name=module_name)


def main(argv):
    del argv
    FLAGS = flags.FLAGS
    from keras_icnn import recipes
    from keras_icnn.recipes import adversarial
    from keras_icnn.recipes.adversarial import DetectConfig

    config = recipes.config_from_flags(DetectConfig, FLAGS)
    _, table = adversarial.run_detection(config)
    print("\n" + table)
    print(f"results: {os.path.join(config.output_dir, 'results.md')}")


def run():
    """``detect_adversarial``'s entry point (``keras-icnn-detect-adversarial``)."""
    from keras_icnn.cli import run_command

    run_command(__doc__, define_flags, main)
