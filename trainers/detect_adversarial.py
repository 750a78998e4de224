"""CSG's applications: adversarial-sample detection (CSG §5.2, Table 3) and black-box
robustness (appendix J, Table 4) of saved models, e.g. an STD and a CSG network.

Examples:
    python trainers/detect_adversarial.py --models=/tmp/keras_icnn_csg/baseline.keras,\
/tmp/keras_icnn_csg/csg.keras --names=STD,CSG
    python trainers/detect_adversarial.py --models=std.keras,csg.keras --attacks=fgsm,pgd,cw \
        --train_per_class=500,1000,2000 --num_test=... --cw_iterations=100   # the paper's sizes

For each model and white-box attack (FGSM, PGD, CW-L2, targeted at a random other
class unless --notargeted) the images of --split are attacked; the detector's
features are the global-average-pooled outputs of every conv layer; a random forest
is trained on --train_per_class clean and adversarial images per class and tested on
--test_per_class others, --repeats times (mean ± std error rate). The black-box
attacks (one-pixel, local search) report their success rate on correctly classified
images. Writes results.json and results.md (tables laid out as the paper's) to
--output_dir. The data flags are the trainers'.
"""
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from absl import app, flags  # noqa: E402

from keras_icnn.recipes import define_flags  # noqa: E402
from keras_icnn.recipes.adversarial import DetectConfig  # noqa: E402

FLAGS = flags.FLAGS
define_flags(DetectConfig)


def main(argv):
    del argv
    from keras_icnn import recipes
    from keras_icnn.recipes import adversarial

    config = recipes.config_from_flags(DetectConfig, FLAGS)
    _, table = adversarial.run_detection(config)
    print("\n" + table)
    print(f"results: {os.path.join(config.output_dir, 'results.md')}")


if __name__ == "__main__":
    app.run(main)
