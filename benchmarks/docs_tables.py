"""Fill the docs' generated tables from the benchmark results (``make docs-tables``).

A table in ``docs/*.md`` between

    <!-- table: benchmarks/results/interpretability.md#1 -->
    ...
    <!-- /table -->

is replaced by the first (``#n``: the n-th) table of that file, which the benchmark that made
the JSON beside it wrote (``bench_interpretability.py`` -> ``interpretability.{json,md}``); a
marker naming a ``.json`` (``<!-- table: benchmarks/results/steps.json -->``) gets the table
:data:`RENDERERS` draws from that JSON (the speed benchmarks, which write no table). Each figure
is written once, by the script that measured it.

    python benchmarks/docs_tables.py            # rewrite the docs
    python benchmarks/docs_tables.py --check    # exit 1 when a doc is out of date
"""
import argparse
import glob
import json
import os
import re
import sys

from keras_icnn.reporting import tables as table_writer

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MARKER = re.compile(r"<!-- table: (?P<path>[^#\s]+)(?:#(?P<n>\d+))? -->\n(?P<body>.*?)"
                    r"<!-- /table -->", re.S)


def tables(text):
    """The markdown tables of ``text`` (runs of lines starting with ``|``), in order."""
    out, current = [], []
    for line in text.splitlines():
        if line.startswith("|"):
            current.append(line)
        elif current:
            out.append("\n".join(current))
            current = []
    if current:
        out.append("\n".join(current))
    return out


def _table(header, rows):
    return table_writer.table(header, rows)  # the package's one table writer


def _size(map_name):
    return map_name.replace("x", "×")


def _layer_target(r):
    """bench_layers.py's targets: <= 1.05 at 14x14x512 with XLA, else <= 1.15 with XLA,
    <= 1.3 without."""
    if r["map"] == "14x14" and r["filters"] == 512 and r["xla"]:
        return 1.05
    return 1.15 if r["xla"] else 1.3


def _verdict(value, target):
    if value <= target:
        return f"≤ {target:g}: met"
    miss = value - target
    return f"≤ {target:g}: **missed{f' by {miss:.3f}' if miss < 0.01 else ''}**"


def render_layers_quick(d):
    rows = [[_size(r["map"]), r["filters"], r["gradient"], "on" if r["xla"] else "off",
             f"{r['steps']} × {r['repeats']}", f"{r['plain_ms']:.1f}",
             f"{r['interpretable_ms']:.1f}", f"{r['ratio']:.3f}",
             f"{r['ratio_min']:.2f}-{r['ratio_max']:.2f}", _verdict(r["ratio"], _layer_target(r))]
            for r in d["rows"]]
    return _table(["map", "filters", "gradient", "XLA", "steps × repeats", "plain ms",
                   "interpretable ms", "ratio", "spread", "target"], rows)


def render_layers(d):
    """The full grid: maps down, (filters, gradient, XLA) across; misses in bold."""
    cols = [(f, g, x) for f in (64, 256, 512) for g in ("approximate", "exact")
            for x in (True, False)]
    by = {(r["map"], r["filters"], r["gradient"], r["xla"]): r for r in d["rows"]}
    maps = sorted({r["map"] for r in d["rows"]}, key=lambda m: int(m.split("x")[0]))
    header = ["map \\ filters, gradient, XLA"] + [
        f"{f} {'appr' if g == 'approximate' else 'exact'} {'on' if x else 'off'}"
        for f, g, x in cols]
    rows = []
    for m in maps:
        cells = [_size(m)]
        for f, g, x in cols:
            r = by.get((m, f, g, x))
            if r is None:
                cells.append("-")
                continue
            text = f"{r['ratio']:.2f}"
            cells.append(text if r["ratio"] <= _layer_target(r) else f"**{text}**")
        rows.append(cells)
    return _table(header, rows)


def render_fused_call(d):
    def ms(v):
        return f"{v:.2f}" if v < 100 else f"{v:.1f}"

    rows = [[f"{_size(r['map'])}×{r['filters']} {r['gradient']}, XLA {'on' if r['xla'] else 'off'}",
             ms(r["plain_ms"]), f"{ms(r['fused_ms'])} ms = {r['fused_ratio']:.3f}×",
             f"{ms(r['unfused_ms'])} ms = {r['unfused_ratio']:.3f}×"] for r in d["rows"]]
    return _table(["point", "plain ms", "fused call", "ordinary ops"], rows)


def render_scores(d):
    points = []
    for r in d["rows"]:
        key = (r["map"], r["filters"], r["xla"])
        if key not in points:
            points.append(key)
    forms = []
    for r in d["rows"]:
        if r["formulation"] not in forms:
            forms.append(r["formulation"])
    by = {(r["formulation"], r["map"], r["filters"], r["xla"]): r for r in d["rows"]}
    header = ["formulation"] + [f"{_size(m)}×{f} XLA {'on' if x else 'off'}"
                                for m, f, x in points] + ["max error vs float32"]
    rows = []
    for form in forms:
        cells = [form]
        errors = []
        for m, f, x in points:
            r = by[(form, m, f, x)]
            errors.append(r["max_relative_error"])
            cells.append(f"{r['ms']:.2f} ms" if form == "matmul"
                         else f"{r['ms']:.2f} ms ({r['vs_matmul']:.2f}×)")
        worst = max(errors)
        cells.append("the reference" if worst == 0 else f"{worst:.0e}".replace("e-0", "e-"))
        rows.append(cells)
    return _table(header, rows)


_STEP_NAMES = {
    ("CSG, STD phase", "STD baseline"): ("CSG ResNet-20, STD phase",
                                         "the same ResNet-20 as a plain Keras model", 1.05),
    ("CSG, CSG phase", "STD baseline"): ("CSG ResNet-20, CSG phase (`std_in_csg=False`)",
                                         "the same", 1.05),
    ("distillation step", "performer layers replaced"): (
        "explainer distillation (VGG width 16, target `block3_pool`)",
        "forward + backward + Adam of the performer layers it stands in for (top conv, flatten,"
        " fc1)", None),
    ("distillation step", "performer training step"): (
        "the same", "a whole training step of the performer", None),
}


def render_steps(d):
    rows = []
    for r in d["rows"]:
        step, vs, target = _STEP_NAMES.get((r["step"], r["baseline"]),
                                           (r["step"], r["baseline"], None))
        rows.append([step, vs, f"{r['ms']:.1f} / {r['baseline_ms']:.1f}", f"{r['ratio']:.2f}",
                     f"{r['ratio_min']:.2f}-{r['ratio_max']:.2f}",
                     _verdict(r["ratio"], target) if target else "reported"])
    return _table(["step", "vs", "ms", "ratio", "spread", "target"], rows)


def render_data(d):
    g, st, step, mem = d["generate"], d["stream"], d["step"], d["memory"]
    small, large = sorted((k for k in mem if k.isdigit()), key=int)
    sec = step["seconds_per_step"]
    rows = [
        [f"synthetic generation, one core, {g['image_size']}×{g['image_size']}",
         f"{g['multi_images_per_s']:.0f} images/s (negatives {g['negatives_images_per_s']:.0f}/s)",
         "≥ 1000"],
        ["streamed CUB-layout JPEGs (288×288 files: decode, box crop, resize, part masks, "
         "shuffle, flip, batch) → 64 px", f"{st['64px_images_per_s']:.0f} images/s", ""],
        ["the same → 224 px", f"{st['224px_images_per_s']:.0f} images/s", ""],
        [f"training step, {step['model'].replace('vgg', 'VGG')}: streamed / in-memory arrays "
         "(same process, interleaved, best of 2)",
         f"{1000 * sec['streamed']:.1f} / {1000 * sec['in_memory']:.1f} ms = "
         f"{step['streamed_over_in_memory']:.3f}", "≤ 1.1"],
        [f"peak RSS streaming one epoch at {mem['image_size']} px: {small} vs {large} images",
         f"{mem[small]['streamed_peak_mib']:.0f} vs {mem[large]['streamed_peak_mib']:.0f} MiB "
         f"(+{mem['streamed_growth_mib']:.0f} MiB for {int(large) // int(small)}× the data)",
         "independent of size"],
        ["the same read into memory first (the old readers)",
         f"{mem[small]['read_into_memory_peak_mib']:.0f} vs "
         f"{mem[large]['read_into_memory_peak_mib']:.0f} MiB", ""],
    ]
    return _table(["what", "figure", "target"], rows)


def render_export(d):
    rows = [[r["batch"], f"{r['plain_serving_ms']:.2f}", f"{r['icnn_serving_ms']:.2f}",
             f"{r['icnn_explain_ms']:.2f}", f"{r['serving_ratio']:.2f}",
             f"{r['explain_ratio']:.2f}"] for r in d["rows"]]
    return _table(["batch", "plain `serving_default` ms", "interpretable `serving_default` ms",
                   "interpretable `explain` ms", "interpretable / plain", "explain / serving"],
                  rows)


_EXPLAIN_MODELS = {"vgg": "built-in VGG", "resnet50": "`resnet50`, `weights=None`"}


def render_explain(d):
    models = []
    for r in d["rows"]:
        if (r["model"], r["layer"]) not in models:
            models.append((r["model"], r["layer"]))
    by = {(r["model"], r["method"]): r for r in d["rows"]}
    rows = []
    for model, layer in models:
        floor = by[(model, "floor (tape Grad-CAM)")]
        none, top = by[(model, "explain, heatmaps=None")], by[(model, "explain, heatmaps='top'")]
        rows.append([f"{_EXPLAIN_MODELS.get(model, model)} (`{layer}`)",
                     f"{floor['median_ms']:.1f} ms",
                     f"{none['median_ms']:.1f} ms (**{none['ratio_to_floor']:.2f}×**)",
                     f"{top['median_ms']:.1f} ms ({top['ratio_to_floor']:.2f}×)"])
    return _table(["model", "floor (tape Grad-CAM)", "`explain(heatmaps=None)`",
                   "`explain(heatmaps=\"top\")`"], rows)


def _mean_std(values, fmt):
    import statistics

    values = list(values)
    if len(values) == 1:
        return fmt.format(values[0])
    spread = fmt.replace("+", "").format(statistics.stdev(values))
    return f"{fmt.format(statistics.mean(values))} ± {spread}"


_VARIANTS = (("argmax", "argmax (the old default)"), ("argmax_weight_0.1", "argmax, λ = 0.1"),
             ("argmax_schedule_paper", "argmax, the paper's λ schedule"),
             ("default", "**centroid mask** (`mu=\"centroid\"`)"))


def render_icnn_seeds(d):
    """bench_icnn_seeds.py: (1) the shared-pipeline seeds, (2) the variants on both validation
    splits, (3) the test figures with the defaults."""
    seeds = [d[f"synthetic/test/shared_pipeline/{s}"] for s in (0, 1, 2)]
    rows = [[s, f"{r['ordinary']['test_accuracy']:.4f}", f"{r['interpretable']['test_accuracy']:.4f}",
             f"{r['ordinary']['part_interpretability']:.4f} / "
             f"{r['interpretable']['part_interpretability']:.4f}",
             f"{r['ratios']['part_interpretability']:.2f}×",
             f"{r['ratios']['location_instability']:.3f}×"] for s, r in enumerate(seeds)]
    rows.append(["mean ± std", "", "",
                 f"{_mean_std((r['ordinary']['part_interpretability'] for r in seeds), '{:.3f}')}"
                 f" / {_mean_std((r['interpretable']['part_interpretability'] for r in seeds), '{:.3f}')}",
                 f"**{_mean_std((r['ratios']['part_interpretability'] for r in seeds), '{:.2f}')}×**",
                 f"**{_mean_std((r['ratios']['location_instability'] for r in seeds), '{:.3f}')}×**"])
    first = _table(["seed", "ordinary acc", "interpretable acc",
                    "part interp. ordinary / interpretable", "ratio",
                    "location instability ratio"], rows)
    rows = []
    for key, label in _VARIANTS:
        cells = [label]
        gaps = []
        for data in ("synthetic", "birds"):
            r = d.get(f"{data}/validation/{key}/0")
            if r is None:
                cells += ["-", "-"]
                gaps.append("-")
                continue
            cells += [f"{r['ratios']['part_interpretability']:.2f}×",
                      f"{r['ratios']['location_instability']:.3f}×"]
            gaps.append(f"{r['accuracy_gap']:+.3f}".replace("+0.000", "0.000"))
        rows.append(cells + [" / ".join(gaps)])
    second = _table(["variant", "synthetic: part interp. ratio",
                     "synthetic: location instability ratio", "birds: part interp. ratio",
                     "birds: location instability ratio", "accuracy gap (synthetic / birds)"], rows)
    rows = []
    for data, seeds in (("synthetic", (0, 1, 2)), ("birds", (0,))):
        runs = [d[f"{data}/test/default/{s}"] for s in seeds]
        pi = [r["ratios"]["part_interpretability"] for r in runs]
        li = [r["ratios"]["location_instability"] for r in runs]
        pi_text = f"**{_mean_std(pi, '{:.2f}')}×** ({'met' if sum(pi) / len(pi) >= 3 else 'missed'})"
        li_mean = sum(li) / len(li)
        li_text = (f"**{_mean_std(li, '{:.3f}')}×** ("
                   + ("met" if li_mean <= 0.45 else f"missed by {li_mean - 0.45:.3f}") + ")")
        rows.append([data, ", ".join(map(str, seeds)), pi_text, li_text,
                     _mean_std((r["accuracy_gap"] for r in runs), "{:+.3f}")])
    third = _table(["dataset", "seeds", "part interpretability ratio (target ≥ 3×)",
                    "location instability ratio (target ≤ 0.45×)",
                    "accuracy, ordinary - interpretable"], rows)
    return [first, second, third]


def render_csg_hard_validation(d):
    std = d["std_baseline"]
    rows = [[r["variant"], f"{r['csg_std_path_validation_accuracy']:.4f}",
             f"{r['accuracy_minus_std']:+.4f}", f"{r['csg_mis']:.4f}", f"{r['mis_ratio']:.3f}"]
            for r in d["rows"]]
    return _table(["variant (seed 0, validation split)", "STD-path accuracy",
                   f"− STD baseline ({std['std_validation_accuracy']:.4f})", "MIS(CSG)",
                   f"ratio to MIS(STD) {std['std_mis']:.4f}"], rows)


def render_csg_length(d):
    """bench_csg_length.py's final figures: the 90-epoch pairs of seeds 0-2 on the test split
    (mean ± population std, as its summary prints)."""
    import statistics

    runs = [d["runs"][f"hard/bench/e90/seed{s}"]["figures"]["test"] for s in (0, 1, 2)]
    l1 = [d["runs"][f"hard/bench/e90/seed{s}"]["l1_density"] for s in (0, 1, 2)]

    def headroom(r):
        return (r["csg"]["mis"] - r["baseline"]["mis"]) / (r["mis_ceiling"] - r["baseline"]["mis"])

    figures = [
        ("MIS(STD)", [r["baseline"]["mis"] for r in runs], "{:.4f}", "0.1119"),
        ("MIS(CSG)", [r["csg"]["mis"] for r in runs], "{:.4f}", "0.1603"),
        ("MIS(CSG) / MIS(STD)", [r["mis_ratio"] for r in runs], "{:.3f}", "1.43 (target ≥ 1.4)"),
        ("headroom closed, (CSG − STD) / (ceiling − STD)", [headroom(r) for r in runs], "{:.3f}",
         "0.23"),
        ("accuracy, STD baseline", [r["baseline"]["test_accuracy"] for r in runs], "{:.4f}",
         "0.9169"),
        ("accuracy, CSG STD path", [r["csg"]["std_path_test_accuracy"] for r in runs], "{:.4f}",
         "0.9192"),
        ("accuracy, CSG STD path − STD baseline (pt)",
         [100 * (r["csg"]["std_path_test_accuracy"] - r["baseline"]["test_accuracy"])
          for r in runs], "{:+.2f}", "+0.23 (target ≥ −1)"),
        ("L1-density of G", l1, "{:.4f}", "0.1000"),
    ]
    rows = []
    for name, values, fmt, paper in figures:
        mean, std = statistics.mean(values), statistics.pstdev(values)
        rows.append([name, f"{fmt.format(mean)} ± {fmt.replace('+', '').format(std)}",
                     ", ".join(fmt.format(v) for v in values), paper])
    return _table(["figure", "mean ± std over seeds", "seeds 0, 1, 2",
                   "CSG Table 1 (CIFAR-10)"], rows)


_DEMO_COLUMNS = (("mis", "MIS (↑)", "{:.4f}"), ("activmap_avg_iou", "ActivMap Avg-IoU (↑)", "{:.4f}"),
                 ("activmap_ap20", "AP20 (↑)", "{:.3f}"), ("activmap_ap30", "AP30 (↑)", "{:.3f}"),
                 ("gradmap_avg_iou", "GradMap Avg-IoU (↑)", "{:.4f}"),
                 ("redundancy_r0.1", "r_0.1 (↓)", "{:.4f}"), ("c_ic", "C_IC (↓)", "{:.4f}"),
                 ("unique_detectors", "unique detectors (↑)", "{}"),
                 ("mean_best_iou", "mean best IoU (↑)", "{:.4f}"))


def render_evaluate(d):
    """bench_evaluate.py (make demo's two commands): (1) the trainer's test figures, (2) the
    evaluation's other metrics, (3) its share of the training, (4) its stages per model."""
    row = d["rows"][-1]
    t = row["training_results"]
    o, i = t["ordinary"], t["interpretable"]
    first = _table(["model", "test accuracy", "location instability (↓)",
                    "part interpretability (↑)"],
                   [[name, f"{r['test_accuracy']:.4f}", f"{r['location_instability']:.4f}",
                     f"{r['part_interpretability']:.4f}"] for name, r in t.items()]
                   + [["interpretable / ordinary", "",
                       f"{i['location_instability'] / o['location_instability']:.2f}× (paper ≈ 0.62×)",
                       f"{i['part_interpretability'] / o['part_interpretability']:.2f}× "
                       "(paper 1.5-1.9×)"]])
    second = _table(["model"] + [h for _, h, _ in _DEMO_COLUMNS],
                    [[name] + [fmt.format(r[k]) if k in r else "n/a" for k, _, fmt in _DEMO_COLUMNS]
                     for name, r in row["report"].items()])
    ratio = row["evaluate_seconds"] / row["train_seconds"]
    third = _table(["command", "wall seconds", "share of the training"],
                   [["`train_icnn.py --epochs=8` (both models)", f"{row['train_seconds']:.1f}", ""],
                    ["`evaluate.py` on both models (imports included)",
                     f"{row['evaluate_seconds']:.1f}",
                     f"{100 * ratio:.1f}% (target ≤ 10%: {'met' if ratio <= 0.10 else 'missed'})"]])
    stages = row.get("stages") or {}
    names = list(dict.fromkeys(k for v in stages.values() for k in v))
    fourth = _table(["model"] + [f"{k.replace('_', ' ')} (s)" for k in names] + ["sum (s)"],
                    [[model] + [f"{v.get(k, 0):.1f}" for k in names] + [f"{sum(v.values()):.1f}"]
                     for model, v in stages.items()])
    return [first, second, third, fourth]


_EXPLAINER_VARIANTS = (
    ("raw", "floor_0", "old default (no floor)"),
    ("floor_0.1", "floor_0.1", "**`alpha_floor=0.1`** (adopted)"),
    ("floor_0.01", "floor_0.01", "`alpha_floor=0.01`"),
    ("floor_0.1_lr_1e-4_plr_1e-3", "floor_0.1_lr_1e-4_plr_1e-3", "floor 0.1, lr 1e-4, `p_lr=1e-3`"),
    ("lr_1e-4", "lr_1e-4", "no floor, lr 1e-4"),
    ("lr_1e-4_plr_1e-3_eta_10", None, "no floor, lr 1e-4, `p_lr=1e-3`, η = 10"),
    ("eta_5", None, "no floor, η = 5"),
    ("p_0.8", None, "no floor, initial p 0.8"),
    ("fraction_0", None, "no floor, `filter_fraction=0`"),
    ("unit_mean", None, "no floor, `loss_scale=\"unit_mean\"`"),
)


def _explainer_cells(r):
    if r is None:
        return ["-", "-", "-"]
    return [f"{r['p']:.3f}", f"{100 * r['delta_error']:+.2f} pt".replace("+0.00", "0.00"),
            f"{r['location_instability_ratio']:.3f}×"]


def render_tuning_explainer_datasets(d):
    """tune_explainer.py: (1) the variants on both validation splits, (2) the test figures with
    the defaults (the synthetic row from bench_interpretability.py's explainer part)."""
    rows = [[label] + _explainer_cells(d.get(f"birds/{b}"))
            + _explainer_cells(d.get(f"synthetic/{s}") if s else None)
            for b, s, label in _EXPLAINER_VARIANTS]
    first = _table(["variant", "birds: p", "birds: Δerror", "birds: location instability ratio",
                    "synthetic: p", "synthetic: Δerror",
                    "synthetic: location instability ratio"], rows)
    with open(os.path.join(ROOT, "benchmarks", "results", "interpretability.json")) as f:
        bench = json.load(f)
    li = bench["location_instability"]
    synthetic = {"p": bench["explainer"]["p"], "delta_error": bench["explainer"]["delta_error"],
                 "location_instability_ratio": li["explainer"] / li["performer_top_conv"]}
    birds = d["birds/default/test"]

    def verdicts(r):
        p, de, ratio = r["p"], 100 * r["delta_error"], r["location_instability_ratio"]
        return [f"**{p:.3f}** ({'met' if p >= 0.8 else 'missed'})",
                f"**{de:+.2f} pt** ({'met' if de <= 1 else 'missed'})".replace("+0.00", "0.00"),
                f"**{ratio:.3f}×** (" + ("met" if ratio <= 0.7 else f"missed by {ratio - 0.7:.2f}")
                + ")"]

    second = _table(
        ["dataset", "command", "p (target ≥ 0.8)", "Δerror (target ≤ 1 pt)",
         "location instability, explainer / performer (target ≤ 0.7×)"],
        [["synthetic bench", "`python benchmarks/bench_interpretability.py --parts=explainer "
          "--seeds=0,1,2`"] + verdicts(synthetic),
         ["birds", "`python benchmarks/tune_explainer.py --datasets=birds --variants=default "
          "--split=test`"] + verdicts(birds)])
    third = _table(
        ["conv-interp-1's initialisation", "birds: p", "birds: Δerror",
         "birds: location instability ratio", "birds: dead conv-interp-1 (epoch 1 → 20)",
         "synthetic: p", "synthetic: Δerror", "synthetic: location instability ratio",
         "synthetic: dead conv-interp-1 (epoch 1 → 20)"],
        [[label] + [cell for dataset in ("birds", "synthetic")
                    for cell in _explainer_cells(d.get(f"{dataset}/{key}"))
                    + [_dead(d.get(f"{dataset}/{key}"))]]
         for key, label in _SILENT_VARIANTS])
    return [first, second, third]


# Issue 48: the performer's silent top-conv filters copied (the old rule) or not.
_SILENT_VARIANTS = (
    ("copy_silent", "every filter copied, lr 1e-3 (the defaults until issue 48)"),
    ("fresh_silent", "silent filters fresh, lr 1e-3"),
    ("floor_0.1_lr_1e-4_plr_1e-3", "every filter copied, lr 1e-4, `p_lr=1e-3` (issue 26)"),
    ("fresh_silent_lr_1e-4_plr_1e-3", "**silent filters fresh, lr 1e-4, `p_lr=1e-3`** (adopted)"),
)


def _dead(r):
    dead = (r or {}).get("diagnostics", {}).get("dead_1")
    return "-" if not dead else f"{dead[0]:.0%} → {dead[-1]:.0%}"


# JSON results -> their table (the benchmarks that write none themselves).
def render_decision_tree(d):
    """Per run: the measures per parse-path depth, ordinary vs interpretable CNN."""
    out = []
    for run, models in d["runs"].items():
        names = [m for m in ("ordinary", "interpretable") if m in models]
        depths = list(models[names[0]]["depths"])
        header = ["depth"] + [f"{m} {k}" for m in names
                              for k in ("error ↓", "fitness ↑", "Pearson ↑", "accuracy ↑")]
        rows = []
        for depth in depths:
            row = [depth]
            for m in names:
                v = models[m]["depths"][depth]
                row += [f"{v['error']:.3f}", f"{v['fitness']:.3f}", f"{v['pearson']:.3f}",
                        f"{v['accuracy']:.3f}"]
            rows.append(row)
        modes = "; ".join(f"{m}: {sum(t['modes'] for t in models[m]['trees']) / len(models[m]['trees']):.1f} "
                          f"modes per class, CNN accuracy {models[m]['cnn_accuracy']:.3f}"
                          for m in names)
        out.append(_table(header, rows) + f"\n\n{run} ({modes})")
    if len(d["runs"]) > 1:  # per data set, over its runs (seeds): mean ± std at depth 1 and leaves
        import numpy as np

        rows = []
        for data in ("synthetic", "birds"):
            runs = [r for name, r in d["runs"].items()
                    if name.startswith("birds_") == (data == "birds")]
            for m in ("ordinary", "interpretable"):
                for depth in ("1", "leaf"):
                    values = {k: [r[m]["depths"][depth][k] for r in runs if m in r]
                              for k in ("error", "fitness", "accuracy")}
                    if not values["error"]:
                        continue
                    rows.append([data, m, depth, len(values["error"])] + [
                        f"{np.mean(v):.3f} ± {np.std(v, ddof=1) if len(v) > 1 else 0:.3f}"
                        for v in values.values()])
        out.append(_table(["data", "model", "depth", "runs", "error ↓", "fitness ↑",
                           "accuracy ↑"], rows))
    return out


RENDERERS = {"layers_quick.json": render_layers_quick, "layers.json": render_layers,
             "layers_56_dense.json": render_layers,
             "fused_call.json": render_fused_call, "scores.json": render_scores,
             "scores_crossover.json": render_scores,
             "steps.json": render_steps, "data.json": render_data, "export.json": render_export,
             "explain.json": render_explain, "icnn_seeds.json": render_icnn_seeds,
             "csg_hard_validation.json": render_csg_hard_validation,
             "csg_length.json": render_csg_length, "evaluate.json": render_evaluate,
             "tuning_explainer_datasets.json": render_tuning_explainer_datasets,
             "decision_tree.json": render_decision_tree}


def fill(text, root=ROOT):
    """``text`` with every marked table replaced by its source's; a missing source or table
    raises a ValueError naming it."""
    def replace(match):
        path, n = match.group("path"), int(match.group("n") or 1)
        source = os.path.join(root, path)
        if not os.path.isfile(source):
            raise ValueError(f"table source not found: {path}")
        if path.endswith(".json"):
            renderer = RENDERERS.get(os.path.basename(path))
            if renderer is None:
                raise ValueError(f"no table renderer for {path}: add one to RENDERERS")
            with open(source, encoding="utf-8") as f:
                found = renderer(json.load(f))
            found = [found] if isinstance(found, str) else found
        else:
            with open(source, encoding="utf-8") as f:
                found = tables(f.read())
        if not 1 <= n <= len(found):
            raise ValueError(f"{path} has {len(found)} tables; the marker asks for #{n}")
        suffix = f"#{match.group('n')}" if match.group("n") else ""
        return f"<!-- table: {path}{suffix} -->\n{found[n - 1]}\n<!-- /table -->"

    return MARKER.sub(replace, text)


def main():
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--check", action="store_true", help="report stale docs, change nothing")
    args = p.parse_args()
    stale = []
    for doc in sorted(glob.glob(os.path.join(ROOT, "docs", "*.md"))):
        with open(doc, encoding="utf-8") as f:
            text = f.read()
        new = fill(text)
        if new != text:
            stale.append(os.path.relpath(doc, ROOT))
            if not args.check:
                with open(doc, "w", encoding="utf-8") as f:
                    f.write(new)
    verb = "out of date" if args.check else "updated"
    print(f"{verb}: {', '.join(stale)}" if stale else "docs tables are up to date")
    return 1 if args.check and stale else 0


if __name__ == "__main__":
    sys.exit(main())
