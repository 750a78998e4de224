"""Do the methods deliver what the papers claim? One command, fixed seeds, synthetic part data.

Trains on the synthetic part data (multi-category, plus single-category for two
categories): an ordinary CNN and an interpretable CNN of the same backbone, a
CSG CNN with its STD baseline, and an explainer over the ordinary CNN; evaluates
all of them on the test split with keras_icnn.metrics; writes
benchmarks/results/interpretability.json and interpretability.md (our figures
next to the papers').

Usage:
    python benchmarks/bench_interpretability.py            # full run (about 25 minutes here)
    python benchmarks/bench_interpretability.py --quick    # smaller, under 8 minutes
"""
import argparse
import json
import os
import platform
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from keras_icnn import recipes  # noqa: E402

SETTINGS = {
    # key: (full, quick)
    "icnn_train": (4800, 2400), "icnn_epochs": (15, 4),
    "single_train": (2400, 1200), "single_epochs": (10, 2),
    "csg_train": (3000, 1500), "csg_epochs": (30, 4), "csg_warmup": (3, 1),
    "explainer_epochs": (20, 3),
    "test": (1200, 600),
}

# (comparison, the papers' figure, ours from the results, our target for the defaults or None)
PAPERS = [
    ("Location instability, interpretable / ordinary", "ICNN Tables 3-5: ≈0.62 (e.g. 0.125 / 0.197 AlexNet, Pascal-Part)",
     lambda r: r["location_instability"]["interpretable"] / r["location_instability"]["ordinary"],
     ("≤ 0.6", lambda v: v <= 0.6)),
    ("Part interpretability, interpretable / ordinary", "ICNN Tables 1-2: 1.5-1.9 (VGG-16 0.762 / 0.504)",
     lambda r: r["part_interpretability"]["interpretable"] / r["part_interpretability"]["ordinary"],
     ("≥ 1.5", lambda v: v >= 1.5)),
    ("Accuracy, ordinary - interpretable", "ICNN Tables 6-7: a few points at most",
     lambda r: r["accuracy"]["ordinary"] - r["accuracy"]["interpretable"],
     ("≤ 0.03", lambda v: v <= 0.03)),
    ("Single-category location instability, interpretable / ordinary (mean of bird, cat)",
     "ICNN Tables 3-4: ≈0.6 (single-category Pascal-Part / CUB)",
     lambda r: float(sum(c["location_instability"]["interpretable"] / c["location_instability"]["ordinary"]
                         for c in r["single_category"].values()) / len(r["single_category"])),
     ("≤ 0.6", lambda v: v <= 0.6)),
    ("Single-category accuracy, ordinary - interpretable (worst of bird, cat)",
     "ICNN Table 7: a few points at most",
     lambda r: max(c["accuracy"]["ordinary"] - c["accuracy"]["interpretable"]
                   for c in r["single_category"].values()),
     ("≤ 0.03", lambda v: v <= 0.03)),
    ("MIS, CSG / STD", "CSG Table 1: 0.1603 / 0.1119 = 1.43 (CIFAR-10, ResNet-20)",
     lambda r: r["mis"]["csg"] / r["mis"]["std"], ("≥ 1.4", lambda v: v >= 1.4)),
    ("MIS ceiling / MIS(STD): the largest CSG / STD ratio possible",
     "CSG Table 1: 0.3251 / 0.1119 = 2.9 (ceiling H_b(1/10) for 10 classes)",
     lambda r: r["mis"]["ceiling"] / r["mis"]["std"], None),
    ("MIS headroom closed by CSG, (CSG - STD) / (ceiling - STD)",
     "CSG Table 1: (0.1603 - 0.1119) / (0.3251 - 0.1119) = 0.23",
     lambda r: (r["mis"]["csg"] - r["mis"]["std"]) / max(r["mis"]["ceiling"] - r["mis"]["std"], 1e-12),
     None),
    ("Accuracy, CSG STD path - STD baseline", "CSG Table 1: +0.0023 (0.9192 vs 0.9169)",
     lambda r: r["accuracy"]["csg_std_path"] - r["accuracy"]["std_baseline"],
     ("≥ -0.01", lambda v: v >= -0.01)),
    ("L1-density of G", "CSG Table 1: 0.1000 in [0.1, 0.1]", lambda r: r["l1_density"], None),
    ("Explainer p", "Explainer Table 2: 0.80-0.96 (VGG performers)", lambda r: r["explainer"]["p"],
     ("≥ 0.8", lambda v: v >= 0.8)),
    ("Explainer Δerror", "Explainer Table 3: +0.0014 to +0.0102 (Pascal-Part multi-category)",
     lambda r: r["explainer"]["delta_error"], ("≤ 0.01", lambda v: v <= 0.01)),
    ("Performer error (test)", "Explainer Table 3, Pascal-Part multi-category: "
     "6.12% / 5.95% / 2.03% (VGG-M / VGG-S / VGG-16)",
     lambda r: r["explainer"]["performer_error"], None),
    ("Explainer error: the performer's frozen classifier on the reconstructed hidden features",
     "Explainer Table 3: 6.62% / 6.97% / 2.17%",
     lambda r: r["explainer"]["explainer_error"], None),
    ("Explainer+cls error: same explainer, classification loss instead of reconstruction",
     "Explainer Table 3: 5.22% / 5.43% / 2.49%",
     lambda r: r["explainer"]["explainer_cls_error"], None),
    ("Location instability, explainer / performer top conv", "Explainer Table 1: 0.36-0.69",
     lambda r: r["location_instability"]["explainer"] / r["location_instability"]["performer_top_conv"],
     ("≤ 0.7", lambda v: v <= 0.7)),
]


def run(quick, out_dir, seed):
    pick = {k: v[1 if quick else 0] for k, v in SETTINGS.items()}
    t0 = time.time()
    work = os.path.join(out_dir, "runs")
    icnn = recipes.run_icnn_experiment(recipes.ICNNConfig(
        num_train=pick["icnn_train"], num_test=pick["test"], epochs=pick["icnn_epochs"],
        seed=seed, output_dir=os.path.join(work, "icnn_multi"), verbose=2))
    singles = {}
    for category in ("bird", "cat"):
        singles[category] = recipes.run_icnn_experiment(recipes.ICNNConfig(
            task="single", category=category, num_train=pick["single_train"],
            num_test=pick["test"], epochs=pick["single_epochs"], seed=seed,
            output_dir=os.path.join(work, f"icnn_single_{category}"), verbose=2))
    csg = recipes.run_csg_experiment(recipes.CSGConfig(
        num_train=pick["csg_train"], num_test=pick["test"], epochs=pick["csg_epochs"],
        warmup=pick["csg_warmup"], train_baseline=True, seed=seed,
        output_dir=os.path.join(work, "csg"), verbose=2))
    explainer = recipes.run_explainer_experiment(recipes.ExplainerConfig(
        performer=os.path.join(work, "icnn_multi", "ordinary.keras"), layer="block3_pool",
        num_train=pick["icnn_train"], num_test=pick["test"], epochs=pick["explainer_epochs"],
        explainer_cls=True, seed=seed, output_dir=os.path.join(work, "explainer"), verbose=2))
    o, i = icnn["ordinary"], icnn["interpretable"]
    results = {
        "location_instability": {
            "ordinary": o["location_instability"], "interpretable": i["location_instability"],
            "performer_top_conv": explainer["location_instability"]["performer_top_conv"],
            "explainer": explainer["location_instability"]["explainer"]},
        "part_interpretability": {"ordinary": o["part_interpretability"],
                                  "interpretable": i["part_interpretability"]},
        "accuracy": {"ordinary": o["test_accuracy"], "interpretable": i["test_accuracy"],
                     "csg_std_path": csg["csg"]["std_path_test_accuracy"],
                     "std_baseline": csg["baseline"]["test_accuracy"]},
        "mis": {"std": csg["baseline"]["mis"], "csg": csg["csg"]["mis"],
                "ceiling": csg["mis_ceiling"]},
        "l1_density": csg["l1_density"],
        "explainer": {"p": explainer["p"], "delta_error": explainer["delta_error"],
                      "performer_error": explainer["performer_test_error"],
                      "explainer_error": explainer["reconstruction_test_error"],
                      "explainer_cls_error": explainer["explainer_cls_test_error"],
                      "reconstructs": explainer["reconstructs"],
                      "classified_by": explainer["classified_by"]},
        "single_category": {
            c: {"location_instability": {"ordinary": r["ordinary"]["location_instability"],
                                         "interpretable": r["interpretable"]["location_instability"]},
                "part_interpretability": {"ordinary": r["ordinary"]["part_interpretability"],
                                          "interpretable": r["interpretable"]["part_interpretability"]},
                "accuracy": {"ordinary": r["ordinary"]["test_accuracy"],
                             "interpretable": r["interpretable"]["test_accuracy"]}}
            for c, r in singles.items()},
        "quick": quick,
        "seconds": round(time.time() - t0, 1),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPU cores, no GPU",
        "date": time.strftime("%Y-%m-%d"),
    }
    return results


def markdown(results):
    lines = [f"Synthetic part data, {'--quick' if results['quick'] else 'full'} run, "
             f"{results['date']}, {results['machine']}, {results['seconds']:.0f} s.", "",
             "| comparison | ours | target | papers |", "| --- | --- | --- | --- |"]
    for name, paper, fn, target in PAPERS:
        value = fn(results)
        verdict = "-" if target is None else f"{target[0]}: {'met' if target[1](value) else 'MISSED'}"
        lines.append(f"| {name} | {value:.4f} | {verdict} | {paper} |")
    return "\n".join(lines) + "\n"


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="smaller data and fewer epochs (< 8 min)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out_dir", default=os.path.join(ROOT, "benchmarks", "results"))
    args = p.parse_args()
    results = run(args.quick, args.out_dir, args.seed)
    os.makedirs(args.out_dir, exist_ok=True)
    name = "interpretability_quick" if args.quick else "interpretability"
    with open(os.path.join(args.out_dir, f"{name}.json"), "w") as f:
        json.dump(results, f, indent=2)
    table = markdown(results)
    with open(os.path.join(args.out_dir, f"{name}.md"), "w") as f:
        f.write(table)
    print("\n" + table)


if __name__ == "__main__":
    main()
