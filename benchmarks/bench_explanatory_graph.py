"""The explanatory graph (SPEC §10) measured the paper's way, on two models x two datasets.

Cases: the demo recipe's ordinary VGG (and its interpretable twin, for the few-shot
comparison) on the synthetic part data and on our birds (the second evaluation set), and the
STD ResNet-20 on the hard synthetic data (the committed 90-epoch CSG baseline) and on the
birds. For each case a graph is fitted on 1000 training images, then:

1. location instability (SPEC §7, multi-category, lowest-deviation rule, top-100 images) of
   the graph's nodes (on the images where each is present) against the raw filters of the
   same layers, per layer;
2. few-shot part localisation per class and part, k = 1, 3, 5 annotated training images
   (``--draws`` random draws of them), normalised distance ``‖p̂ − p‖/√(H²+W²)`` on the
   class's images: the graph's nodes, the same layers' raw filters, the nearest-neighbour
   baseline on those layers' features, and (VGG cases) the interpretable CNN's filters used
   the same way (``keras_icnn.graphs.localize``). Mean and std over draws.
3. the refine step: the nearest-neighbour match under a spatial prior
   (``localize_parts(refine=λ)``) — the graph nodes' prediction, and two controls: the raw
   filters' prediction and the annotated landmarks' mean; λ of each chosen on the validation
   split, then all measured on the test split on the same draws.

Settings rule (fixed before any run): every ``--grid`` setting (nodes per filter x presence
threshold) is fitted and measured on the validation split; the one with the lowest graph
few-shot distance at k = 3 is then measured on the test split. Cost: fit time on 250/500/1000
images and with 2/3/5 nodes per filter (synthetic VGG). Writes
``benchmarks/results/explanatory_graph.json`` after every step (a rerun skips what is done)
and ``explanatory_graph.md``.

Usage:
    python benchmarks/bench_explanatory_graph.py            # all cases (trains missing models)
    python benchmarks/bench_explanatory_graph.py --cases=synthetic/vgg --draws=3
"""
import argparse
import json
import os
import time

import numpy as np

from bench_common import load_json, machine, save_json

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RESULTS = os.path.join(ROOT, "benchmarks", "results", "explanatory_graph.json")
HARD = os.path.join(ROOT, "benchmarks", "results", "models", "csg_hard", "bench_e90_seed0")
CASES = ("synthetic/vgg", "birds/vgg", "synthetic_hard/resnet20", "birds/resnet20")
KS = (1, 3, 5)
METHODS = ("graph", "filters", "nearest_neighbour", "icnn_filters")
PRIORS = ("graph", "filters", "mean")  # spatial priors of the refined nearest neighbour


def case_run(case, args):
    """(run directory, model file, interpretable model file or None, recipe), training the run
    where it is missing."""
    from keras_icnn.recipes import CSGConfig, ICNNConfig, run_csg_experiment, run_icnn_experiment

    if case == "synthetic_hard/resnet20":
        return HARD, "baseline.keras", None, "csg"
    if case.endswith("/vgg"):
        run = args.synthetic_run if case.startswith("synthetic") else args.birds_run
        if not os.path.isfile(os.path.join(run, "ordinary.keras")):
            extra = {}
            if case.startswith("birds"):
                from bench_icnn_seeds import DATASETS, birds_dir
                extra = dict(data_dir=birds_dir(args.birds_dir), **DATASETS["birds"])
            run_icnn_experiment(ICNNConfig(output_dir=run, epochs=8 if not extra else 15,
                                           seed=0, verbose=0, **extra))
        return run, "ordinary.keras", "interpretable.keras", "icnn"
    run = args.birds_resnet_run
    if not os.path.isfile(os.path.join(run, "baseline.keras")):
        from bench_icnn_seeds import birds_dir
        run_csg_experiment(CSGConfig(
            output_dir=run, dataset="cub", data_dir=birds_dir(args.birds_dir), backbone="resnet20",
            epochs=30, train_baseline=True, num_val=240, seed=0, eval_split="validation",
            verbose=0))
    return run, "baseline.keras", None, "csg"


def open_source(run, recipe):
    from keras_icnn.recipes import CSGConfig, ICNNConfig
    from keras_icnn.recipes.common import open_data

    with open(os.path.join(run, "config.json")) as f:
        saved = json.load(f)
    cls = ICNNConfig if recipe == "icnn" else CSGConfig
    config = cls(**{k: v for k, v in saved.items() if k in cls.__dataclass_fields__})
    if config.dataset != "synthetic":
        return open_data(config)
    extra = config.synthetic_options() if hasattr(config, "synthetic_options") else {}
    return open_data(config, **extra)


def arrays(source, split, limit=None):
    """Images, labels and landmarks of ``split``; with ``limit``, the first ``limit / classes``
    of each class in the split's order (the read stops once every class has them)."""
    per_class = -(-limit // source.num_classes) if limit else None
    out, counts = {}, np.zeros(source.num_classes, np.int64)
    for batch in source.dataset(split, 128, as_supervised=False):
        y = batch["label"].numpy()
        keep = np.ones(len(y), bool)
        if per_class:
            onehot = y[:, None] == np.arange(len(counts))
            rank = np.cumsum(onehot, axis=0)[np.arange(len(y)), y] - 1 + counts[y]
            keep = rank < per_class
            counts += np.bincount(y, minlength=len(counts))
        for key in ("image", "label", "landmarks"):
            out.setdefault(key, []).append(batch[key].numpy()[keep])
        if per_class and (counts >= per_class).all():
            break
    return {k: np.concatenate(v) for k, v in out.items()}


def instability(inf, offsets, sizes, data, num_classes, present):
    from keras_icnn.metrics import interpretability

    size = data["image"].shape[1:3]
    out = []
    for a, n in zip(offsets, sizes):
        sl = slice(a, a + n)
        out.append(interpretability.location_instability_multi(
            inf.positions[:, sl], data["landmarks"], data["label"], size, inf.scores[:, sl],
            num_classes, present=inf.present[:, sl] if present else None)[0])
    return out


def annotated_sets(rng, train, c, k, parts):
    """k images of class c per part (each showing it), landmarks NaN but for its part."""
    idx, lms = [], []
    for p in range(parts):
        pool = np.flatnonzero((train["label"] == c) & np.isfinite(train["landmarks"][:, p, 0]))
        pick = rng.choice(pool, min(k, len(pool)), replace=False)
        lm = np.full((len(pick), parts, 2), np.nan)
        lm[:, p] = train["landmarks"][pick, p]
        idx.append(pick)
        lms.append(lm)
    return np.concatenate(idx), np.concatenate(lms)


def few_shot(detectors, nn, train, test, train_inf, test_inf, num_classes, draws, seed,
             refined=None):
    """{method: {k: [distance per draw]}} (mean over classes and parts within a draw).

    ``refined``: {name: (prior, λ)} more methods, the nearest-neighbour match under a spatial
    prior (``localize_parts(refine=λ)``): ``prior`` "graph" (the graph nodes' prediction),
    "filters" (the raw filters' prediction, a control: the same layers without the graph) or
    "mean" (the annotated landmarks' mean, a control without any detector)."""
    from keras_icnn.graphs import localize

    size = test["image"].shape[1:3]
    parts = test["landmarks"].shape[1]
    refined = refined or {}
    out = {m: {str(k): [] for k in KS}
           for m in list(detectors) + ["nearest_neighbour"] + list(refined)}
    for k in KS:
        rng = np.random.default_rng(seed + k)
        for _ in range(draws):
            dist = {m: [] for m in out}
            for c in range(num_classes):
                idx, lm = annotated_sets(rng, train, c, k, parts)
                mine = np.flatnonzero(test["label"] == c)
                truth = test["landmarks"][mine]
                fallback = np.nanmean(lm, 0)
                found = {}
                for m in detectors:
                    ann = _subset(train_inf[m], idx)
                    chosen, offsets, scale = localize.select_detectors(ann, lm, size)
                    found[m] = localize.predict_parts(_subset(test_inf[m], mine), chosen,
                                                      offsets, scale, fallback)
                nn.fit(train["image"][idx], lm)
                found["nearest_neighbour"] = nn.predict(test["image"][mine])
                priors = {"graph": found.get("graph"), "filters": found.get("filters"),
                          "mean": np.broadcast_to(fallback, truth.shape)}
                for name, (prior, weight) in refined.items():
                    found[name] = nn.predict(test["image"][mine], prior=priors[prior],
                                             prior_weight=weight)
                for m, f in found.items():
                    dist[m].append(localize.normalised_distance(f, truth, size)[0])
            for m, v in dist.items():
                out[m][str(k)].append(float(np.nanmean(v)))
    return out


def hindsight_bound(inf, data, num_classes, coverage=0.5):
    """Not a method, a diagnostic: per class and part, the single detector whose offset to the
    landmark is steadiest on the evaluated images themselves (its mean offset known, present
    on at least ``coverage`` of them); mean over classes and parts of its normalised error,
    and its coverage. How well any detector-plus-offset rule could do on these images."""
    size = data["image"].shape[1:3]
    diag = float(np.hypot(*size))
    errors, covered = [], []
    for c in range(num_classes):
        mine = np.flatnonzero(data["label"] == c)
        sub = _subset(inf, mine)
        for p in range(data["landmarks"].shape[1]):
            lm = data["landmarks"][mine, p]
            present = sub.present & np.isfinite(lm[:, None, 0])
            off = np.nan_to_num(lm[:, None] - sub.positions)  # [n, K, 2]
            n = present.sum(0)
            mean = (present[..., None] * off).sum(0) / np.maximum(n, 1)[:, None]
            err = (present * np.linalg.norm(off - mean, axis=-1)).sum(0) / np.maximum(n, 1)
            ok = n >= coverage * np.isfinite(lm[:, 0]).sum()
            if not ok.any():
                continue
            best = np.argmin(np.where(ok, err, np.inf))
            errors.append(err[best] / diag)
            covered.append(n[best] / len(mine))
    return {"error": float(np.mean(errors)), "coverage": float(np.mean(covered))}


def references(train, test, num_classes, draws, seed):
    """Two model-free references at k = 3 (same draws as :func:`few_shot`): the mean of the
    annotated landmarks, and — an oracle — each test image's true object centre (the mean of
    its visible landmarks) plus the part's mean offset from it on the annotated images: how far
    any rule "a point on the object + a fixed offset" can get on this data."""
    from keras_icnn.graphs import localize

    size = test["image"].shape[1:3]
    parts = test["landmarks"].shape[1]
    rng = np.random.default_rng(seed + 3)
    out = {"mean_landmark": [], "object_centre_oracle": []}
    for _ in range(draws):
        row = {k: [] for k in out}
        for c in range(num_classes):
            idx, lm = annotated_sets(rng, train, c, 3, parts)
            truth = test["landmarks"][test["label"] == c]
            row["mean_landmark"].append(localize.normalised_distance(
                np.broadcast_to(np.nanmean(lm, 0), truth.shape), truth, size)[0])
            offset = np.nanmean(lm - np.nanmean(train["landmarks"][idx], 1)[:, None], 0)
            row["object_centre_oracle"].append(localize.normalised_distance(
                np.nanmean(truth, 1)[:, None] + offset[None], truth, size)[0])
        for k, v in row.items():
            out[k].append(float(np.mean(v)))
    return {k: {"mean": float(np.mean(v)), "std": float(np.std(v))} for k, v in out.items()}


def matched_instability(model, result, test, num_classes):
    """A control: the raw filters' location instability over as few images as the nodes are
    present on (top-k images per class with k = the layer's node presence x images per class,
    instead of 100): is the nodes' advantage only that they are measured on fewer, stronger
    images?"""
    from keras_icnn.graphs.localize import FilterDetectors
    from keras_icnn.metrics import interpretability

    raw = FilterDetectors(model, result["layers"])
    inf = raw.infer(test["image"])
    per_class = len(test["label"]) / num_classes
    out = []
    for a, n, presence in zip(raw.offsets, raw.filters,
                              result["location_instability"]["node_presence"]):
        sl = slice(a, a + n)
        out.append(interpretability.location_instability_multi(
            inf.positions[:, sl], test["landmarks"], test["label"], test["image"].shape[1:3],
            inf.scores[:, sl], num_classes, top_k=max(2, int(round(presence * per_class))))[0])
    return out


def _subset(inf, idx):
    from keras_icnn.graphs import GraphInference

    return GraphInference(inf.positions[idx], inf.scores[idx], inf.log_likelihood[idx],
                          inf.present[idx])


def measure(model, icnn, train, evalset, num_classes, setting, draws, seed):
    from keras_icnn.graphs import ExplanatoryGraph
    from keras_icnn.graphs.localize import FilterDetectors, NearestNeighbourParts

    g = ExplanatoryGraph.fit(model, train["image"], nodes_per_filter=setting["nodes"],
                             min_activation=setting["min_activation"],
                             anchor=setting.get("anchor", "centroid"), seed=seed, verbose=0)
    raw = FilterDetectors(model, g.layers)
    detectors = {"graph": g, "filters": raw}
    if icnn is not None:
        from keras_icnn.models.backbones import default_layer
        detectors["icnn_filters"] = FilterDetectors(icnn, [default_layer(icnn)])
    train_inf = {m: d.infer(train["image"]) for m, d in detectors.items()}
    test_inf = {m: d.infer(evalset["image"]) for m, d in detectors.items()}
    sizes = [d * n for d, n in zip(g.filters, g.nodes_per_filter)]
    nodes = instability(test_inf["graph"], g.offsets, sizes, evalset, num_classes, True)
    filters = instability(test_inf["filters"], raw.offsets, raw.filters, evalset, num_classes,
                          False)
    presence = [float(test_inf["graph"].present[:, a:a + n].mean())
                for a, n in zip(g.offsets, sizes)]
    shots = few_shot(detectors, NearestNeighbourParts(model, g.layers), train, evalset,
                     train_inf, test_inf, num_classes, draws, seed)
    bound = {m: hindsight_bound(test_inf[m], evalset, num_classes) for m in detectors}
    return {"layers": g.layers, "fit": g.info,
            "location_instability": {"nodes": nodes, "filters": filters,
                                     "node_presence": presence},
            "few_shot": {m: {k: {"mean": float(np.mean(v)), "std": float(np.std(v)),
                                 "draws": v} for k, v in per_k.items()}
                         for m, per_k in shots.items()},
            "hindsight_bound": bound}


def refine_step(model, train, val, test, num_classes, setting, grid, args):
    """The graph's prediction as a spatial prior on the nearest-neighbour match
    (``localize_parts(refine=λ)``), against two controls: the same layers' raw filters'
    prediction as the prior, and the annotated landmarks' mean: λ of each chosen on the
    validation split (lowest k = 3 distance), then all measured on the test split with the
    graph nodes, the raw filters and the plain nearest neighbour on the same draws."""
    from keras_icnn.graphs import ExplanatoryGraph
    from keras_icnn.graphs.localize import FilterDetectors, NearestNeighbourParts

    g = ExplanatoryGraph.fit(model, train["image"], nodes_per_filter=setting["nodes"],
                             min_activation=setting["min_activation"],
                             anchor=setting.get("anchor", "centroid"), seed=args.seed, verbose=0)
    nn = NearestNeighbourParts(model, g.layers)
    detectors = {"graph": g, "filters": FilterDetectors(model, g.layers)}
    train_inf = {m: d.infer(train["image"]) for m, d in detectors.items()}

    def summary(shots):
        return {m: {k: {"mean": float(np.mean(v)), "std": float(np.std(v)), "draws": v}
                    for k, v in per_k.items()} for m, per_k in shots.items()}

    variants = {f"{prior}_refined@{lam:g}": (prior, lam) for prior in PRIORS for lam in grid}
    shots = few_shot(detectors, nn, train, val, train_inf,
                     {m: d.infer(val["image"]) for m, d in detectors.items()},
                     num_classes, args.val_draws, args.seed, variants)
    chosen = {prior: min((lam for lam in grid),
                         key=lambda lam: np.mean(shots[f"{prior}_refined@{lam:g}"]["3"]))
              for prior in PRIORS}
    shots_test = few_shot(detectors, nn, train, test, train_inf,
                          {m: d.infer(test["image"]) for m, d in detectors.items()},
                          num_classes, args.draws, args.seed,
                          {f"{p}_refined": (p, lam) for p, lam in chosen.items()})
    return {"validation": summary(shots), "chosen": chosen, "test": summary(shots_test)}


def cost(model, images, state, out):
    from keras_icnn.graphs import ExplanatoryGraph

    rows = state.setdefault("cost", {})
    for n, nodes in ((250, 3), (500, 3), (1000, 3), (1000, 2), (1000, 5)):
        key = f"{n}_images_{nodes}_nodes"
        if key in rows:
            continue
        t = time.perf_counter()
        g = ExplanatoryGraph.fit(model, images[:n], nodes_per_filter=nodes, verbose=0)
        rows[key] = {"images": n, "nodes_per_filter": nodes, "nodes": g.num_nodes,
                     "seconds": round(time.perf_counter() - t, 2),
                     "read_seconds": g.info["read_seconds"]}
        save_json(out, state)
        print(f"cost {key}: {rows[key]['seconds']} s", flush=True)


def table(state):
    from keras_icnn.reporting.tables import table as write_table

    rows_li, rows_fs = [], []
    for case, r in state.get("cases", {}).items():
        t = r.get("test")
        if not t:
            continue
        li = t["location_instability"]
        matched = li.get("filters_matched", [None] * len(li["nodes"]))
        for layer, n, f, p, m in zip(t["layers"], li["nodes"], li["filters"],
                                     li["node_presence"], matched):
            rows_li.append([case, layer, f"{n:.4f}", f"{f:.4f}", f"{n / f:.2f}", f"{p:.0%}",
                            "—" if m is None else f"{m:.4f}"])
        for k in map(str, KS):
            cells = []
            for m in METHODS:
                v = t["few_shot"].get(m, {}).get(k)
                cells.append("—" if v is None else f"{v['mean']:.4f} ± {v['std']:.4f}")
            rows_fs.append([case, r["chosen"], k] + cells)
    cost_rows = [[k, str(v["nodes"]), f"{v['seconds']:.1f}", f"{v['read_seconds']:.1f}"]
                 for k, v in state.get("cost", {}).items()]
    rows_val, rows_bound = [], []
    for case, r in state.get("cases", {}).items():
        for name, v in r.get("validation", {}).items():
            li = v["location_instability"]
            ratio = np.mean(np.array(li["nodes"]) / np.array(li["filters"]))
            rows_val.append([case, name + (" ←" if name == r.get("chosen") else ""),
                             f"{v['few_shot']['graph']['3']['mean']:.4f}",
                             f"{v['few_shot']['nearest_neighbour']['3']['mean']:.4f}",
                             f"{ratio:.2f}"])
        t = r.get("test")
        if t and "hindsight_bound" in t:
            b = t["hindsight_bound"]
            rows_bound.append([case] + [
                "—" if m not in b else f"{b[m]['error']:.4f} ({b[m]['coverage']:.0%})"
                for m in ("graph", "filters", "icnn_filters")]
                + [f"{t['few_shot']['nearest_neighbour']['3']['mean']:.4f}"]
                + [f"{r['references'][k]['mean']:.4f}" if "references" in r else "—"
                   for k in ("mean_landmark", "object_centre_oracle")])
    return ("Location instability (test split, lower is better)\n\n"
            + write_table(["case", "layer", "nodes", "raw filters", "nodes / filters",
                           "node presence", "raw filters on as few images"], rows_li)
            + "\n\nFew-shot part localisation, normalised distance (test split, mean ± std over "
              "draws, lower is better)\n\n"
            + write_table(["case", "setting", "k", "graph nodes", "raw filters",
                           "nearest neighbour", "ICNN filters"], rows_fs)
            + "\n\nHindsight bound (not a method): per class and part, the single detector "
              "whose offset to the landmark is steadiest on the test images themselves "
              "(present on at least half of them; its coverage in brackets), against the "
              "nearest-neighbour baseline at k = 3\n\n"
            + write_table(["case", "graph nodes", "raw filters", "ICNN filters",
                           "nearest neighbour, k = 3", "mean landmark, k = 3",
                           "true object centre + offset, k = 3"], rows_bound)
            + "\n\nValidation split: the settings tried (← chosen: lowest graph few-shot "
              "distance at k = 3)\n\n"
            + write_table(["case", "setting", "graph, k = 3", "nearest neighbour, k = 3",
                           "instability nodes / filters (mean over layers)"], rows_val)
            + "\n\nFit cost (synthetic VGG, 2 CPU cores)\n\n"
            + write_table(["fit", "nodes", "seconds", "of which reading images"], cost_rows)
            + "\n\nThe graph's prediction as a spatial prior on the nearest-neighbour match "
              "(localize_parts(refine=λ)), and two controls: the same match under the raw "
              "filters' prediction, and under the annotated landmarks' mean (test split, same "
              "draws, mean ± std)\n\n"
            + write_table(["case", "k", "graph nodes", "nearest neighbour",
                           "graph nodes + appearance", "raw filters + appearance",
                           "mean landmark + appearance",
                           "graph nodes + appearance − nearest neighbour, paired (draws won)"],
                          refined_rows(state))
            + "\n\nValidation split: λ of each prior (← chosen: lowest k = 3 "
              "distance)\n\n"
            + write_table(["case", "λ", "graph nodes + appearance, k = 3",
                           "raw filters + appearance, k = 3",
                           "mean landmark + appearance, k = 3", "nearest neighbour, k = 3"],
                          refined_rows(state, validation=True))
            + "\n")


def refined_rows(state, validation=False):
    rows = []
    for case, r in state.get("cases", {}).items():
        ref = r.get("refined")
        if not ref:
            continue
        chosen = ref["chosen"]
        if validation:
            v = ref["validation"]
            lams = sorted({float(m.split("@")[1]) for m in v if "@" in m})
            for lam in lams:
                cells = []
                for prior in PRIORS:
                    mark = " ←" if chosen[prior] == lam else ""
                    cells.append(f"{v[f'{prior}_refined@{lam:g}']['3']['mean']:.4f}{mark}")
                rows.append([case, f"{lam:g}"] + cells
                            + [f"{v['nearest_neighbour']['3']['mean']:.4f}"])
            continue
        t = ref["test"]
        for k in map(str, KS):
            paired = (np.array(t["graph_refined"][k]["draws"])
                      - np.array(t["nearest_neighbour"][k]["draws"]))
            rows.append([case, k] + [f"{t[m][k]['mean']:.4f} ± {t[m][k]['std']:.4f}"
                                     + (f" (λ {chosen[m.split('_')[0]]:g})"
                                        if m.endswith("refined") else "")
                                     for m in ("graph", "nearest_neighbour", "graph_refined",
                                               "filters_refined", "mean_refined")]
                        + [f"{paired.mean():+.4f} ± {paired.std():.4f} "
                           f"({int((paired < 0).sum())}/{len(paired)})"])
    return rows


def setting_name(s):
    return f"nodes{s['nodes']}_act{s['min_activation']}_{s['anchor']}"


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", default=",".join(CASES))
    parser.add_argument("--synthetic_run", default="/tmp/keras_icnn_demo",
                        help="the demo's train-icnn output (trained there when missing)")
    parser.add_argument("--birds_run", default="/tmp/keras_icnn_tree_runs/birds_seed0",
                        help="the pair on the birds (trained there when missing)")
    parser.add_argument("--birds_resnet_run",
                        default="/tmp/keras_icnn_graph_runs/resnet20_birds_seed0",
                        help="train-csg --train_baseline output on the birds (STD ResNet-20)")
    parser.add_argument("--birds_dir", default="/tmp/keras_icnn_birds")
    parser.add_argument("--fit_images", type=int, default=1000)
    parser.add_argument("--grid", default="2:0:centroid,3:0:centroid,5:0:centroid,"
                                          "3:0:image",
                        help="settings nodes:min_activation:anchor tried on the validation "
                             "split")
    parser.add_argument("--refine_grid", default="0.3,1,3,10",
                        help="prior weights λ of localize_parts(refine=λ) tried on the "
                             "validation split")
    parser.add_argument("--draws", type=int, default=10, help="draws of the k images (test)")
    parser.add_argument("--val_draws", type=int, default=4)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=RESULTS)
    parser.add_argument("--table_only", action="store_true",
                        help="rewrite explanatory_graph.md from the JSON, measure nothing")
    args = parser.parse_args()
    if args.table_only:
        with open(os.path.join(os.path.dirname(args.out), "explanatory_graph.md"), "w") as f:
            f.write(table(load_json(args.out)))
        return
    import keras

    state = load_json(args.out)
    grid = [{"nodes": int(a), "min_activation": float(b), "anchor": c}
            for a, b, c in (g.split(":") for g in args.grid.split(","))]
    refine_grid = [float(v) for v in args.refine_grid.split(",")]
    for case in args.cases.split(","):
        run, model_file, icnn_file, recipe = case_run(case, args)
        source = open_source(run, recipe)
        model = keras.models.load_model(os.path.join(run, model_file), compile=False)
        icnn = keras.models.load_model(os.path.join(run, icnn_file), compile=False) \
            if icnn_file else None
        train = arrays(source, "train", args.fit_images)
        r = state.setdefault("cases", {}).setdefault(case, {"run": run, "validation": {}})
        val = arrays(source, "validation")
        for s in grid:
            name = setting_name(s)
            if name in r["validation"]:
                continue
            r["validation"][name] = measure(model, icnn, train, val, source.num_classes, s,
                                            args.val_draws, args.seed)
            state.update(machine=machine(), date=time.strftime("%Y-%m-%d"))
            save_json(args.out, state)
            print(f"{case} validation {name}: few-shot k=3 "
                  f"{r['validation'][name]['few_shot']['graph']['3']['mean']:.4f}", flush=True)
        r["chosen"] = min(r["validation"], key=lambda n: r["validation"][n]["few_shot"]["graph"]
                          ["3"]["mean"])
        if "test" not in r:
            s = next(s for s in grid if setting_name(s) == r["chosen"])
            r["test"] = measure(model, icnn, train, arrays(source, "test"), source.num_classes,
                                s, args.draws, args.seed)
            save_json(args.out, state)
            t = r["test"]
            print(f"{case} test ({r['chosen']}): instability nodes "
                  f"{np.round(t['location_instability']['nodes'], 4)} filters "
                  f"{np.round(t['location_instability']['filters'], 4)}; few-shot k=3 " + ", ".join(
                      f"{m} {v['3']['mean']:.4f}" for m, v in t["few_shot"].items()), flush=True)
        if "references" not in r:
            test = arrays(source, "test")
            r["references"] = references(train, test, source.num_classes, args.draws, args.seed)
            r["test"]["location_instability"]["filters_matched"] = matched_instability(
                model, r["test"], test, source.num_classes)
            save_json(args.out, state)
        if "refined" not in r:
            s = next(s for s in grid if setting_name(s) == r["chosen"])
            r["refined"] = refine_step(model, train, val, arrays(source, "test"),
                                       source.num_classes, s, refine_grid, args)
            save_json(args.out, state)
            t = r["refined"]["test"]
            print(f"{case} refined (λ {r['refined']['chosen']}): k=3 " + ", ".join(
                f"{m} {v['3']['mean']:.4f}" for m, v in t.items()), flush=True)
        if case == "synthetic/vgg":
            cost(model, train["image"], state, args.out)
    with open(os.path.join(os.path.dirname(args.out), "explanatory_graph.md"), "w") as f:
        f.write(table(state))


if __name__ == "__main__":
    main()
