r"""Train an ordinary and an interpretable CNN of the same backbone and compare their filters.

Examples:
    keras-icnn-train-icnn --task=multi --epochs=15 --output_dir=/tmp/icnn
    keras-icnn-train-icnn --task=single --category=cat --epochs=10
    keras-icnn-train-icnn --dataset=cub --data_dir=/data/CUB_200_2011 \
        --backbone=vgg16 --weights=imagenet --image_size=224 --batch_size=16
    keras-icnn-train-icnn --dataset=folder --data_dir=~/photos --strategy=mirrored

Writes ordinary.keras, interpretable.keras, config.json and results.json
(accuracy, location instability and part interpretability of both models;
"n/a" where the data have no part annotations) into --output_dir and prints
a summary table.
"""
from absl import flags


def define_flags(module_name=None):
    """The command's flags: one per field of :class:`~keras_icnn.recipes.ICNNConfig`."""
    from keras_icnn.recipes import ICNNConfig, define_flags as define

    define(ICNNConfig, module_name=module_name)


def main(argv):
    del argv
    from keras_icnn import recipes

    FLAGS = flags.FLAGS
    config = recipes.config_from_flags(recipes.ICNNConfig, FLAGS)
    results = recipes.run_icnn_experiment(config)
    rows = [dict(model=name, **results[name]) for name in ("ordinary", "interpretable")
            if name in results]
    split = config.eval_split
    print("\n" + recipes.format_table(rows, [
        ("model", "model"), (f"{split}_accuracy", f"{split} accuracy"),
        ("location_instability", "location instability (lower is better)"),
        ("part_consistency", "part consistency (higher)"),
        ("part_stability", "part stability (higher)"),
        ("part_interpretability", "part interpretability (higher is better)")]))
    ratios = results.get("ratios") or {}
    if "location_instability" in ratios:
        print(f"interpretable / ordinary: location instability {ratios['location_instability']:.2f}x "
              "(paper ~0.62x)")
    for key, name in (("part_consistency", "part consistency"),
                      ("part_stability", "part stability")):
        if key in ratios:
            print(f"interpretable / ordinary: {name} {ratios[key]:.2f}x")
    if "part_interpretability" in ratios:
        print(f"interpretable / ordinary: part interpretability "
              f"{ratios['part_interpretability']:.2f}x (paper 1.5-1.9x)")
    elif results.get("ordinary", {}).get("part_interpretability") == 0:
        print("interpretable / ordinary: part interpretability ratio undefined (the ordinary "
              "CNN scores 0)")
    if not results["part_annotations"]:
        print(f"{config.dataset} has no part annotations: part metrics are not applicable (n/a)")
    print("\n" + recipes.common.results_line(config, results))


def run():
    """``train_icnn``'s entry point (``keras-icnn-train-icnn``)."""
    from keras_icnn.cli import run_command

    run_command(__doc__, define_flags, main)
