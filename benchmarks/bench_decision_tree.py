"""Decision trees over a CNN's filters (SPEC §9): the paper's measures per tree depth.

For each model (a `keras-icnn-train-icnn` output directory: `ordinary.keras`,
`interpretable.keras` and the `config.json` that says which data it saw), one tree per class is
fitted on that class's training images (`--per_class` of them, the first in the split's
order) and every test image is parsed by every tree. Per depth of the parse path (1: the
root's children ... the leaf): the estimate's relative error and the fitness of contributions
(and Pearson) of the class's own tree on its test images, and the accuracy of classifying with
the trees' estimates. Writes `benchmarks/results/decision_tree.json` after each model (a rerun
skips what is there) and `decision_tree.md`.

Usage:
    python benchmarks/bench_decision_tree.py --runs=/tmp/keras_icnn_demo     # a `make demo` run
    python benchmarks/bench_decision_tree.py --seeds=0,1,2 --train_dir=/tmp/tree_runs
        # trains the demo's pair (8 epochs) at each seed where train_dir/seed<s> has none
        # (about 10 minutes a seed on 2 cores; the 15 MB models are not committed)
    python benchmarks/bench_decision_tree.py --birds_seeds=0,1,2
        # the second evaluation set: the pair trained on our birds (bench_icnn_seeds' birds
        # directory and settings, 15 epochs; about 4 minutes a seed), runs named birds_seed<s>
"""
import argparse
import json
import os
import time

import numpy as np

from bench_common import load_json, machine, save_json

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RESULTS = os.path.join(ROOT, "benchmarks", "results", "decision_tree.json")
TABLE = os.path.join(ROOT, "benchmarks", "results", "decision_tree.md")
MODELS = ("ordinary", "interpretable")


def open_run_data(run_dir):
    """The run's data source, from its config.json (the settings it trained with)."""
    from keras_icnn.recipes import ICNNConfig
    from keras_icnn.recipes.common import open_data

    with open(os.path.join(run_dir, "config.json")) as f:
        saved = json.load(f)
    fields = {k: v for k, v in saved.items() if k in ICNNConfig.__dataclass_fields__}
    config = ICNNConfig(**fields)
    return open_data(config, **config.synthetic_options()) if config.dataset == "synthetic" \
        else open_data(config)


def split_arrays(source, split, limit=None):
    images, labels = [], []
    for x, y in source.dataset(split, 128, as_supervised=True):
        images.append(x.numpy())
        labels.append(y.numpy())
        if limit and sum(map(len, labels)) >= limit:
            break
    return np.concatenate(images), np.concatenate(labels)


def measure_model(model_path, source, per_class, prior, sparsity, test_limit, depths):
    import keras

    from keras_icnn import trees

    model = keras.models.load_model(model_path, compile=False)
    x_train, y_train = split_arrays(source, "train")
    x_test, y_test = split_arrays(source, "test", test_limit)
    n_classes = source.num_classes
    t0 = time.perf_counter()
    fitted, parses, per_depth, sizes = [], [], {}, []
    for c in range(n_classes):  # one tree per class
        keep = np.flatnonzero(y_train == c)[:per_class]
        tree = trees.DecisionTree.fit(model, x_train[keep], c, prior=prior, sparsity=sparsity)
        fitted.append(tree)
        parse = tree.parse(model, x_test)
        parses.append(parse)
        own = trees.TreeParse(tree, parse.rationales.select(y_test == c), parse.paths[y_test == c])
        for depth, row in trees.depth_measures(own, depths).items():
            per_depth.setdefault(str(depth), []).append(row)
        sizes.append({"nodes": int(len(tree.parent)), "depth": tree.tree_depth,
                      "modes": len(tree.modes(1)),
                      "mode_filters": float(np.mean([tree.alpha[v].sum() for v in tree.modes(1)]))})
    fit_seconds = time.perf_counter() - t0
    rows = {}
    for depth, items in per_depth.items():
        rows[depth] = {k: float(np.mean([r[k] for r in items])) for k in ("error", "fitness",
                                                                          "pearson")}
        rows[depth]["accuracy"] = trees.tree_accuracy(
            parses, y_test, depth if depth == "leaf" else int(depth))
    cnn = model.predict(x_test, verbose=0).argmax(-1)
    return {"depths": rows, "trees": sizes, "cnn_accuracy": float((cnn == y_test).mean()),
            "train_images_per_class": int(min(per_class, np.bincount(y_train).min())),
            "test_images": int(len(y_test)), "seconds": round(fit_seconds, 1),
            "settings": {"prior": prior, "sparsity": sparsity}}


def table(state):
    from keras_icnn.reporting.tables import table as write_table

    out = []
    for run, models in state.get("runs", {}).items():
        for name, r in models.items():
            rows = []
            for depth, v in r["depths"].items():
                rows.append([depth, f"{v['error']:.3f}", f"{v['fitness']:.3f}",
                             f"{v['pearson']:.3f}", f"{v['accuracy']:.3f}"])
            modes = np.mean([t["modes"] for t in r["trees"]])
            out.append(f"**{run} / {name}** (CNN accuracy {r['cnn_accuracy']:.3f}; "
                       f"{r['train_images_per_class']} training images per class; "
                       f"{modes:.1f} modes per class at depth 1)\n\n" + write_table(
                           ["depth", "estimate error ↓", "fitness ↑", "Pearson ↑",
                            "tree accuracy ↑"], rows))
    return "\n\n".join(out) + "\n"


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", default="",
                        help="comma-separated train_icnn output directories")
    parser.add_argument("--seeds", default="", help="train (where missing) and measure the "
                                                    "demo's pair at these seeds")
    parser.add_argument("--train_dir", default="/tmp/keras_icnn_tree_runs",
                        help="where --seeds' runs are trained (seed<s> each)")
    parser.add_argument("--epochs", type=int, default=8, help="--seeds' training epochs")
    parser.add_argument("--birds_seeds", default="",
                        help="train (where missing) and measure the pair on the birds (the "
                             "second evaluation set) at these seeds")
    parser.add_argument("--birds_dir", default="/tmp/keras_icnn_birds",
                        help="the birds' CUB directory (written there once when missing)")
    parser.add_argument("--birds_epochs", type=int, default=15,
                        help="--birds_seeds' training epochs (bench_icnn_seeds' birds setting)")
    parser.add_argument("--per_class", type=int, default=300,
                        help="training images per class the trees are fitted on")
    parser.add_argument("--test_images", type=int, default=0, help="0: the whole test split")
    parser.add_argument("--prior", type=float, default=0.3,
                        help="the trees' λ (0.3: the smallest of 0.1/0.3/0.6/1.0 with at most "
                             "20 modes per class on average, a rule on the training fit alone)")
    parser.add_argument("--sparsity", type=float, default=0.01, help="the trees' γ")
    parser.add_argument("--depths", default="1,2,3,5,10,20",
                        help="path depths measured (and the leaf)")
    parser.add_argument("--out", default=RESULTS)
    args = parser.parse_args()
    state = load_json(args.out)
    runs = [r for r in args.runs.split(",") if r]
    for seed in [int(s) for s in args.seeds.split(",") if s]:
        run_dir = os.path.join(args.train_dir, f"seed{seed}")
        if not os.path.isfile(os.path.join(run_dir, "results.json")):
            from keras_icnn.recipes import ICNNConfig, run_icnn_experiment

            run_icnn_experiment(ICNNConfig(output_dir=run_dir, epochs=args.epochs, seed=seed,
                                           verbose=0))
        runs.append(run_dir)
    for seed in [int(s) for s in args.birds_seeds.split(",") if s]:
        run_dir = os.path.join(args.train_dir, f"birds_seed{seed}")
        if not os.path.isfile(os.path.join(run_dir, "results.json")):
            from bench_icnn_seeds import DATASETS, birds_dir
            from keras_icnn.recipes import ICNNConfig, run_icnn_experiment

            run_icnn_experiment(ICNNConfig(
                output_dir=run_dir, epochs=args.birds_epochs, seed=seed, verbose=0,
                data_dir=birds_dir(args.birds_dir), **DATASETS["birds"]))
        runs.append(run_dir)
    if not runs:
        parser.error("give --runs, --seeds or --birds_seeds")
    for run_dir in runs:
        name = os.path.basename(os.path.normpath(run_dir))
        source = open_run_data(run_dir)
        for model in MODELS:
            if model in state.get("runs", {}).get(name, {}):
                continue
            r = measure_model(os.path.join(run_dir, f"{model}.keras"), source, args.per_class,
                              args.prior, args.sparsity, args.test_images or None,
                              [int(d) for d in args.depths.split(",")])
            state.setdefault("runs", {}).setdefault(name, {})[model] = r
            state.update(machine=machine(), date=time.strftime("%Y-%m-%d"))
            save_json(args.out, state)
            print(f"{name}/{model}: " + ", ".join(
                f"depth {d}: err {v['error']:.3f} fit {v['fitness']:.3f} acc {v['accuracy']:.3f}"
                for d, v in r["depths"].items()), flush=True)
    with open(os.path.join(os.path.dirname(args.out), os.path.basename(TABLE)), "w") as f:
        f.write(table(state))


if __name__ == "__main__":
    main()
