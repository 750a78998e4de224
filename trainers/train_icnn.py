"""Train an ordinary and an interpretable CNN of the same backbone and compare their filters.

Examples:
    python trainers/train_icnn.py --task=multi --epochs=15 --output_dir=/tmp/icnn
    python trainers/train_icnn.py --task=single --category=cat --epochs=10
    python trainers/train_icnn.py --dataset=cub --data_dir=/data/CUB_200_2011 \
        --backbone=vgg16 --weights=imagenet --image_size=224 --batch_size=16
    python trainers/train_icnn.py --dataset=folder --data_dir=~/photos --strategy=mirrored

Writes ordinary.keras, interpretable.keras, config.json and results.json
(accuracy, location instability and part interpretability of both models;
"n/a" where the data have no part annotations) into --output_dir and prints
a summary table.
"""
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from absl import app, flags  # noqa: E402

from keras_icnn.recipes import ICNNConfig, define_flags  # noqa: E402

FLAGS = flags.FLAGS
define_flags(ICNNConfig)


def main(argv):
    del argv
    from keras_icnn import recipes

    config = recipes.config_from_flags(recipes.ICNNConfig, FLAGS)
    results = recipes.run_icnn_experiment(config)
    rows = [dict(model=name, **results[name]) for name in ("ordinary", "interpretable")
            if name in results]
    split = config.eval_split
    print("\n" + recipes.format_table(rows, [
        ("model", "model"), (f"{split}_accuracy", f"{split} accuracy"),
        ("location_instability", "location instability (lower is better)"),
        ("part_interpretability", "part interpretability (higher is better)")]))
    ratios = results.get("ratios") or {}
    if "location_instability" in ratios:
        print(f"interpretable / ordinary: location instability {ratios['location_instability']:.2f}x "
              "(paper ~0.62x)")
    if "part_interpretability" in ratios:
        print(f"interpretable / ordinary: part interpretability "
              f"{ratios['part_interpretability']:.2f}x (paper 1.5-1.9x)")
    if not results["part_annotations"]:
        print(f"{config.dataset} has no part annotations: part metrics are not applicable (n/a)")
    print("\n" + recipes.common.results_line(config, results))


if __name__ == "__main__":
    app.run(main)
