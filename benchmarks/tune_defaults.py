"""Tune the library's defaults on the validation split (never the test split).

Each study trains variants of one method with the settings of the full
``bench_interpretability.py`` run, measures them on the *validation* split,
and merges the figures into ``benchmarks/results/tuning_<study>.json`` (one
entry per variant, so studies can be run a few variants at a time) and a
markdown table ``tuning_<study>.md``. The README says which default each
study justified.

Usage:
    python benchmarks/tune_defaults.py --study=icnn --variants=ordinary,constant_0.1
    python benchmarks/tune_defaults.py --study=explainer            # every variant
    python benchmarks/tune_defaults.py --study=csg --list           # names only
"""
import argparse
import json
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

from keras_icnn import recipes  # noqa: E402

from bench_interpretability import SETTINGS  # noqa: E402

FULL = {k: v[0] for k, v in SETTINGS.items()}
ICNN_BASE = dict(loss_weight=0.1, loss_schedule="constant", learning_rate_schedule="constant")
EXPLAINER_BASE = dict(eta=1.0, mix_trick=True, initial_p=0.5)
CSG_BASE = dict(period=3, density=0.2, learning_rate_schedule="constant")
RUNS = os.path.join(ROOT, "benchmarks", "results", "runs", "tuning")


def _icnn(name, **overrides):
    models = ("ordinary",) if name.startswith("ordinary") else ("interpretable",)
    # Variants are spelled against the pre-tuning settings, whatever the defaults are now.
    overrides = {**ICNN_BASE, **overrides}
    single = overrides.get("task") == "single"
    config = recipes.ICNNConfig(num_train=FULL["single_train" if single else "icnn_train"],
                                num_val=FULL["test"],
                                epochs=FULL["single_epochs" if single else "icnn_epochs"],
                                eval_split="validation",
                                models=models, output_dir=os.path.join(RUNS, "icnn", name),
                                verbose=2, **overrides)
    r = recipes.run_icnn_experiment(config)[models[0]]
    return {"val_accuracy": r["validation_accuracy"], "val_accuracy_by_epoch": r["val_accuracy"],
            "location_instability": r["location_instability"],
            "part_interpretability": r["part_interpretability"], "settings": overrides}


def _explainer(name, **overrides):
    performer = os.path.join(RUNS, "icnn", "ordinary", "ordinary.keras")
    if not os.path.exists(performer):
        raise FileNotFoundError(f"run `--study=icnn --variants=ordinary` first ({performer})")
    overrides = {**EXPLAINER_BASE, **overrides}
    config = recipes.ExplainerConfig(**{
        **dict(performer=performer, layer="block3_pool", num_train=FULL["icnn_train"],
               num_val=FULL["test"], epochs=FULL["explainer_epochs"], eval_split="validation",
               output_dir=os.path.join(RUNS, "explainer", name), verbose=2), **overrides})
    r = recipes.run_explainer_experiment(config)
    return {"p": r["p"], "delta_error": r["delta_error"],
            "location_instability_ratio": r["location_instability"]["ratio"],
            "settings": overrides}


def _csg(name, **overrides):
    baseline = name.endswith("std_baseline")
    overrides = {**CSG_BASE, **overrides}
    config = recipes.CSGConfig(
        num_train=FULL["csg_train"], num_test=FULL["test"], num_val=600,
        epochs=FULL["csg_epochs"], warmup=FULL["csg_warmup"], eval_split="validation",
        train_baseline=baseline, output_dir=os.path.join(RUNS, "csg", name), verbose=2,
        checkpoint=False, **overrides)
    r = recipes.run_csg_experiment(config)
    out = {"std_path_val_accuracy": r["csg"]["std_path_validation_accuracy"], "mis": r["csg"]["mis"],
           "l1_density": r["l1_density"], "settings": overrides}
    if baseline:
        out.update(baseline_val_accuracy=r["baseline"]["validation_accuracy"], baseline_mis=r["baseline"]["mis"])
    return out


STUDIES = {
    "icnn": (_icnn, {
        "ordinary": {},
        "ordinary_cosine": dict(learning_rate_schedule="cosine"),
        "constant_0.1_cosine": dict(loss_weight=0.1, loss_schedule="constant", learning_rate_schedule="cosine"),
        "constant_0.05_cosine": dict(loss_weight=0.05, loss_schedule="constant", learning_rate_schedule="cosine"),
        "constant_0.1": dict(loss_weight=0.1, loss_schedule="constant"),
        "constant_0.05": dict(loss_weight=0.05, loss_schedule="constant"),
        "ordinary_cosine_single_bird": dict(learning_rate_schedule="cosine", task="single", category="bird"),
        "ordinary_single_bird": dict(task="single", category="bird"),
        "constant_0.1_single_bird": dict(task="single", category="bird"),
        "constant_0.05_cosine_single_bird": dict(loss_weight=0.05, learning_rate_schedule="cosine",
                                                 task="single", category="bird"),
        "constant_0.02": dict(loss_weight=0.02, loss_schedule="constant"),
        "inverse_epoch_0.3": dict(loss_weight=0.3, loss_schedule="inverse_epoch"),
        "inverse_epoch_0.1": dict(loss_weight=0.1, loss_schedule="inverse_epoch"),
        "grad_ratio_0.5": dict(loss_weight=0.5, loss_schedule="grad_ratio"),
        "paper_0.01": dict(loss_weight=0.01, loss_schedule="paper"),
    }),
    "explainer": (_explainer, {
        "trick_eta1": dict(mix_trick=True, eta=1.0),
        "eta1": dict(mix_trick=False, eta=1.0),
        "eta0.3": dict(mix_trick=False, eta=0.3),
        "eta0.1": dict(mix_trick=False, eta=0.1),
        "eta0.1_p0.9": dict(mix_trick=False, eta=0.1, initial_p=0.9),
        "eta0.03_p0.9": dict(mix_trick=False, eta=0.03, initial_p=0.9),
        "eta1_p0.9": dict(mix_trick=False, eta=1.0, initial_p=0.9),
        "eta2": dict(mix_trick=False, eta=2.0),
        "eta3": dict(mix_trick=False, eta=3.0),
        "eta2_20epochs": dict(mix_trick=False, eta=2.0, epochs=20),
        "eta1_20epochs": dict(mix_trick=False, eta=1.0, epochs=20),
    }),
    "csg": (_csg, {
        "std_baseline": {},
        "density0.17": dict(density=0.17),
        "period2": dict(period=2),
        "period2_density0.17": dict(period=2, density=0.17),
        "period2_cosine_std_baseline": dict(period=2, learning_rate_schedule="cosine"),
    }),
}


def markdown(study, table):
    keys = sorted({k for row in table.values() for k in row if k not in ("settings",)
                   and not isinstance(row[k], list)})
    from keras_icnn.reporting.tables import table as write_table

    rows = [[name, json.dumps(row["settings"])]
            + [(f"{row[k]:.0f}" if k == "seconds" else f"{row[k]:.4f}")
               if isinstance(row.get(k), float) else str(row.get(k, "-")) for k in keys]
            for name, row in table.items()]
    return (f"Tuning study `{study}` (validation split; settings of the full benchmark).\n\n"
            + write_table(["variant", "settings"] + keys, rows) + "\n")


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--study", choices=sorted(STUDIES), required=True)
    p.add_argument("--variants", default="", help="comma-separated variant names (default: all)")
    p.add_argument("--list", action="store_true", help="print the study's variants and exit")
    p.add_argument("--out_dir", default=os.path.join(ROOT, "benchmarks", "results"))
    args = p.parse_args()
    fn, variants = STUDIES[args.study]
    if args.list:
        for name, settings in variants.items():
            print(name, json.dumps(settings))
        return
    names = [v for v in args.variants.split(",") if v] or list(variants)
    unknown = [v for v in names if v not in variants]
    if unknown:
        p.error(f"unknown variants {unknown} for --study={args.study}; have {list(variants)}")
    path = os.path.join(args.out_dir, f"tuning_{args.study}.json")
    table = json.load(open(path)) if os.path.exists(path) else {}
    for name in names:
        t0 = time.time()
        print(f"\n#### {args.study} / {name}: {json.dumps(variants[name])}", flush=True)
        table[name] = fn(name, **variants[name])
        table[name]["seconds"] = round(time.time() - t0, 1)
        print(f"#### {name}: " + json.dumps({k: v for k, v in table[name].items()
                                             if not isinstance(v, list)}), flush=True)
        os.makedirs(args.out_dir, exist_ok=True)
        with open(path, "w") as f:
            json.dump(table, f, indent=2)
        with open(os.path.join(args.out_dir, f"tuning_{args.study}.md"), "w") as f:
            f.write(markdown(args.study, table))
    print("\n" + markdown(args.study, table))


if __name__ == "__main__":
    main()
