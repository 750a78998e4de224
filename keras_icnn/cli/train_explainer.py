r"""Distil an explainer network from a frozen performer CNN (Zhang et al.).

Examples:
    keras-icnn-train-explainer                            # trains a VGG performer first
    keras-icnn-train-explainer --dataset=cub --data_dir=/data/CUB_200_2011 \
        --backbone=vgg16 --weights=imagenet --image_size=224
    keras-icnn-train-explainer --performer=model.keras --layer=block3_pool

The explainer's decoder reconstructs the performer's hidden FC features (fc6/fc7
style; for a head without hidden FC layers, its pooled feature) and the
performer's own frozen classifier classifies the reconstruction.

Writes results.json (p; delta error = error of the performer's classifier on the
reconstructed features minus its error on its own features; with
--explainer_cls the Explainer+cls baseline's error; location instability of
conv-interp-2 vs the performer's top conv), explainer.keras (explainer_cls.keras,
and performer.keras when it trained one) into --output_dir.
"""
from absl import flags


def define_flags(module_name=None):
    """The command's flags: one per field of :class:`~keras_icnn.recipes.ExplainerConfig`."""
    from keras_icnn.recipes import ExplainerConfig, define_flags as define

    define(ExplainerConfig, module_name=module_name)


def main(argv):
    del argv
    from keras_icnn import recipes

    FLAGS = flags.FLAGS
    config = recipes.config_from_flags(recipes.ExplainerConfig, FLAGS)
    r = recipes.run_explainer_experiment(config)
    li = r["location_instability"]
    print(f"\np = {r['p']:.3f} (paper 0.80-0.96 for VGG performers)")
    split = r["eval_split"]
    print(f"delta error = {r['delta_error']:+.4f} (on the {split} split: performer error "
          f"{r[f'performer_{split}_error']:.4f}, on reconstructed features "
          f"{r[f'reconstruction_{split}_error']:.4f}; reconstructed: "
          f"{', '.join(r['reconstructs'])}, classified by the performer's "
          f"{', '.join(r['classified_by'])})")
    if r[f"explainer_cls_{split}_error"] is not None:
        print(f"Explainer+cls error = {r[f'explainer_cls_{split}_error']:.4f} "
              "(classification loss instead of reconstruction; Table 3's extra column)")
    if li is None:
        print(f"{config.dataset} has no landmarks: location instability is not applicable (n/a)")
    else:
        print(f"location instability: performer top conv {li['performer_top_conv']:.4f}, "
              f"explainer conv-interp-2 {li['explainer']:.4f} (ratio {li['ratio']:.2f}, "
              "paper 0.36-0.69)")
        for key, name in (("part_consistency", "part consistency"),
                          ("part_stability", "part stability")):
            v = r[key]
            ratio = "n/a" if v["ratio"] is None else f"{v['ratio']:.2f}"
            print(f"{name}: performer top conv {v['performer_top_conv']:.4f}, explainer "
                  f"conv-interp-2 {v['explainer']:.4f} (ratio {ratio})")
    print(recipes.common.results_line(config, r))


def run():
    """``train_explainer``'s entry point (``keras-icnn-train-explainer``)."""
    from keras_icnn.cli import run_command

    run_command(__doc__, define_flags, main)
