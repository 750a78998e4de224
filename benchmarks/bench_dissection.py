"""Network Dissection of the top conv layer: unique detectors and mean best IoU (survey §2.2).

Concepts are (category, part) pairs of the synthetic part data (``metrics.category_part_concepts``:
24 on the 6-category data, 40 on the hard 10-category data); each filter's threshold is
``P(a > T) = 0.005`` over every unit of the test split, maps are upsampled bilinearly, a
filter detects a concept when the dataset-wide IoU exceeds 0.04. Beside each figure, the mean
IoU ceiling of the filters' best concepts (the best IoU a region covering 0.5% of all pixels
could reach on that concept).

Models (the same as ``bench_faithfulness.py``): the ordinary / interpretable VGG pair on the
6-category data (seed 0, trained by ``bench_faithfulness.py`` when missing) and the STD / CSG
ResNet-20 pairs of seeds 0-2 on the hard data (committed). Test split: 1200 images each.

Writes ``benchmarks/results/dissection.json`` after each model (skipping finished ones when
restarted) and ``dissection.md``.

Usage:
    python benchmarks/bench_dissection.py             # ~5 min here (+ training when missing)
    python benchmarks/bench_dissection.py --summary   # the table from the JSON only
"""
import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

import numpy as np  # noqa: E402

import bench_faithfulness  # noqa: E402
from bench_common import load_json, machine, save_json  # noqa: E402

RESULTS = os.path.join(ROOT, "benchmarks", "results", "dissection.json")
TABLES = os.path.join(ROOT, "benchmarks", "results", "dissection.md")
CSG_PAIRS = os.path.join(ROOT, "benchmarks", "results", "models", "csg_hard")
TEST = 1200


def models():
    """{key: (path, data config dir)} of every model dissected."""
    out = {f"{name}/seed0": (os.path.join(bench_faithfulness.ICNN_DIR, f"{name}.keras"),
                             bench_faithfulness.ICNN_DIR)
           for name in ("ordinary", "interpretable")}
    for seed in (0, 1, 2):
        pair = os.path.join(CSG_PAIRS, f"bench_e90_seed{seed}")
        out[f"STD/seed{seed}"] = (os.path.join(pair, "baseline.keras"), pair)
        out[f"CSG/seed{seed}"] = (os.path.join(pair, "csg.keras"), pair)
    return out


def dissect(path, config_dir, n=TEST, batch_size=100):
    """Stream the test split through the model's top conv layer; the dissection figures."""
    import keras
    from keras_icnn import metrics
    from keras_icnn.data import pipeline, synthetic_parts
    from keras_icnn.evaluation import streaming
    from keras_icnn.models import graph

    config = load_json(os.path.join(config_dir, "config.json"))
    look = synthetic_parts.synthetic_config(config.get("synthetic_config", "default"))
    ex = synthetic_parts.make_examples(n, image_size=config["image_size"],
                                       num_classes=config["num_classes"], seed=config["seed"],
                                       split="test", **look)
    model = graph.flat_copy(keras.saving.load_model(path), "bench_dissection")
    layer = metrics.default_layer(model)
    r = streaming.stream_filter_metrics(
        model, layer, lambda: pipeline.make_dataset(ex, batch_size, as_supervised=False), n,
        config["num_classes"], single=False, verbose=0)
    d = r["dissection"]
    best = d["best_concept"]
    return {"layer": layer, "filters": int(len(best)), "concepts": int(d["iou"].shape[1]),
            "unique_detectors": d["unique_detectors"], "detectors": d["detector_count"],
            "mean_best_iou": d["mean_best_iou"],
            "mean_ceiling_of_best": float(d["ceiling"][best].mean()),
            "max_best_iou": float(d["best_iou"].max()), "accuracy": r["accuracy"],
            "part_interpretability": r.get("part_interpretability")}


def load():
    return load_json(RESULTS, {"rows": {}})


def save(state):
    state.update(machine=machine(), date=time.strftime("%Y-%m-%d"), test_images=TEST,
                 settings={"top_quantile": 0.005, "iou_threshold": 0.04,
                           "concepts": "(category, part)", "upsampling": "bilinear"})
    os.makedirs(os.path.dirname(RESULTS), exist_ok=True)
    save_json(RESULTS, state)


def run(icnn_epochs=8):
    state = load()
    todo = {k: v for k, v in models().items() if k not in state["rows"]}
    if any(k.split("/")[0] in ("ordinary", "interpretable") for k in todo):
        bench_faithfulness.train_icnn_pair(icnn_epochs, 0)
    for key, (path, config_dir) in todo.items():
        t0 = time.process_time()
        row = dissect(path, config_dir)
        row["cpu_seconds"] = round(time.process_time() - t0, 1)
        state["rows"][key] = row
        save(state)
        print(f"{key:>20}: {row['unique_detectors']} unique detectors of {row['concepts']}, "
              f"{row['detectors']}/{row['filters']} detectors, mean best IoU "
              f"{row['mean_best_iou']:.4f} (ceiling {row['mean_ceiling_of_best']:.3f})",
              flush=True)
    return summary(state)


def family(state, name):
    """The rows of one model kind over its seeds."""
    return [r for k, r in sorted(state["rows"].items()) if k.split("/")[0] == name]


def summary(state):
    lines = [f"Network Dissection of the top conv layer on {state.get('test_images')} test "
             f"images ({state.get('date')}, {state.get('machine')}); (category, part) concepts, "
             "P(a > T) = 0.005, detector: IoU > 0.04. Mean over seeds ± std where there are "
             "several.", ""]
    cells = []
    data = {"ordinary": "6 categories (VGG)", "interpretable": "6 categories (VGG)",
            "STD": "hard, 10 categories (ResNet-20)", "CSG": "hard, 10 categories (ResNet-20)"}
    out = {}
    for name in ("ordinary", "interpretable", "STD", "CSG"):
        rows = family(state, name)
        if not rows:
            continue

        def stat(key, fmt):
            v = np.array([r[key] for r in rows], np.float64)
            return (fmt.format(v.mean()) + (f" ± {fmt.format(v.std(ddof=1))}" if len(v) > 1
                                             else ""))

        out[name] = {key: float(np.mean([r[key] for r in rows])) for key in (
            "unique_detectors", "detectors", "mean_best_iou", "mean_ceiling_of_best")}
        cells.append([name, data[name], len(rows),
                      f"{stat('unique_detectors', '{:.1f}')} of {rows[0]['concepts']}",
                      f"{stat('detectors', '{:.1f}')} / {rows[0]['filters']}",
                      stat("mean_best_iou", "{:.4f}"), stat("mean_ceiling_of_best", "{:.3f}"),
                      stat("max_best_iou", "{:.3f}")])
    from keras_icnn.reporting.tables import table

    lines.append(table(["model", "data", "seeds", "unique detectors", "detectors / filters",
                        "mean best IoU", "its ceiling", "best IoU of any filter"], cells))
    state["summary"] = out
    save(state)
    with open(TABLES, "w") as f:
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines))
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--summary", action="store_true", help="only write the table")
    parser.add_argument("--icnn_epochs", type=int, default=8,
                        help="epochs of the ordinary / interpretable pair when it is trained")
    args = parser.parse_args()
    if args.summary:
        summary(load())
    else:
        run(args.icnn_epochs)


if __name__ == "__main__":
    main()
