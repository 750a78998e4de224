"""Which explanation is faithful to which model? Deletion, insertion and MuFidelity (SPEC §8).

For each model and explanation method, on the first ``--images`` test images (the explained
class is each image's prediction): the mean deletion AUC (lower is better), insertion AUC and
MuFidelity (higher is better), each with a 95% percentile-bootstrap interval over images, and
per pair of methods of one model the paired bootstrap of the difference, so "most faithful"
is said only where the interval excludes 0.

Models:
* ``ordinary`` / ``interpretable``: the ICNN pair on the synthetic part data (6 categories),
  trained here once with ``keras-icnn-train-icnn``'s recipe (``--icnn_epochs``) into
  ``benchmarks/results/models/faithfulness/`` (committed, so a rerun skips training);
* ``STD`` / ``CSG``: ResNet-20 pair of seed 0 on the hard 10-category data, the committed
  90-epoch models of ``bench_csg_length.py`` (``benchmarks/results/models/csg_hard``).

Methods: Grad-CAM, saliency (eqs. 6-7), gradient x input, guided backprop, the top-1 and
top-3 filter heatmaps (the maps of the filters with the largest gradient x activation for the
explained class, summed), all at the top conv layer and upsampled bilinearly; and a random map
(uniform noise, seeded) as the floor. Settings are SPEC §8's defaults, the same for every
method: 32 steps, deletion to black, insertion from a blur (sigma 5 px), MuFidelity on an
8 x 8 grid with 64 subsets of 13 cells (f = 0.2) set to black, seed 0. Nothing is tuned.

Writes ``benchmarks/results/faithfulness.json`` after every (model, method), skipping what it
already holds when restarted, per-image scores in ``faithfulness_scores.npz`` and the tables in
``faithfulness.md``.

Usage:
    python benchmarks/bench_faithfulness.py                      # all (~30 min here)
    python benchmarks/bench_faithfulness.py --models=CSG,STD --images=100
    python benchmarks/bench_faithfulness.py --summary            # tables from the JSON only
"""
import argparse
import os
import subprocess
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

import numpy as np  # noqa: E402

from bench_common import load_json, machine, save_json  # noqa: E402

RESULTS = os.path.join(ROOT, "benchmarks", "results", "faithfulness.json")
SCORES = os.path.join(ROOT, "benchmarks", "results", "faithfulness_scores.npz")
TABLES = os.path.join(ROOT, "benchmarks", "results", "faithfulness.md")
ICNN_DIR = os.path.join(ROOT, "benchmarks", "results", "models", "faithfulness")
CSG_DIR = os.path.join(ROOT, "benchmarks", "results", "models", "csg_hard", "bench_e90_seed0")
MODELS = ("ordinary", "interpretable", "STD", "CSG")
METHODS = ("gradcam", "saliency", "gradient_x_input", "guided_backprop", "deconvnet",
           "top1_filter", "top3_filters", "random")
LABELS = {"gradcam": "Grad-CAM", "saliency": "saliency", "gradient_x_input": "gradient × input",
          "guided_backprop": "guided backprop", "deconvnet": "deconvnet", "top1_filter": "top-1 filter heatmap",
          "top3_filters": "top-3 filter heatmaps", "random": "random map (floor)"}
METRICS = {"deletion": "lower", "insertion": "higher", "mu_fidelity": "higher"}
SETTINGS = {"steps": 32, "deletion_baseline": "black", "insertion_baseline": "blur",
            "sigma": 5.0, "grid": 8, "fraction": 0.2, "subsets": 64, "seed": 0}


def set_results_dir(directory):
    """Write the JSON, scores and tables into ``directory`` instead."""
    global RESULTS, SCORES, TABLES
    RESULTS, SCORES, TABLES = (os.path.join(directory, os.path.basename(p))
                               for p in (RESULTS, SCORES, TABLES))


def train_icnn_pair(epochs, seed):
    """The ordinary / interpretable pair, trained with the package's command when missing."""
    if all(os.path.exists(os.path.join(ICNN_DIR, f"{k}.keras"))
           for k in ("ordinary", "interpretable")):
        return
    cmd = [sys.executable, os.path.join(ROOT, "trainers", "train_icnn.py"),
           f"--output_dir={ICNN_DIR}", f"--epochs={epochs}", f"--seed={seed}", "--verbose=2"]
    print("training:", " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True)


def load_model_and_data(name, n):
    """(model, test images [n], labels [n]) for one of :data:`MODELS`."""
    import keras
    from keras_icnn.data import synthetic_parts

    if name in ("ordinary", "interpretable"):
        path = os.path.join(ICNN_DIR, f"{name}.keras")
        config = load_json(os.path.join(ICNN_DIR, "config.json"))
    else:
        path = os.path.join(CSG_DIR, "baseline.keras" if name == "STD" else "csg.keras")
        config = load_json(os.path.join(CSG_DIR, "config.json"))
    look = synthetic_parts.synthetic_config(config.get("synthetic_config", "default"))
    ex = synthetic_parts.make_examples(n, image_size=config["image_size"],
                                       num_classes=config["num_classes"], seed=config["seed"],
                                       split="test", **look)
    return keras.saving.load_model(path), ex["image"].astype(np.float32), ex["label"]


def attribution_maps(model, images, seed):
    """{method: [N, H, W]} for :data:`METHODS`, and the explained classes."""
    from keras_icnn import explain

    e = explain.explain(model, images, heatmaps="top", num_heatmaps=3, batch_size=50,
                        methods=("gradcam", "saliency", "gradient_x_input", "guided_backprop",
                                 "deconvnet"))
    rng = np.random.default_rng(seed)
    maps = {"gradcam": e.gradcam, "saliency": e.saliency,
            "gradient_x_input": e.gradient_x_input, "guided_backprop": e.guided_backprop,
            "deconvnet": e.deconvnet,
            "top1_filter": e.heatmaps[:, 0], "top3_filters": e.heatmaps[:, :3].sum(1),
            "random": rng.uniform(size=e.gradcam.shape).astype(np.float32)}
    return maps, e.target, float((e.classes == e.target).mean())


def interval(values, seed=0):
    from keras_icnn.metrics import stats

    v = np.asarray(values, np.float64)
    b = stats.bootstrap_interval(lambda i: v[i].mean(), len(v), repeats=2000, seed=seed)
    return {"mean": b["estimate"], "low": b["low"], "high": b["high"]}


def score(model, images, attr, targets):
    from keras_icnn import metrics

    s = SETTINGS
    return {
        "deletion": metrics.deletion(model, images, attr, targets, steps=s["steps"],
                                     baseline=s["deletion_baseline"], sigma=s["sigma"]),
        "insertion": metrics.insertion(model, images, attr, targets, steps=s["steps"],
                                       baseline=s["insertion_baseline"], sigma=s["sigma"]),
        "mu_fidelity": metrics.mu_fidelity(model, images, attr, targets, grid=s["grid"],
                                           fraction=s["fraction"], subsets=s["subsets"],
                                           seed=s["seed"]),
    }


def load_state():
    state = load_json(RESULTS)
    scores = dict(np.load(SCORES)) if os.path.exists(SCORES) else {}
    return state, scores


def save_state(state, scores):
    os.makedirs(os.path.dirname(RESULTS), exist_ok=True)
    state.update(machine=machine(), date=time.strftime("%Y-%m-%d"), settings=SETTINGS)
    save_json(RESULTS, state)
    np.savez_compressed(SCORES + ".tmp.npz", **scores)
    os.replace(SCORES + ".tmp.npz", SCORES)


def run(models, n, icnn_epochs, seed):
    import keras

    state, scores = load_state()
    if state.get("images") not in (None, n):
        raise SystemExit(f"{RESULTS} holds {state['images']} images per row, not {n}: move it "
                         "away to start over")
    state["images"] = n
    if any(m in ("ordinary", "interpretable") for m in models):
        train_icnn_pair(icnn_epochs, seed)
    for name in models:
        todo = [m for m in METHODS if m not in state.get("rows", {}).get(name, {})]
        if not todo:
            continue
        model, images, labels = load_model_and_data(name, n)
        t0 = time.process_time()
        maps, targets, _ = attribution_maps(model, images, seed)
        explain_cpu = time.process_time() - t0
        accuracy = float((targets == labels).mean())
        for method in todo:
            t0 = time.process_time()
            per_image = score(model, images, maps[method], targets)
            row = {metric: interval(v) for metric, v in per_image.items()}
            row["cpu_seconds"] = round(time.process_time() - t0, 1)
            state.setdefault("rows", {}).setdefault(name, {})[method] = row
            state.setdefault("models", {})[name] = {"accuracy": accuracy,
                                                    "explain_cpu_seconds": round(explain_cpu, 1)}
            for metric, v in per_image.items():
                scores[f"{name}/{method}/{metric}"] = np.asarray(v, np.float32)
            save_state(state, scores)
            print(f"{name:>13} {method:>17}: " + ", ".join(
                f"{m} {row[m]['mean']:.4f} [{row[m]['low']:.4f}, {row[m]['high']:.4f}]"
                for m in METRICS) + f" ({row['cpu_seconds']} CPU-s)", flush=True)
        del model
        keras.backend.clear_session()
    summary(state, scores)
    return state


def best_methods(scores, name, metric, methods=METHODS[:-1], seed=0):
    """The method with the best mean for ``metric`` and, against each other method, the paired
    bootstrap interval of the difference (best - other, sign so that > 0 favours the best)."""
    from keras_icnn.metrics import stats

    have = [m for m in methods if f"{name}/{m}/{metric}" in scores]
    if not have:
        return None
    sign = -1.0 if METRICS[metric] == "lower" else 1.0
    values = {m: sign * scores[f"{name}/{m}/{metric}"].astype(np.float64) for m in have}
    best = max(have, key=lambda m: values[m].mean())
    against = {}
    for m in have:
        if m != best:
            d = values[best] - values[m]
            b = stats.bootstrap_interval(lambda i: d[i].mean(), len(d), repeats=2000, seed=seed)
            against[m] = {"difference": b["estimate"], "low": b["low"], "high": b["high"]}
    return {"best": best, "against": against,
            "clear": all(v["low"] > 0 for v in against.values())}


def _cell(row):
    return f"{row['mean']:.3f} [{row['low']:.3f}, {row['high']:.3f}]"


def summary(state, scores):
    """Write ``faithfulness.md``: one table per model family and the verdict table."""
    rows = state.get("rows", {})
    lines = [f"Faithfulness on {state.get('images')} test images per model ({state.get('date')},"
             f" {state.get('machine')}); mean [95% bootstrap interval]. Deletion: lower is "
             "better; insertion, MuFidelity: higher is better.", ""]
    from keras_icnn.reporting.tables import table

    lines.append(table(["model", "explanation", "deletion ↓", "insertion ↑", "MuFidelity ↑"],
                       [[name, LABELS[method], _cell(r["deletion"]), _cell(r["insertion"]),
                         _cell(r["mu_fidelity"])]
                        for name in MODELS for method in METHODS
                        for r in [rows.get(name, {}).get(method)] if r]))
    verdicts, cells = {}, []
    for name in MODELS:
        for metric in METRICS:
            b = best_methods(scores, name, metric)
            if not b:
                continue
            verdicts.setdefault(name, {})[metric] = b
            if b["against"]:
                runner = min(b["against"], key=lambda m: b["against"][m]["difference"])
                d = b["against"][runner]
                lead = (f"{d['difference']:+.3f} [{d['low']:+.3f}, {d['high']:+.3f}] over "
                        f"{LABELS[runner]}")
            else:
                lead = "—"
            cells.append([name, metric, LABELS[b["best"]], lead, "yes" if b["clear"] else "no"])
    lines += ["", table(["model", "metric", "most faithful",
                         "its lead over the runner-up (paired 95% interval)",
                         "clear of every other method"], cells)]
    state["verdicts"] = verdicts
    with open(TABLES, "w") as f:
        f.write("\n".join(lines) + "\n")
    save_json(RESULTS, state)
    print("\n".join(lines))
    print(f"wrote {TABLES}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default=",".join(MODELS),
                        help=f"comma-separated, from {MODELS}")
    parser.add_argument("--images", type=int, default=500, help="test images per model")
    parser.add_argument("--icnn_epochs", type=int, default=8,
                        help="epochs of the ordinary / interpretable pair when it is trained")
    parser.add_argument("--seed", type=int, default=0, help="training and random-map seed")
    parser.add_argument("--summary", action="store_true", help="only write the tables")
    parser.add_argument("--results_dir", default=os.path.dirname(RESULTS),
                        help="where the JSON, the scores and the tables go")
    args = parser.parse_args()
    set_results_dir(args.results_dir)
    if args.summary:
        summary(*load_state())
        return
    models = [m for m in args.models.split(",") if m]
    unknown = [m for m in models if m not in MODELS]
    if unknown:
        parser.error(f"--models must be from {MODELS}. Received: {unknown}")
    run(models, args.images, args.icnn_epochs, args.seed)


if __name__ == "__main__":
    main()
