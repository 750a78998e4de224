r"""Train a CNN with class-specific gates (CSG, Liang et al. 2020).

Examples:
    keras-icnn-train-csg --dataset=cub --data_dir=/data/CUB_200_2011 --strategy=mirrored
    keras-icnn-train-csg --backbone=resnet50 --weights=imagenet --dataset=folder \
        --data_dir=~/photos --image_size=224
    keras-icnn-train-csg --strategy=mirrored --num_cpu_devices=2 --epochs=6 --train_baseline
    TF_CONFIG='{"cluster": {"worker": ["host1:2222", "host2:2222"]}, "task": {"type": "worker", "index": 0}}' \
        keras-icnn-train-csg --strategy=multi_worker

Alternates STD and CSG epochs (Algorithm 1), checkpoints every epoch with
keras.callbacks.BackupAndRestore (a killed run resumes at the same epoch,
phase and gate matrix), and writes results.json (STD- and CSG-path test
accuracy, MIS of the CSG model and of the --train_baseline STD model,
L1-density and whether it lies in [1/C, density]), gate.npy, gate.png and
csg.keras into --output_dir.
"""
from absl import flags


def define_flags(module_name=None):
    """The command's flags: one per field of :class:`~keras_icnn.recipes.CSGConfig`."""
    from keras_icnn.recipes import CSGConfig, define_flags as define

    define(CSGConfig, module_name=module_name)


def main(argv):
    del argv
    from keras_icnn import recipes

    FLAGS = flags.FLAGS
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
    elif "baseline" in r:
        print("MIS(CSG) / MIS(STD) undefined: the STD baseline's MIS is 0")
    lo, hi = r["l1_interval"]
    print(f"L1-density {r['l1_density']:.3f}, in [{lo:.3f}, {hi:.3f}]: {r['l1_density_in_interval']}")
    print(recipes.common.results_line(config, r))


def run():
    """``train_csg``'s entry point (``keras-icnn-train-csg``)."""
    from keras_icnn.cli import run_command

    run_command(__doc__, define_flags, main)
