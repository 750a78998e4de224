"""Distil an explainer network from a frozen performer CNN (Zhang et al.).

Examples:
    python trainers/train_explainer.py                            # trains a VGG performer first
    python trainers/train_explainer.py --performer=model.keras --layer=block3_pool

Writes results.json (p, delta error = error of the performer's head on the
reconstructed features minus its error on its own features, location
instability of conv-interp-2 vs the performer's top conv), explainer.keras
(and performer.keras when it trained one) into --output_dir.
"""
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from absl import app, flags  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_string("performer", "", "A saved .keras performer (empty: train a VGG performer).")
flags.DEFINE_string("layer", "block3_pool",
                    "Performer layer whose feature map the explainer reads (below its top conv).")
flags.DEFINE_integer("performer_epochs", 6, "Epochs of the performer when training one.")
flags.DEFINE_integer("width", 16, "Width of the VGG performer when training one.")
flags.DEFINE_integer("image_size", 64, "Image side in pixels.")
flags.DEFINE_integer("num_classes", 6, "Synthetic categories.")
flags.DEFINE_integer("num_train", 4800, "Training images.")
flags.DEFINE_integer("num_val", 300, "Validation images.")
flags.DEFINE_integer("num_test", 1200, "Test images.")
flags.DEFINE_integer("epochs", 20, "Distillation epochs.")
flags.DEFINE_integer("batch_size", 32, "Batch size.")
flags.DEFINE_float("lr", 1e-3, "Adam learning rate.")
flags.DEFINE_float("eta", 1.0, "Weight of -log p.")
flags.DEFINE_float("filter_fraction", 0.1,
                   "c of the gradient-ratio rule: |dLoss_f/dx| = c |d rec/dx| per filter.")
flags.DEFINE_bool("fraction_decay", False, "Divide c by the epoch N (the paper's 1/(300 N)).")
flags.DEFINE_bool("mix_trick", False, "conv-interp-2's filter loss on p x_f + (1-p) x_ordin.")
flags.DEFINE_float("initial_p", 0.5, "Starting mixing weight p of the interpretable track.")
flags.DEFINE_enum("eval_split", "test", ["test", "validation"],
                  "Split the results are measured on (validation when tuning settings).")
flags.DEFINE_enum("strategy", "default", ["default", "mirrored", "multi_worker"],
                  "tf.distribute strategy.")
flags.DEFINE_integer("num_cpu_devices", 2, "Logical CPU devices for --strategy=mirrored.")
flags.DEFINE_integer("seed", 0, "Seed of data, weights and shuffling.")
flags.DEFINE_string("output_dir", "/tmp/keras_icnn_explainer", "Where results go.")
flags.DEFINE_integer("verbose", 1, "Keras verbosity (1 = progress bars).")


def main(argv):
    del argv
    from keras_icnn import recipes

    config = recipes.config_from_flags(recipes.ExplainerConfig, FLAGS)
    r = recipes.run_explainer_experiment(config)
    li = r["location_instability"]
    print(f"\np = {r['p']:.3f} (paper 0.80-0.96 for VGG performers)")
    split = r["eval_split"]
    print(f"delta error = {r['delta_error']:+.4f} (on the {split} split: performer error "
          f"{r[f'performer_{split}_error']:.4f}, on reconstructed features "
          f"{r[f'reconstruction_{split}_error']:.4f})")
    print(f"location instability: performer top conv {li['performer_top_conv']:.4f}, "
          f"explainer conv-interp-2 {li['explainer']:.4f} (ratio {li['ratio']:.2f}, "
          "paper 0.36-0.69)")
    print(f"results: {os.path.join(config.output_dir, 'results.json')} ({r['seconds']} s)")


if __name__ == "__main__":
    app.run(main)
