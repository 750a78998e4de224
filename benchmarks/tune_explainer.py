"""Explainer defaults on two datasets' validation splits (issue 26).

Each variant distils the same performer per dataset — the ordinary CNN of
``bench_icnn_seeds.py``'s ``<dataset>/validation/argmax/0`` run (retrained when
its file is gone: same seed, order and initial weights) — with
``recipes.ExplainerConfig`` overrides, measures p, Δerror and location
instability (explainer / performer top conv) on the **validation** split, and
keeps :meth:`ExplainerDistiller.diagnose`'s per-epoch figures (−MI, λ, dead
filters, peaks of conv-interp-1/2). Results merge into
``benchmarks/results/tuning_explainer_datasets.json`` as they finish (a
finished ``dataset/variant`` is skipped when restarted).

A default changes only if the new value is at least as good on both datasets.

Usage:
    python benchmarks/tune_explainer.py --datasets=synthetic,birds --variants=default,raw
    python benchmarks/tune_explainer.py --summary
"""
import argparse
import json
import os
import platform
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

import bench_icnn_seeds  # noqa: E402

RESULTS = os.path.join(ROOT, "benchmarks", "results", "tuning_explainer_datasets.json")
EPOCHS = 20  # the explainer recipe's default
# ExplainerConfig overrides; "default" is the library's defaults as they are now.
# Every variant tried before the alpha floor (issue 26) ran without it: they name
# alpha_floor=0 so that they still mean what they measured.
VARIANTS = {
    "default": {},
    # The defaults until issue 26's tuning (no alpha floor): "default" rows measured before
    # the change are stored under this name.
    "floor_0": {"alpha_floor": 0.0},
    # the filter losses on the maps as they are, or at mean activation 1; no filter loss
    "raw": {"loss_scale": "raw", "alpha_floor": 0.0},
    "unit_mean": {"loss_scale": "unit_mean", "alpha_floor": 0.0},
    "fraction_0": {"filter_fraction": 0.0, "alpha_floor": 0.0},
    "fraction_0.3": {"filter_fraction": 0.3, "alpha_floor": 0.0},
    "lr_1e-4": {"learning_rate": 1e-4, "alpha_floor": 0.0},
    "lr_1e-4_eta_3": {"learning_rate": 1e-4, "eta": 3.0, "alpha_floor": 0.0},
    "fraction_0.03": {"filter_fraction": 0.03, "alpha_floor": 0.0},
    "epochs_30": {"epochs": 30, "alpha_floor": 0.0},
    "eta_2": {"eta": 2.0, "alpha_floor": 0.0},
    "p_0.8": {"initial_p": 0.8, "alpha_floor": 0.0},
    # lr 1e-4 keeps conv-interp-1 alive, but at 10 x 1e-4 per step p's logit cannot travel
    # far: p_learning_rate gives p the speed it has at 1e-3.
    "lr_1e-4_plr_1e-3": {"learning_rate": 1e-4, "p_learning_rate": 1e-3, "alpha_floor": 0.0},
    "lr_1e-4_plr_1e-3_eta_3": {"learning_rate": 1e-4, "p_learning_rate": 1e-3, "eta": 3.0, "alpha_floor": 0.0},
    "lr_3e-4_plr_1e-3": {"learning_rate": 3e-4, "p_learning_rate": 1e-3, "alpha_floor": 0.0},
    "lr_1e-4_plr_1e-3_epochs_30": {"learning_rate": 1e-4, "p_learning_rate": 1e-3, "epochs": 30, "alpha_floor": 0.0},
    # With p free to move at lr 1e-4 it settles lower (0.47 at eta 1): eta sets where.
    "lr_1e-4_plr_1e-3_eta_10": {"learning_rate": 1e-4, "p_learning_rate": 1e-3, "eta": 10.0, "alpha_floor": 0.0},
    "eta_5": {"eta": 5.0, "alpha_floor": 0.0},
    # The reconstruction blew up in epochs 3-6 of every run above (train loss 0.05 -> 10,
    # validation 2e3): a dying channel's norm-layer alpha decays to ~0 and the one image it
    # still fires on is multiplied by 1 / alpha. A floor at a fraction of the mean alpha:
    "floor_0.01": {"alpha_floor": 0.01},
    "floor_0.1": {"alpha_floor": 0.1},
    "floor_0.01_lr_1e-4_plr_1e-3": {"alpha_floor": 0.01, "learning_rate": 1e-4, "p_learning_rate": 1e-3},
    "floor_0.1_lr_1e-4_plr_1e-3": {"alpha_floor": 0.1, "learning_rate": 1e-4, "p_learning_rate": 1e-3},
    # Issue 48: the performer's top conv is 57% silent on the birds, and conv-interp-1 copied
    # those dead ReLUs. copy_silent = every filter copied (the rule until then); fresh_silent =
    # the filters silent on 8 training batches keep a fresh initialisation (the new default).
    "copy_silent": {"copy_silent_filters": True, "learning_rate": 1e-3, "p_learning_rate": 0.0},
    "fresh_silent": {"copy_silent_filters": False, "learning_rate": 1e-3, "p_learning_rate": 0.0},
    # Filters still die in the first epoch with fresh_silent (42% after one epoch on the
    # synthetic data): Adam moves every weight by ~lr per step whatever its gradient, large
    # against the copied kernels' scale. The lower rate that kept more alive (issue 26), with p
    # kept at its speed:
    "fresh_silent_lr_1e-4_plr_1e-3": {"copy_silent_filters": False, "learning_rate": 1e-4,
                                      "p_learning_rate": 1e-3},
}
DIAGNOSTICS = ("neg_mi_1", "neg_mi_2", "dead_1", "dead_2", "raw_peak_1", "raw_peak_2",
               "lambda_mean_1", "lambda_mean_2", "score_spread_2")


def run_one(dataset, variant, work, birds, split="validation"):
    from keras_icnn import recipes

    icnn_results = json.load(open(bench_icnn_seeds.RESULTS))
    performer = bench_icnn_seeds.model_path(icnn_results, (f"{dataset}/validation/argmax/0"
                                            if split == "validation" else f"{dataset}/test/default/0"),
                                            "ordinary", work, birds)
    data = {k: v for k, v in bench_icnn_seeds.DATASETS[dataset].items()}
    if dataset == "birds":
        data["data_dir"] = bench_icnn_seeds.birds_dir(birds)
    settings = {"epochs": EPOCHS, **VARIANTS[variant]}
    r = recipes.run_explainer_experiment(recipes.ExplainerConfig(
        performer=performer, layer="block3_pool", eval_split=split, seed=0, verbose=2,
        output_dir=os.path.join(work, f"explainer_{dataset}_{split}_{variant}"), **data, **settings))
    li = r["location_instability"]
    return {"p": r["p"], "delta_error": r["delta_error"],
            "location_instability_ratio": li["ratio"],
            "location_instability": {"explainer": li["explainer"],
                                     "performer_top_conv": li["performer_top_conv"]},
            f"performer_{split}_error": r[f"performer_{split}_error"],
            "final_train": r["final_train"],
            "diagnostics": {k: r["diagnostics"][k] for k in DIAGNOSTICS if k in r["diagnostics"]},
            "conv_interp_1_copied_filters": r.get("conv_interp_1_copied_filters"),
            "overrides": VARIANTS[variant], "seconds": r["seconds"],
            "date": time.strftime("%Y-%m-%d"),
            "machine": f"{platform.machine()}, {os.cpu_count()} CPU cores"}


def summary(results):
    from keras_icnn.reporting.tables import table

    rows = []
    for key, r in sorted(results.items()):
        dataset, variant = key.split("/")[:2]
        variant += " (test)" if key.endswith("/test") else ""
        d = r["diagnostics"]
        last = lambda k: d[k][-1] if d.get(k) else float("nan")  # noqa: E731
        rows.append([dataset, variant, f"`{json.dumps(r['overrides'])}`", f"{r['p']:.3f}",
                     f"{r['delta_error']:+.4f}", f"{r['location_instability_ratio']:.3f}",
                     f"{last('neg_mi_2'):.2e}", f"{last('dead_1'):.2f} / {last('dead_2'):.2f}"])
    return table(["dataset", "variant", "overrides", "p", "Δerror",
                  "location instability, explainer / performer", "final −MI conv-interp-2",
                  "dead filters conv-interp-1 / -2 (last epoch)"], rows)


def main():
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--datasets", default="synthetic,birds", help="comma-separated: synthetic, birds")
    p.add_argument("--variants", default="default,raw", help=f"comma-separated of {list(VARIANTS)}")
    p.add_argument("--split", default="validation", choices=("validation", "test"),
                   help="tune on validation; test only for the defaults' final figures")
    p.add_argument("--work", default="/tmp/keras_icnn_seeds", help="models and logs go here")
    p.add_argument("--birds_dir", default="/tmp/keras_icnn_birds")
    p.add_argument("--results", default=RESULTS)
    p.add_argument("--summary", action="store_true", help="print the table and exit")
    args = p.parse_args()
    results = json.load(open(args.results)) if os.path.isfile(args.results) else {}
    if args.summary:
        print(summary(results))
        return
    datasets = [d for d in args.datasets.split(",") if d]
    variants = [v for v in args.variants.split(",") if v]
    if set(datasets) - set(bench_icnn_seeds.DATASETS) or set(variants) - set(VARIANTS):
        p.error(f"--datasets must name some of {list(bench_icnn_seeds.DATASETS)} and --variants "
                f"some of {list(VARIANTS)}. Received: {args.datasets!r}, {args.variants!r}")
    for dataset in datasets:
        for variant in variants:
            key = f"{dataset}/{variant}" + ("" if args.split == "validation" else "/test")
            if key in results:
                print(f"{key}: done already", flush=True)
                continue
            print(f"== {key}: {json.dumps(VARIANTS[variant])} ==", flush=True)
            value = run_one(dataset, variant, args.work, args.birds_dir, args.split)
            results = bench_icnn_seeds.store(args.results, key, value)
            print(key, json.dumps({k: value[k] for k in ("p", "delta_error",
                                                         "location_instability_ratio")}),
                  flush=True)
    print(summary(results))


if __name__ == "__main__":
    main()
