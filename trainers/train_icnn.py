"""Train an ordinary and an interpretable CNN of the same backbone on synthetic part data.

Example:
    python trainers/train_icnn.py --task=multi --epochs=15 --output_dir=/tmp/icnn
    python trainers/train_icnn.py --task=single --category=cat --epochs=10

Writes ordinary.keras, interpretable.keras, config.json and results.json
(test accuracy, location instability and part interpretability of both
models) into --output_dir and prints a summary table.
"""
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from absl import app, flags  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_enum("task", "multi", ["multi", "single"],
                  "multi: classify all categories; single: one category vs. background.")
flags.DEFINE_string("category", "bird", "Positive category of --task=single (name or index).")
flags.DEFINE_enum("backbone", "vgg", ["vgg", "alexnet", "resnet20"], "Backbone CNN.")
flags.DEFINE_integer("width", 16, "Filters of the first conv block (the top conv has 8x).")
flags.DEFINE_integer("image_size", 64, "Image side in pixels.")
flags.DEFINE_integer("num_classes", 6, "Creature categories of the synthetic data.")
flags.DEFINE_integer("num_train", 4800, "Training images.")
flags.DEFINE_integer("num_val", 600, "Validation images.")
flags.DEFINE_integer("num_test", 1200, "Test images.")
flags.DEFINE_integer("epochs", 15, "Training epochs of each model.")
flags.DEFINE_integer("batch_size", 32, "Batch size.")
flags.DEFINE_float("learning_rate", 1e-3, "Adam learning rate.")
flags.DEFINE_enum("lr_schedule", "cosine", ["constant", "cosine"],
                  "Learning rate over the run: constant, or cosine decay to 0 by the last step.")
flags.DEFINE_integer("seed", 0, "Seed of the data, the initial weights and the shuffling.")
flags.DEFINE_enum("gradient", "approximate", ["approximate", "exact"], "Filter-loss gradient.")
flags.DEFINE_enum("gradient_form", "printed", ["printed", "appendix"],
                  "Approximate gradient with (printed) or without (appendix) the '1 +'.")
flags.DEFINE_enum("mu", "argmax", ["argmax", "centroid"], "Part location rule of the mask.")
flags.DEFINE_float("loss_weight", 0.05, "Filter-loss weight c (see --loss_schedule).")
flags.DEFINE_enum("loss_schedule", "constant",
                  ["constant", "paper", "inverse_epoch", "grad_ratio"], "Filter-loss weight rule.")
flags.DEFINE_float("occlusion", 0.2, "Probability of an occluding box per image.")
flags.DEFINE_bool("jit_compile", True, "Compile the train step with XLA.")
flags.DEFINE_enum("eval_split", "test", ["test", "validation"],
                  "Split the results are measured on (validation when tuning settings).")
flags.DEFINE_multi_enum("models", ["ordinary", "interpretable"], ["ordinary", "interpretable"],
                        "Which models to train (repeat the flag for both).")
flags.DEFINE_string("output_dir", "/tmp/keras_icnn_icnn", "Where models and results go.")
flags.DEFINE_integer("verbose", 1, "Keras verbosity (1 = progress bars).")


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
    ratios = results.get("ratios")
    if ratios:
        print(f"interpretable / ordinary: location instability {ratios['location_instability']:.2f}x "
              f"(paper ~0.62x), part interpretability {ratios['part_interpretability']:.2f}x "
              "(paper 1.5-1.9x)")
    print(f"\nresults: {os.path.join(config.output_dir, 'results.json')} "
          f"({results['seconds']} s)")


if __name__ == "__main__":
    app.run(main)
