"""Train a CNN with class-specific gates (CSG, Liang et al. 2020) on synthetic part data.

Examples:
    python trainers/train_csg.py --strategy=mirrored --num_cpu_devices=2 --epochs=6 --train_baseline
    TF_CONFIG='{"cluster": {"worker": ["host1:2222", "host2:2222"]}, "task": {"type": "worker", "index": 0}}' \
        python trainers/train_csg.py --strategy=multi_worker

Alternates STD and CSG epochs (Algorithm 1), checkpoints every epoch with
keras.callbacks.BackupAndRestore (a killed run resumes at the same epoch,
phase and gate matrix), and writes results.json (STD- and CSG-path test
accuracy, MIS of the CSG model and of the --train_baseline STD model,
L1-density and whether it lies in [1/C, density]), gate.npy, gate.png and
csg.keras into --output_dir.
"""
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from absl import app, flags  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_enum("backbone", "resnet20", ["resnet20", "vgg", "alexnet"], "Backbone CNN.")
flags.DEFINE_integer("width", 16, "Filters of the first stage (the gated layer has 4x / 8x).")
flags.DEFINE_enum("dataset", "synthetic", ["synthetic", "cub"], "Training data.")
flags.DEFINE_string("data_dir", "", "Local CUB_200_2011 directory for --dataset=cub.")
flags.DEFINE_integer("image_size", 64, "Image side in pixels.")
flags.DEFINE_integer("num_classes", 6, "Synthetic categories.")
flags.DEFINE_integer("num_train", 3000, "Training images.")
flags.DEFINE_integer("num_val", 300, "Validation images.")
flags.DEFINE_integer("num_test", 1200, "Test images.")
flags.DEFINE_integer("epochs", 6, "Epochs (STD and CSG together).")
flags.DEFINE_integer("batch_size", 64, "Global batch size.")
flags.DEFINE_float("lr", 1e-3, "Adam learning rate of the network in STD epochs.")
flags.DEFINE_float("csg_lr", 1e-3, "Adam learning rate of the network in CSG epochs.")
flags.DEFINE_float("gate_lr", 0.05, "Adam learning rate of the gate matrix G.")
flags.DEFINE_enum("lr_schedule", "constant", ["constant", "cosine"],
                  "Network learning rates (--lr, --csg_lr; baseline too): constant, or cosine decay "
                  "to 0 over the steps each optimizer takes. G's stays constant.")
flags.DEFINE_integer("period", 2, "Epochs per STD/CSG period.")
flags.DEFINE_integer("csg_epochs", 1, "CSG epochs at the start of each period.")
flags.DEFINE_integer("warmup", 1, "STD epochs before the first period.")
flags.DEFINE_float("density", 0.2, "Target L1-density of G (g = density * C * K, >= 1/C).")
flags.DEFINE_enum("sparsity", "l1", ["l1", "l2", "smooth_l1"], "Norm psi of the sparsity penalty.")
flags.DEFINE_float("lambda1", 1.0, "Weight of the CSG-path cross-entropy.")
flags.DEFINE_float("lambda2", 1e-3, "Weight of the sparsity penalty.")
flags.DEFINE_bool("std_in_csg", False, "Add the STD cross-entropy in CSG epochs (eq. 3).")
flags.DEFINE_bool("fixed_gate", False, "Fixed gates: each class owns filters_per_class filters.")
flags.DEFINE_integer("filters_per_class", 0, "m1 of --fixed_gate.")
flags.DEFINE_integer("shared_filters", 0, "m2 of --fixed_gate.")
flags.DEFINE_bool("train_baseline", False, "Also train an STD-only model of the same backbone.")
flags.DEFINE_enum("strategy", "default", ["default", "mirrored", "multi_worker"],
                  "tf.distribute strategy (multi_worker reads TF_CONFIG).")
flags.DEFINE_integer("num_cpu_devices", 2, "Logical CPU devices for --strategy=mirrored without GPUs.")
flags.DEFINE_bool("checkpoint", True, "Back up every epoch and resume a killed run.")
flags.DEFINE_integer("crash_after_epoch", 0,
                     "Testing aid: exit hard after this epoch's backup, like a killed run.")
flags.DEFINE_integer("seed", 0, "Seed of data, weights and shuffling.")
flags.DEFINE_enum("eval_split", "test", ["test", "validation"],
                  "Split the results are measured on (validation when tuning settings).")
flags.DEFINE_string("output_dir", "/tmp/keras_icnn_csg", "Where results and checkpoints go.")
flags.DEFINE_integer("verbose", 1, "Keras verbosity (1 = progress bars).")


def main(argv):
    del argv
    from keras_icnn import recipes

    config = recipes.config_from_flags(recipes.CSGConfig, FLAGS)
    r = recipes.run_csg_experiment(config)
    split = config.eval_split
    csg = r["csg"]
    rows = [dict(model="CSG (STD path)", accuracy=csg[f"std_path_{split}_accuracy"],
                 mis=csg["mis"]),
            dict(model="CSG (CSG path, sees labels)", accuracy=csg[f"csg_path_{split}_accuracy"])]
    if "baseline" in r:
        rows.append(dict(model="STD baseline", accuracy=r["baseline"][f"{split}_accuracy"],
                         mis=r["baseline"]["mis"]))
    print("\n" + recipes.format_table(rows, [("model", "model"), ("accuracy", f"{split} accuracy"),
                                             ("mis", "MIS")]))
    if "mis_ratio" in r:
        print(f"MIS(CSG) / MIS(STD) = {r['mis_ratio']:.2f} (paper ~1.4)")
    lo, hi = r["l1_interval"]
    print(f"L1-density {r['l1_density']:.3f}, in [{lo:.3f}, {hi:.3f}]: {r['l1_density_in_interval']}")
    print(f"results: {os.path.join(config.output_dir, 'results.json')} ({r['seconds']} s)")


if __name__ == "__main__":
    app.run(main)
