"""The multi-category ICNN pair over seeds, datasets and variants: mean ± std, written as it goes.

Each run trains an ordinary and an interpretable CNN (``recipes.run_icnn_experiment``, the
bench's full settings unless a variant overrides them) and records accuracy, location
instability and part interpretability of both, and their ratios. Results go to
``benchmarks/results/icnn_seeds.json`` after every run; a run already there is skipped
(restart the script to continue). ``--summary`` prints mean ± std per (dataset, split,
variant) without training.

Datasets:
- ``synthetic``: the bench's synthetic part data (4800 / 600 / 1200 images);
- ``birds``: the second evaluation set, ``keras_icnn.data.synthetic_birds`` written as a
  CUB-200-2011 directory (6 species × 400 scenes; 1200 train / 240 validation carved from
  CUB's training files / 960 test), read with ``--dataset=cub``; generated once under
  ``--birds_dir``.

Variants (``--variants``): ``default`` (the library's defaults), ``legacy_order`` (the
training order of 51651e6: the shuffle seeded with TF's default global seed, i.e. the
pipeline built before ``keras.utils.set_random_seed`` — the regression of issue 25),
``shared_pipeline`` (both models iterate one pipeline, as before issue 25's fix: the
interpretable CNN trains on epochs E+1..2E of the order, the ordinary one on 1..E), and the
tuning candidates of ``VARIANTS``.

A variant that changes only the interpretable CNN (``ICNN_ONLY`` overrides) trains only
that model when a run of the same dataset, split and seed already has the ordinary CNN's
figures (same order, same initial weights: ``recipes.icnn.fit`` gives each model its own
pipeline), and takes the ordinary figures from there (``"ordinary_from"`` names the run).

Usage:
    python benchmarks/bench_icnn_seeds.py --datasets=synthetic --seeds=0,1,2
    python benchmarks/bench_icnn_seeds.py --datasets=synthetic --seeds=0 --variants=legacy_order
    python benchmarks/bench_icnn_seeds.py --datasets=synthetic,birds --split=validation \\
        --variants=default,weight_0.1
    python benchmarks/bench_icnn_seeds.py --summary
"""
import argparse
import json
import os
import platform
import time

import bench_common

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

RESULTS = os.path.join(ROOT, "benchmarks", "results", "icnn_seeds.json")
BIRDS = dict(num_species=6, per_species=400, size=128, seed=0, train_fraction=0.6)
DATASETS = {
    "synthetic": dict(num_train=4800, num_val=600, num_test=1200),
    "birds": dict(dataset="cub", num_train=0, num_val=240, num_test=0),
}
# Overrides that do not change the ordinary CNN (its training and figures).
ICNN_ONLY = {"loss_weight", "loss_schedule", "mu", "gradient", "gradient_form"}
# Tuning candidates (ICNNConfig overrides), tried on the validation splits only.
VARIANTS = {
    "default": {},
    # mu="argmax" was the default until issue 25's tuning (centroid won on both validation splits)
    "argmax": {"mu": "argmax"},
    "legacy_order": {"mu": "argmax"},
    "shared_pipeline": {"mu": "argmax"},
    "argmax_weight_0.1": {"loss_weight": 0.1, "mu": "argmax"},
    "argmax_schedule_paper": {"loss_schedule": "paper", "mu": "argmax"},
    "weight_0.1": {"loss_weight": 0.1},
    "schedule_paper": {"loss_schedule": "paper"},
    "epochs_25": {"epochs": 25},
}


def birds_dir(path):
    """The birds' CUB directory (written once; a marker file says it is complete)."""
    from keras_icnn.data import synthetic_birds

    marker = os.path.join(path, "WRITTEN.json")
    if not os.path.isfile(marker):
        synthetic_birds.write_cub_birds(path, verbose=1, **BIRDS)
        bench_common.save_json(marker, BIRDS, indent=None)
    return path


def _shared_pipeline_fit(config, source, strategy, models):
    """``recipes.icnn.fit`` before issue 25's fix: one pipeline for both models."""
    import keras

    from keras_icnn.recipes.common import datasets

    train, val = datasets(config, source, strategy)
    histories = {}
    for name, model in models.items():
        keras.utils.set_random_seed(config.seed)
        histories[name] = model.fit(train, validation_data=val, epochs=config.epochs,
                                    verbose=config.verbose, shuffle=False).history
    return histories


def ordinary_source(results, dataset, split, seed, variant):
    """The key of a finished run whose ordinary CNN equals ``variant``'s, or None."""
    if variant in ("legacy_order", "shared_pipeline") or set(VARIANTS[variant]) - ICNN_ONLY:
        return None
    for name, overrides in VARIANTS.items():
        key = f"{dataset}/{split}/{name}/{seed}"
        if (key in results and name != "legacy_order" and not set(overrides) - ICNN_ONLY
                and "ordinary_from" not in results[key]):
            return key
    return None


def run_one(dataset, seed, variant, split, work, birds, ordinary_from=None, results=None):
    import tensorflow as tf

    from keras_icnn import recipes
    from keras_icnn.recipes import icnn

    kwargs = dict(DATASETS[dataset], seed=seed, eval_split=split, verbose=2,
                  output_dir=os.path.join(work, f"{dataset}_{variant}_{split}_{seed}"))
    if dataset == "birds":
        kwargs["data_dir"] = birds_dir(birds)
    kwargs.update(VARIANTS[variant])
    if ordinary_from:
        kwargs["models"] = ("interpretable",)
    original, original_fit = icnn.datasets, icnn.fit
    if variant == "legacy_order":
        def legacy(config, source, strategy=None, **kw):
            tf.random.set_seed(None)  # what 51651e6's order came from: no global seed yet
            return original(config, source, strategy, **kw)
        icnn.datasets = legacy
    if variant in ("legacy_order", "shared_pipeline"):
        icnn.fit = _shared_pipeline_fit
    try:
        r = recipes.run_icnn_experiment(recipes.ICNNConfig(**kwargs))
    finally:
        icnn.datasets, icnn.fit = original, original_fit
    acc = f"{split}_accuracy"
    keys = (acc, "location_instability", "part_interpretability")
    out = {"interpretable": {k: r["interpretable"][k] for k in keys}, "seconds": r["seconds"],
           "overrides": VARIANTS[variant], "date": time.strftime("%Y-%m-%d"),
           "machine": f"{platform.machine()}, {os.cpu_count()} CPU cores"}
    if ordinary_from:
        out["ordinary"], out["ordinary_from"] = results[ordinary_from]["ordinary"], ordinary_from
    else:
        out["ordinary"] = {k: r["ordinary"][k] for k in keys}
    o, i = out["ordinary"], out["interpretable"]
    out["ratios"] = {k: i[k] / max(o[k], 1e-12) for k in keys[1:]}
    out["accuracy_gap"] = o[acc] - i[acc]
    return out


def store(path, key, value):
    """Add one run to the results file (re-read first: another process may have added some)."""
    results = bench_common.load_json(path)
    results[key] = value
    bench_common.save_json(path, results, indent=2, sort_keys=True)
    return results


def ensure(dataset, split, variant, seeds, work="/tmp/keras_icnn_seeds",
           birds="/tmp/keras_icnn_birds", path=RESULTS):
    """The results file after running what it lacks of ``dataset/split/variant/seed``."""
    results = bench_common.load_json(path)
    for seed in seeds:
        key = f"{dataset}/{split}/{variant}/{seed}"
        if key in results:
            print(f"{key}: done already", flush=True)
            continue
        source = ordinary_source(results, dataset, split, seed, variant)
        print(f"== {key} ==" + (f" (the ordinary CNN's figures from {source})"
                                if source else ""), flush=True)
        value = run_one(dataset, seed, variant, split, work, birds, source, results)
        results = store(path, key, value)
        print(key, json.dumps(value["ratios"]), flush=True)
    return results


def model_path(results, key, name, work="/tmp/keras_icnn_seeds", birds="/tmp/keras_icnn_birds"):
    """Where run ``key``'s ``name`` ("ordinary" / "interpretable") CNN is saved; a missing
    ordinary CNN is retrained alone (the same model: same seed, order and initial weights)."""
    if name == "ordinary":
        key = results[key].get("ordinary_from", key)
    dataset, split, variant, seed = key.split("/")
    path = os.path.join(work, f"{dataset}_{variant}_{split}_{seed}", f"{name}.keras")
    if not os.path.isfile(path):
        if name != "ordinary":
            raise FileNotFoundError(f"{path} is gone: delete {key!r} from the results and rerun")
        print(f"{path} is gone: retraining the ordinary CNN of {key}", flush=True)
        _retrain_ordinary(dataset, int(seed), variant, split, work, birds)
    return path


def _retrain_ordinary(dataset, seed, variant, split, work, birds):
    from keras_icnn import recipes

    kwargs = dict(DATASETS[dataset], seed=seed, eval_split=split, verbose=2,
                  train=("ordinary",), **VARIANTS[variant],
                  output_dir=os.path.join(work, f"{dataset}_{variant}_{split}_{seed}"))
    if dataset == "birds":
        kwargs["data_dir"] = birds_dir(birds)
    recipes.run_icnn_experiment(recipes.ICNNConfig(**kwargs))


def summary(results):
    import numpy as np

    groups = {}
    for key, r in results.items():
        dataset, split, variant, _ = key.split("/")
        groups.setdefault((dataset, split, variant), []).append(r)
    rows = []
    for (dataset, split, variant), runs in sorted(groups.items()):
        def stat(fn):
            v = np.array([fn(r) for r in runs], float)
            return f"{v.mean():.3f} ± {v.std(ddof=1) if len(v) > 1 else 0:.3f}"
        rows.append([dataset, split, variant, len(runs),
                     stat(lambda r: r["ratios"]["part_interpretability"]),
                     stat(lambda r: r["ratios"]["location_instability"]),
                     stat(lambda r: r["accuracy_gap"]),
                     f"{stat(lambda r: r['interpretable']['part_interpretability'])} / "
                     f"{stat(lambda r: r['ordinary']['part_interpretability'])}"])
    from keras_icnn.reporting.tables import table

    return table(["dataset", "split", "variant", "seeds",
                  "part interpretability, interp / ordinary",
                  "location instability, interp / ordinary", "accuracy, ordinary - interp",
                  "part interpretability, interp / ordinary (values)"], rows)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--datasets", default="synthetic", help="comma-separated: synthetic, birds")
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--variants", default="default", help=f"comma-separated of {list(VARIANTS)}")
    p.add_argument("--split", default="test", choices=("validation", "test"))
    p.add_argument("--work", default="/tmp/keras_icnn_seeds", help="models and logs go here")
    p.add_argument("--birds_dir", default="/tmp/keras_icnn_birds",
                   help="where the birds' CUB directory is written once")
    p.add_argument("--results", default=RESULTS)
    p.add_argument("--summary", action="store_true", help="print the table and exit")
    args = p.parse_args()
    results = json.load(open(args.results)) if os.path.isfile(args.results) else {}
    if args.summary:
        print(summary(results))
        return
    datasets = [d for d in args.datasets.split(",") if d]
    variants = [v for v in args.variants.split(",") if v]
    if set(datasets) - set(DATASETS) or set(variants) - set(VARIANTS):
        p.error(f"--datasets must name some of {list(DATASETS)} and --variants some of "
                f"{list(VARIANTS)}. Received: {args.datasets!r}, {args.variants!r}")
    seeds = [int(s) for s in args.seeds.split(",") if s]
    for dataset in datasets:
        for variant in variants:
            results = ensure(dataset, args.split, variant, seeds, args.work, args.birds_dir,
                             args.results)
    print(summary(results))


if __name__ == "__main__":
    main()
