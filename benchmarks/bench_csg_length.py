"""CSG the paper's way (issue 27): Algorithm 1's recipe, a training-length study, 3 seeds.

Stages (each run writes ``benchmarks/results/csg_length.json`` when it finishes and is
skipped when the script is restarted; a killed CSG run resumes from its last epoch through
the recipe's ``BackupAndRestore`` while its output directory survives):

``variants``
    Seed 0, 30 epochs, the hard 10-class data (``--synthetic_config=hard``, 3000 training /
    600 validation / 1200 test images, density 0.1 = Table 1's for 10 classes), measured on
    the **validation** split (test figures are stored too, never used to choose):

    - ``bench``: ``bench_csg_hard.py``'s settings (Adam, cosine, warm-up 3, eq. 3's STD term
      in CSG epochs, G on its own Adam at 0.05);
    - ``paper``: ``train_csg.py --recipe=paper`` (App. B: SGD momentum 0.9, lr 0.1 x 64/256,
      step decay per phase, one CSG epoch in three, last epoch STD, Algorithm 1's CSG
      objective, G in the CSG-phase optimizer);
    - ``paper_density_0.2``: the same at the authors' code's density 0.2;
    - ``paper_gate_own``: the same with G on its own Adam at 0.05.

    Each variant is compared with the STD baseline trained *its* way (Adam + cosine for
    ``bench``; SGD + step decay for the ``paper`` family: same seed, data and epochs).
    The selection rule (written here before the runs, ``RULE``): the highest MIS ratio
    among variants whose STD-path validation accuracy is within 1 point of their STD
    baseline's (>= baseline - 0.01); if none is, the one with the smallest gap.

``length``
    Seed 0, the chosen variant and its STD baseline at 30, 60 and 90 epochs (the 30-epoch
    pair is the ``variants`` run): MIS ratio and accuracy gap against training steps, on
    both splits; ``--plot`` draws ``results/csg_length.png``.

``seeds``
    Seeds 1 and 2 at the longest length: the test-split figures over 3 seeds, mean ± std.

``default_data``
    ``train_csg.py``'s own defaults against ``--recipe=paper`` on the validation splits of
    the default 6-class data (3000 images, 30 epochs, density 0.2) and of the hard data
    (the preset's run there is ``variants``' ``paper``), for the question whether the
    preset becomes the trainer's default.

The models of the ``length`` and ``seeds`` stages are written under
``benchmarks/results/models/csg_hard/`` (committed: the detection issue uses them); the
``variants`` and ``default_data`` models go to ``--work_dir``.

    python benchmarks/bench_csg_length.py --stages=variants          # ~40 min on 2 cores
    python benchmarks/bench_csg_length.py --stages=length            # ~80 min
    python benchmarks/bench_csg_length.py --stages=seeds             # ~100 min
    python benchmarks/bench_csg_length.py --summary --plot           # tables and the plot
"""
import argparse
import json
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
HERE = os.path.dirname(os.path.abspath(__file__))

import bench_common  # noqa: E402

RESULTS = os.path.join(HERE, "results", "csg_length.json")
MODELS = os.path.join(HERE, "results", "models", "csg_hard")
HARD = dict(num_classes=10, synthetic_config="hard", num_train=3000, num_val=600,
            num_test=1200, density=0.1)
DEFAULT_DATA = dict(num_classes=6, num_train=3000, num_val=600, num_test=1200)
VARIANTS = {
    "bench": dict(warmup=3, std_in_csg=True, learning_rate_schedule="cosine"),
    "paper": dict(recipe="paper"),
    "paper_density_0.2": dict(recipe="paper", density=0.2),
    "paper_gate_own": dict(recipe="paper", gate_optimizer="own"),
}
# The STD baseline depends only on how the network is trained, not on the gate.
FAMILY = {"bench": "adam_cosine", "paper": "sgd_step", "paper_density_0.2": "sgd_step",
          "paper_gate_own": "sgd_step"}
RULE = ("variants at 30 epochs, seed 0, validation split: the highest MIS(CSG)/MIS(STD) among "
        "variants whose STD-path accuracy is >= their STD baseline's - 0.01; if none is, the "
        "one with the smallest accuracy gap (written 2026-12-03, before the runs)")
DEFAULT_RULE = ("train_csg.py's default becomes --recipe=paper only if the preset is at least "
                "as good on the validation splits of both the default 6-class and the hard data: "
                "a MIS ratio and an accuracy gap (each against its own STD baseline) both no "
                "lower than the default's; the hard-data default run is needed only when the "
                "6-class data does not already decide (written 2026-12-05, before the runs)")
LENGTHS = (30, 60, 90)
SPLITS = ("validation", "test")


def load():
    return bench_common.load_json(RESULTS, {"machine": bench_common.machine(), "rule": RULE,
                                            "runs": {}})


def save(state):
    """Write ``state``, keeping runs another process of this script finished meanwhile (the
    seeds can run as parallel processes: ``--stages=seeds --seeds=1`` and ``--seeds=2``)."""
    on_disk = bench_common.load_json(RESULTS)
    state["runs"] = {**on_disk.get("runs", {}), **state["runs"]}
    bench_common.save_json(RESULTS, state)


def _config(data, settings, epochs, seed, output_dir, baseline):
    from keras_icnn import recipes

    # The variant's settings are explicit: a preset (--recipe) must not overwrite one that
    # happens to equal the plain default (gate_optimizer="own" under recipe="paper").
    return recipes.CSGConfig(epochs=epochs, seed=seed, output_dir=output_dir,
                             train_baseline=baseline, eval_split="validation", verbose=2,
                             explicit=tuple(settings), **{**data, **settings})


def run(state, key, data, settings, epochs, seed, output_dir, baseline):
    """Train (unless ``key`` is done) and measure on both splits; returns the row."""
    import keras

    from keras_icnn import recipes
    from keras_icnn.recipes import csg as csg_recipe

    if key in state["runs"]:
        print(f"== {key}: done, skipped")
        return state["runs"][key]
    print(f"\n== {key} ({epochs} epochs, seed {seed}) -> {output_dir}", flush=True)
    config = _config(data, settings, epochs, seed, output_dir, baseline)
    r = recipes.run_csg_experiment(config)
    models = {"csg": keras.saving.load_model(os.path.join(output_dir, "csg.keras"))}
    if baseline:
        models["baseline"] = keras.saving.load_model(os.path.join(output_dir, "baseline.keras"))
    source = recipes.common.open_data(config)
    figures = {split: csg_recipe.split_figures(config, source, models, split) for split in SPLITS}
    steps = -(-source.size("train") // config.batch_size)
    from keras_icnn.models.csg import phase_table

    phases = phase_table(epochs, config.period, config.csg_epochs, config.warmup,
                         config.final_std)
    row = {"key": key, "seed": seed, "epochs": epochs, "steps": epochs * steps,
           "csg_steps": phases.count("csg") * steps, "seconds": r["seconds"],
           "l1_density": r["l1_density"], "output_dir": os.path.relpath(output_dir, HERE),
           "settings": {k: getattr(config, k) for k in (
               "recipe", "optimizer", "momentum", "nesterov", "weight_decay", "learning_rate", "csg_learning_rate",
               "gate_optimizer", "gate_learning_rate", "learning_rate_schedule", "period", "csg_epochs", "warmup",
               "final_std", "std_in_csg", "density", "lambda1", "lambda2", "batch_size",
               "num_classes", "synthetic_config", "num_train", "num_val", "num_test")},
           "figures": figures}
    state["runs"][key] = row
    save(state)
    if os.path.abspath(output_dir).startswith(os.path.abspath(MODELS)):
        strip_models(output_dir)
    return row


def strip_models(output_dir):
    """Re-save the committed ``.keras`` files without their optimizers (5.8 -> 1.4 MB for
    the CSG model: three optimizers' slots), and drop the resume diagnostics."""
    import keras

    import keras_icnn  # noqa: F401  (registers the layers)

    for name in ("csg.keras", "baseline.keras"):
        path = os.path.join(output_dir, name)
        if not os.path.exists(path):
            continue
        if getattr(keras.saving.load_model(path), "optimizer", None) is None:
            continue   # stripped already (re-saving would only change the zip's timestamps)
        model = keras.saving.load_model(path, compile=False)
        tmp = path + ".tmp.keras"
        model.save(tmp)
        os.replace(tmp, path)
    for name in ("gate_at_resume.npy",):
        if os.path.exists(os.path.join(output_dir, name)):
            os.remove(os.path.join(output_dir, name))


def baseline_row(state, key):
    """The run holding the STD baseline for the CSG run ``key`` ("<data>/<variant>/e<E>/
    seed<s>"): the run itself, or the variant of the same family, epochs and seed that
    trained one."""
    data, name, epochs, seed = key.split("/")[:4]
    for other in [name] + [v for v in VARIANTS if FAMILY.get(v) == FAMILY.get(name)]:
        row = state["runs"].get(f"{data}/{other}/{epochs}/{seed}")
        if row is not None and "baseline" in row["figures"]["validation"]:
            return row
    return None


def pair_figures(state, key, split):
    """MIS of both, MIS ratio and accuracies of CSG run ``key`` and its STD baseline."""
    base = baseline_row(state, key)
    if base is None:
        return None
    c, b = state["runs"][key]["figures"][split], base["figures"][split]
    acc_csg = c["csg"][f"std_path_{split}_accuracy"]
    acc_std = b["baseline"][f"{split}_accuracy"]
    return {"mis_ratio": c["csg"]["mis"] / b["baseline"]["mis"], "mis_csg": c["csg"]["mis"],
            "mis_std": b["baseline"]["mis"], "accuracy_csg_std_path": acc_csg,
            "accuracy_std": acc_std, "accuracy_gap": acc_csg - acc_std,
            "baseline_from": base["key"]}


def variant_rows(state):
    """The variants against their family's STD baseline; the chosen one by ``RULE``."""
    rows = []
    for name in VARIANTS:
        key = f"hard/{name}/e{LENGTHS[0]}/seed0"
        if key not in state["runs"]:
            continue
        f = pair_figures(state, key, "validation")
        if f is not None:
            rows.append(dict(f, variant=name, key=key, l1_density=state["runs"][key]["l1_density"]))
    ok = [r for r in rows if r["accuracy_gap"] >= -0.01]
    chosen = (max(ok, key=lambda r: r["mis_ratio"]) if ok else
              max(rows, key=lambda r: r["accuracy_gap"]) if rows else None)
    return rows, chosen


def stage_variants(state, work):
    for name, settings in VARIANTS.items():
        key = f"hard/{name}/e{LENGTHS[0]}/seed0"
        # One baseline per family: the first variant of the family trains it.
        run(state, key, HARD, settings, LENGTHS[0], 0,
            os.path.join(work, f"hard_{name}_e{LENGTHS[0]}_seed0"),
            baseline_row(state, key) is None)
    rows, chosen = variant_rows(state)
    state["chosen"] = chosen and chosen["variant"]
    save(state)
    print(json.dumps(rows, indent=1), "\nchosen:", state["chosen"])


def _chosen(state, override):
    name = override or state.get("chosen")
    if not name:
        raise SystemExit("run --stages=variants first (or pass --variant)")
    return name


def _model_dir(name, epochs, seed):
    return os.path.join(MODELS, f"{name}_e{epochs}_seed{seed}")


def stage_length(state, work, override):
    name = _chosen(state, override)
    for epochs in LENGTHS:
        key = f"hard/{name}/e{epochs}/seed0"
        out = (_model_dir(name, epochs, 0) if epochs == LENGTHS[-1] else
               os.path.join(work, f"hard_{name}_e{epochs}_seed0"))
        # A family's baseline is trained once per (epochs, seed): by this run unless another
        # variant of the family already has it.
        run(state, key, HARD, VARIANTS[name], epochs, 0, out,
            baseline_row(state, key) is None)


def stage_seeds(state, override, seeds=(1, 2)):
    name = _chosen(state, override)
    epochs = LENGTHS[-1]
    for seed in seeds:
        run(state, f"hard/{name}/e{epochs}/seed{seed}", HARD, VARIANTS[name], epochs, seed,
            _model_dir(name, epochs, seed), True)


def stage_default_data(state, work):
    """``train_csg.py``'s own defaults (Adam 1e-3 constant, period 2, warm-up 1, Algorithm 1)
    against the paper preset, each with its own STD baseline, at 30 epochs on the validation
    splits of the default 6-class data and of the hard data (the preset's hard-data run is
    the ``variants`` stage's ``paper``)."""
    runs = [("default6", "default", DEFAULT_DATA, {}), ("default6", "paper", DEFAULT_DATA,
            dict(recipe="paper")), ("hard", "default", HARD, {})]
    state["default_rule"] = DEFAULT_RULE
    for data, name, sizes, settings in runs:
        run(state, f"{data}/{name}/e{LENGTHS[0]}/seed0", sizes, settings, LENGTHS[0], 0,
            os.path.join(work, f"{data}_{name}_e{LENGTHS[0]}_seed0"), True)


def pair_rows(state, name):
    """Length/seed rows of variant ``name`` on the hard data (each with its baseline)."""
    out = []
    keys = [k for k in state["runs"] if k.startswith(f"hard/{name}/")]
    for key in sorted(keys, key=lambda k: (state["runs"][k]["seed"], state["runs"][k]["epochs"])):
        row = state["runs"][key]
        figures = {split: pair_figures(state, key, split) for split in SPLITS}
        if figures["test"] is None:
            continue
        out.append(dict(figures, key=key, seed=row["seed"], epochs=row["epochs"],
                        steps=row["steps"], csg_steps=row["csg_steps"],
                        l1_density=row["l1_density"]))
    return out


def committed_pair(seed, name=None, epochs=None):
    """The committed ``length``/``seeds`` run of ``seed`` (the chosen variant, the longest
    length) in ``bench_csg_hard.train_pair``'s format (test-split figures, model paths),
    or None when it has not run. ``make bench``'s hard-data rows read it."""
    state = load()
    name = name or state.get("chosen")
    epochs = epochs or LENGTHS[-1]
    row = state["runs"].get(f"hard/{name}/e{epochs}/seed{seed}")
    if row is None:
        return None
    import bench_csg_hard

    figures = dict(row["figures"]["test"], l1_density=row["l1_density"])
    return bench_csg_hard.pair_row(
        seed, figures, row["seconds"], os.path.join(HERE, row["output_dir"]),
        dict(row["settings"], epochs=row["epochs"], backbone="resnet20",
             source=f"bench_csg_length.py run {row['key']}"))


def summary(state, override=None):
    import numpy as np

    from keras_icnn.reporting.tables import table

    lines = [f"Variants ({LENGTHS[0]} epochs, seed 0, validation split; " + RULE + "):", ""]
    rows, chosen = variant_rows(state)
    lines.append(table(
        ["variant", "MIS(CSG)/MIS(STD)", "STD-path acc. - its STD baseline", "L1-density"],
        [[r["variant"] + (" (chosen)" if chosen and r["variant"] == chosen["variant"] else ""),
          f"{r['mis_ratio']:.3f}", f"{100 * r['accuracy_gap']:+.2f} pt",
          f"{r['l1_density']:.3f}"] for r in rows]))
    name = override or state.get("chosen")
    if name:
        pairs = pair_rows(state, name)
        lines += ["", f"Length study, {name}, seed 0 (validation / test):", ""]
        lines.append(table(
            ["epochs", "steps (CSG steps)", "MIS ratio, validation / test",
             "STD-path accuracy − STD baseline, validation / test", "L1-density"],
            [[p["epochs"], f"{p['steps']} ({p['csg_steps']})",
              f"{p['validation']['mis_ratio']:.3f} / {p['test']['mis_ratio']:.3f}",
              f"{100 * p['validation']['accuracy_gap']:+.2f} / "
              f"{100 * p['test']['accuracy_gap']:+.2f} pt", f"{p['l1_density']:.3f}"]
             for p in pairs if p["seed"] == 0]))
        longest = [p for p in pairs if p["epochs"] == LENGTHS[-1]]
        if longest:
            ratio = np.array([p["test"]["mis_ratio"] for p in longest])
            acc = np.array([p["test"]["accuracy_gap"] for p in longest])
            lines += ["", f"Test split at {LENGTHS[-1]} epochs, seeds "
                      f"{', '.join(str(p['seed']) for p in longest)}: MIS ratio "
                      f"{ratio.mean():.3f} ± {ratio.std():.3f} "
                      f"({', '.join(f'{v:.3f}' for v in ratio)}); accuracy gap "
                      f"{100 * acc.mean():+.2f} ± {100 * acc.std():.2f} pt "
                      f"({', '.join(f'{100 * v:+.2f}' for v in acc)})"]
    pairs = [(data, name, f"{data}/{name}/e{LENGTHS[0]}/seed0") for data in ("default6", "hard")
             for name in ("default", "paper")]
    pairs = [p for p in pairs if p[2] in state["runs"]]
    if pairs:
        lines += ["", f"train_csg.py's default vs --recipe=paper, {LENGTHS[0]} epochs, seed 0, "
                  "validation split (each against its own STD baseline):", ""]
        figures = [(data, name_, pair_figures(state, key, "validation"))
                   for data, name_, key in pairs]
        lines.append(table(["data", "recipe", "MIS ratio", "accuracy gap",
                            "STD baseline accuracy"],
                           [[data, name_, f"{f['mis_ratio']:.3f}",
                             f"{100 * f['accuracy_gap']:+.2f} pt", f"{f['accuracy_std']:.4f}"]
                            for data, name_, f in figures]))
    return "\n".join(lines)


def plot(state, override=None, path=None):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    name = _chosen(state, override)
    pairs = [p for p in pair_rows(state, name) if p["seed"] == 0]
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.4))
    for split, style in (("validation", "o-"), ("test", "s--")):
        steps = [p["steps"] for p in pairs]
        axes[0].plot(steps, [p[split]["mis_ratio"] for p in pairs], style, label=split)
        axes[1].plot(steps, [100 * p[split]["accuracy_gap"] for p in pairs], style, label=split)
    others = [p for p in pair_rows(state, name) if p["seed"] != 0]
    if others:   # the other seeds at the longest length, test split
        axes[0].plot([p["steps"] for p in others], [p["test"]["mis_ratio"] for p in others],
                     "x", color="C1", label="test, seeds " + ", ".join(str(p["seed"]) for p in others))
        axes[1].plot([p["steps"] for p in others],
                     [100 * p["test"]["accuracy_gap"] for p in others], "x", color="C1",
                     label="test, seeds " + ", ".join(str(p["seed"]) for p in others))
    axes[0].axhline(1.43, color="grey", lw=0.8, ls=":", label="paper (CIFAR-10)")
    axes[0].set(xlabel="training steps", ylabel="MIS(CSG) / MIS(STD)")
    axes[1].axhline(0.23, color="grey", lw=0.8, ls=":", label="paper (+0.23)")
    axes[1].axhline(-1.0, color="red", lw=0.8, ls=":", label="target (-1 pt)")
    axes[1].set(xlabel="training steps", ylabel="STD-path acc. - STD baseline (pt)")
    for ax in axes:
        ax.legend(fontsize=7)
        ax.grid(alpha=0.3)
    fig.suptitle(f"CSG ({name}) on the hard 10-class data, seed 0 (lines): "
                 f"{', '.join(str(p['epochs']) for p in pairs)} epochs",
                 fontsize=9)
    fig.tight_layout()
    path = path or os.path.join(os.path.dirname(RESULTS), "csg_length.png")
    fig.savefig(path, dpi=110)
    print("wrote", path)


def main():
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--stages", default="",
                   help="comma-separated: variants, length, seeds, default_data")
    p.add_argument("--variant", default="", help="override the chosen variant (length, seeds)")
    p.add_argument("--work_dir", default="/tmp/keras_icnn_csg_length",
                   help="where the variants' and default-data models go")
    p.add_argument("--seeds", default="1,2", help="the seeds stage's seeds (seed 0 is the "
                   "length stage's); one per process to run them in parallel")
    p.add_argument("--summary", action="store_true", help="print the tables")
    p.add_argument("--quick", action="store_true",
                   help="tiny sizes and lengths 2, 3, 4 into --work_dir, to check the script")
    p.add_argument("--plot", action="store_true", help="write results/csg_length.png")
    p.add_argument("--strip_models", action="store_true",
                   help="re-save the committed models without optimizers (done after each run)")
    args = p.parse_args()
    if args.quick:
        global RESULTS, MODELS, LENGTHS
        RESULTS = os.path.join(args.work_dir, "csg_length_quick.json")
        MODELS = os.path.join(args.work_dir, "models")
        LENGTHS = (2, 3, 4)
        for sizes in (HARD, DEFAULT_DATA):
            sizes.update(num_train=200, num_val=100, num_test=100, image_size=32, width=4)
    state = load()
    t0 = time.time()
    for stage in [s for s in args.stages.split(",") if s]:
        if stage == "variants":
            stage_variants(state, args.work_dir)
        elif stage == "length":
            stage_length(state, args.work_dir, args.variant)
        elif stage == "seeds":
            stage_seeds(state, args.variant, tuple(int(v) for v in args.seeds.split(",")))
        elif stage == "default_data":
            stage_default_data(state, args.work_dir)
        else:
            raise SystemExit(f"unknown stage {stage!r}")
    if args.stages:
        print(f"stages took {time.time() - t0:.0f} s")
    if args.strip_models:
        for name in sorted(os.listdir(MODELS)):
            if os.path.exists(os.path.join(MODELS, name, "results.json")):
                strip_models(os.path.join(MODELS, name))
    if args.summary:
        text = summary(state, args.variant)
        with open(os.path.splitext(RESULTS)[0] + ".md", "w") as f:  # docs_tables.py reads it
            f.write(text + "\n")
        print(text)
    if args.plot:
        plot(state, args.variant)


if __name__ == "__main__":
    main()
