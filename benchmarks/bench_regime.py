"""The papers' regime (issue 48): a pretrained backbone fine-tuned on a few dozen images per
class, against training from scratch, for each method against its own baseline.

Every run is the command a user types (``keras-icnn-train-icnn``, ``-train-explainer``,
``-train-csg``, ``-pretrain``), started as a process; its results.json is read back. Results
go to ``benchmarks/results/regime.json`` after every run; a run already there is skipped
(restart the script to continue). ``--table_only`` writes the tables without training.

Stages:
1. **Corpora** (under ``--work_dir``, deterministic): the bird pretraining corpus (30 species
   x 400 scenes, ``species_set="pretraining"``: no evaluation species) and the bird
   evaluation directory of this study (6 evaluation species x 600 scenes, 70% CUB training
   files, so 400 per species remain after the validation images: room for 300 per class).
   The synthetic corpora are generated in memory by the commands (``--categories``).
2. **Pretraining** (``keras-icnn-pretrain``, once per corpus x backbone): VGG (ICNN, and the
   explainer's performer) and ResNet-20 (CSG), width 16, 64 px, 15 epochs, on the
   synthetic pretraining categories (30 x 400) and on the pretraining birds.
3. **The study**: method x dataset x regime x seed, regime = (scratch | pretrained) x
   (30 | 300 training images per class). Each method's run trains its own baseline the same
   way (ICNN: the ordinary CNN; explainer: the performer it explains; CSG: ``--train_baseline``).

The rule, written before the runs: every setting is the command's default (the settings
chosen on the validation splits of the from-scratch regime, issues 25-46); pretrained runs
add only ``--weights`` (and the backbone's ``--width``); the figures are read on the test
split. Validation accuracy per epoch is recorded for the later choice of pretrained
defaults (issue 48 item 7), which is made on the validation splits only
(``benchmarks/tune_regime.py``): since then ``--weights`` also selects the commands'
pretrained ``--min_steps_per_epoch`` (explainer 50, CSG 25, ICNN one pass), and the
pretrained 30/class rows of the explainer and CSG were rerun with it.

Usage:
    python benchmarks/bench_regime.py --stage=pretrain
    python benchmarks/bench_regime.py --stage=study --seeds=0
    python benchmarks/bench_regime.py --table_only
"""
import argparse
import os
import shutil
import subprocess
import sys
import time

import bench_common

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RESULTS = os.path.join(ROOT, "benchmarks", "results", "regime.json")
TABLE = os.path.join(ROOT, "benchmarks", "results", "regime.md")
# The pretrained bases (about 1 MB each), committed so that a fresh work tree skips the
# pretraining (half an hour a backbone on 2 cores).
COMMITTED = os.path.join(ROOT, "benchmarks", "results", "models", "pretrained")
BIRDS_EVAL = dict(num_species=6, per_species=600, size=128, seed=0, train_fraction=0.7)
BIRDS_PRE = dict(num_species=30, per_species=400, size=128, seed=0, train_fraction=0.6,
                 species_set="pretraining")
WIDTH = 16
PRETRAIN_EPOCHS = 15
# explainer_resnet20: the explainer of a residual performer (issue 48 item 6), the command
# training a ResNet-20 performer from the same pretrained ResNet-20 base as CSG.
BACKBONES = {"icnn": "vgg", "explainer": "vgg", "csg": "resnet20",
             "explainer_resnet20": "resnet20"}
COMMANDS = {"icnn": "keras-icnn-train-icnn", "explainer": "keras-icnn-train-explainer",
            "csg": "keras-icnn-train-csg", "explainer_resnet20": "keras-icnn-train-explainer"}
REGIMES = ("pretrained_30", "scratch_30", "pretrained_300", "scratch_300")
DATASETS = ("synthetic", "birds")
METHODS = ("icnn", "explainer", "csg", "explainer_resnet20")
SEEDS_UNDER_SECONDS = 600  # more seeds only where seed 0's run took under 10 minutes


def birds_dir(work, kind):
    """Write (once) and return the bird directory ``kind`` ("eval" or "pretraining")."""
    from keras_icnn.data import synthetic_birds

    spec = BIRDS_EVAL if kind == "eval" else BIRDS_PRE
    path = os.path.join(work, f"birds_{kind}")
    marker = os.path.join(path, "WRITTEN.json")
    if bench_common.load_json(marker, default=None) != spec:
        print(f"writing {path} ...", flush=True)
        synthetic_birds.write_cub_birds(path, verbose=0, **spec)
        bench_common.save_json(marker, spec)
    return path


def data_flags(dataset, work, per_class=None, pretraining=False, num_val=None):
    if dataset == "synthetic":
        if pretraining:
            return ["--dataset=synthetic", "--categories=pretraining", "--num_classes=30",
                    "--num_train=12000", "--num_val=600", "--num_test=1200"]
        return ["--dataset=synthetic", "--num_classes=6", f"--num_train={6 * per_class}",
                f"--num_val={num_val or 300}", "--num_test=1200"]
    if pretraining:
        return ["--dataset=cub", f"--data_dir={birds_dir(work, 'pretraining')}", "--num_val=600"]
    return ["--dataset=cub", f"--data_dir={birds_dir(work, 'eval')}",
            f"--num_train={6 * per_class}", f"--num_val={num_val or 120}"]


def _commit():
    """The checkout's commit (``+dirty`` with uncommitted changes): which code a run used."""
    def git(*args):
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True,
                              text=True).stdout.strip()

    return git("rev-parse", "--short", "HEAD") + ("+dirty" if git("status", "--porcelain",
                                                                  "keras_icnn") else "")


def record(state, key, value):
    """Store one run in ``state`` and in RESULTS, merged under a lock with what other
    processes of this script recorded meanwhile (the study can run beside the pretraining)."""
    import fcntl

    with open(RESULTS + ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        on_disk = bench_common.load_json(RESULTS, default={"machine": bench_common.machine(),
                                                           "runs": {}})
        on_disk["runs"][key] = dict(value, commit=_commit())
        bench_common.save_json(RESULTS, on_disk)
        state["runs"].update(on_disk["runs"])


def run_command(argv, log):
    """Run one command to completion, its output into ``log``; raise with the log's tail."""
    t0 = time.time()
    with open(log, "w") as f:
        code = subprocess.call(argv, stdout=f, stderr=subprocess.STDOUT,
                               env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
    if code:
        with open(log) as f:
            tail = f.read()[-3000:]
        raise RuntimeError(f"{' '.join(argv)} exited {code}:\n{tail}")
    return time.time() - t0


def pretrain(state, work, only=None):
    for dataset in DATASETS:
        for backbone in sorted(set(BACKBONES.values())):
            key = f"pretrain/{dataset}/{backbone}"
            if key in state["runs"] or (only and key not in only):
                continue
            out = os.path.join(work, "pretrained", dataset, backbone)
            os.makedirs(out, exist_ok=True)
            done = os.path.join(out, "results.json")
            kept = os.path.join(COMMITTED, dataset, backbone)
            if not os.path.isfile(done) and os.path.isfile(os.path.join(kept, "results.json")):
                for name in ("results.json", "backbone.weights.h5"):  # a fresh work tree
                    shutil.copy(os.path.join(kept, name), os.path.join(out, name))
            if os.path.isfile(done) and os.path.isfile(os.path.join(out, "backbone.weights.h5")):
                results = bench_common.load_json(done)  # finished by an earlier, killed run
                record(state, key, dict(argv=None, seconds=results["seconds"],
                                        test_accuracy=results["test_accuracy"],
                                        val_accuracy=results["val_accuracy"],
                                        weights=results["weights_file"]))
                continue
            argv = ["keras-icnn-pretrain", f"--backbone={backbone}", f"--width={WIDTH}",
                    f"--epochs={PRETRAIN_EPOCHS}", f"--output_dir={out}", "--verbose=2",
                    *data_flags(dataset, work, pretraining=True)]
            print(key, "...", flush=True)
            seconds = run_command(argv, os.path.join(out, "log.txt"))
            results = bench_common.load_json(os.path.join(out, "results.json"))
            os.makedirs(kept, exist_ok=True)  # committed: a later session need not retrain
            for name in ("results.json", "backbone.weights.h5"):
                shutil.copy(os.path.join(out, name), os.path.join(kept, name))
            record(state, key, dict(argv=argv, seconds=round(seconds, 1),
                                    test_accuracy=results["test_accuracy"],
                                    val_accuracy=results["val_accuracy"],
                                    weights=results["weights_file"]))
            print(f"  test accuracy {results['test_accuracy']:.3f} ({seconds:.0f} s)", flush=True)


def figures(method, results):
    """The run's results.json, lists of per-epoch diagnostics left out (val accuracy kept)."""
    del method
    return {"results": {k: v for k, v in results.items() if k not in ("diagnostics",)}}


def _stat(values):
    values = [v for v in values if v is not None]
    if not values:
        return "—"
    mean = sum(values) / len(values)
    if len(values) == 1:
        return f"{mean:.3f}"
    sd = (sum((v - mean) ** 2 for v in values) / (len(values) - 1)) ** 0.5
    return f"{mean:.3f} ± {sd:.3f}"


def _get(tree, path):
    for key in path.split("/"):
        if not isinstance(tree, dict) or tree.get(key) is None:
            return None
        tree = tree[key]
    return tree


def _ratio(r, a, b):
    x, y = _get(r, a), _get(r, b)
    return None if x is None or y is None or y == 0 else x / y


# (column header, function of a run's results); ratios are method / its baseline.
COLUMNS = {
    "icnn": [("accuracy ordinary", lambda r: _get(r, "ordinary/test_accuracy")),
             ("accuracy interpretable", lambda r: _get(r, "interpretable/test_accuracy")),
             ("location instability ratio", lambda r: _get(r, "ratios/location_instability")),
             ("part consistency ordinary", lambda r: _get(r, "ordinary/part_consistency")),
             ("part consistency interpretable",
              lambda r: _get(r, "interpretable/part_consistency")),
             ("part consistency ratio", lambda r: _get(r, "ratios/part_consistency")),
             ("part stability ratio", lambda r: _get(r, "ratios/part_stability"))],
    "explainer": [("p", lambda r: r.get("p")),
                  ("Δerror (points)", lambda r: None if r.get("delta_error") is None
                   else 100 * r["delta_error"]),
                  ("performer accuracy", lambda r: None if r.get("performer_test_error") is None
                   else 1 - r["performer_test_error"]),
                  ("location instability ratio",
                   lambda r: _get(r, "location_instability/ratio")),
                  ("part consistency ratio", lambda r: _get(r, "part_consistency/ratio")),
                  ("part stability ratio", lambda r: _get(r, "part_stability/ratio"))],
    "csg": [("STD-path accuracy", lambda r: _get(r, "csg/std_path_test_accuracy")),
            ("baseline accuracy", lambda r: _get(r, "baseline/test_accuracy")),
            ("MIS CSG", lambda r: _get(r, "csg/mis")),
            ("MIS baseline", lambda r: _get(r, "baseline/mis")),
            ("MIS ratio", lambda r: r.get("mis_ratio")),
            ("L1-density", lambda r: r.get("l1_density"))],
}
COLUMNS["explainer_resnet20"] = COLUMNS["explainer"]


def tables(state):
    """Markdown: the pretraining runs, then per method a row per (dataset, regime), mean ± std
    over the seeds done (n)."""
    lines = ["# The regime study (issue 48): generated by benchmarks/bench_regime.py", "",
             f"Machine: {state.get('machine', '?')}. Test split; every setting the command's "
             "default (the rule in the script's docstring). Ratios: the method / its own "
             "baseline trained the same way.", "", "## Pretraining", "",
             "| corpus | backbone | test accuracy | seconds |", "|---|---|---|---|"]
    for key, run in sorted(state["runs"].items()):
        if key.startswith("pretrain/"):
            _, corpus, backbone = key.split("/")
            lines.append(f"| {corpus} | {backbone} | {run['test_accuracy']:.3f} | "
                         f"{run['seconds']:.0f} |")
    for method in METHODS:
        cols = COLUMNS[method]
        lines += ["", f"## {method}", "",
                  "| dataset | regime | n | " + " | ".join(c for c, _ in cols) + " |",
                  "|---|---|---|" + "---|" * len(cols)]
        for dataset in DATASETS:
            for regime in REGIMES:
                runs = [run["results"] for key, run in state["runs"].items()
                        if key.startswith(f"study/{method}/{dataset}/{regime}/")
                        and "results" in run]
                failed = sum(1 for key, run in state["runs"].items()
                             if key.startswith(f"study/{method}/{dataset}/{regime}/")
                             and "error" in run)
                if not runs and not failed:
                    continue
                n = f"{len(runs)}" + (f" ({failed} failed)" if failed else "")
                lines.append(f"| {dataset} | {regime} | {n} | " + " | ".join(
                    _stat([fn(r) for r in runs]) for _, fn in cols) + " |")
    return "\n".join(lines) + "\n"


def study(state, work, seeds, methods, datasets, regimes):
    for seed in seeds:
        for regime in regimes:
            init, per_class = regime.split("_")
            for dataset in datasets:
                for method in methods:
                    key = f"study/{method}/{dataset}/{regime}/seed{seed}"
                    # What other processes of this script recorded meanwhile (pretraining).
                    state["runs"].update(bench_common.load_json(
                        RESULTS, default={"runs": {}})["runs"])
                    if key in state["runs"] and "error" not in state["runs"][key]:
                        continue
                    first = state["runs"].get(f"study/{method}/{dataset}/{regime}/seed0", {})
                    if seed > 0 and first.get("seconds", 0) > SEEDS_UNDER_SECONDS:
                        # The rule: 3 seeds where a run is under 10 minutes.
                        print(f"{key}: skipped (seed 0 took {first['seconds']:.0f} s > "
                              f"{SEEDS_UNDER_SECONDS} s: one seed)", flush=True)
                        continue
                    backbone = BACKBONES[method]
                    if init == "pretrained" and f"pretrain/{dataset}/{backbone}" not in \
                            state["runs"]:
                        print(f"{key}: its pretrained {backbone} is not ready, skipped "
                              "(rerun the script after --stage=pretrain)", flush=True)
                        continue
                    out = os.path.join(work, "study", method, dataset, regime, f"seed{seed}")
                    os.makedirs(out, exist_ok=True)
                    done = os.path.join(out, "results.json")
                    if os.path.isfile(done):  # finished by a run killed before it recorded
                        record(state, key, dict(argv=None, recovered=True, **figures(
                            method, bench_common.load_json(done))))
                        continue
                    argv = [COMMANDS[method], f"--backbone={backbone}", f"--width={WIDTH}",
                            f"--seed={seed}", f"--output_dir={out}", "--verbose=2",
                            *data_flags(dataset, work, int(per_class))]
                    if method == "csg":
                        argv.append("--train_baseline")
                    if init == "pretrained":
                        weights = state["runs"][f"pretrain/{dataset}/{backbone}"]["weights"]
                        argv.append(f"--weights={weights}")
                    print(key, "...", flush=True)
                    try:
                        seconds = run_command(argv, os.path.join(out, "log.txt"))
                    except RuntimeError as err:
                        record(state, key, dict(argv=argv, error=str(err)[-1500:]))
                        print("  FAILED", str(err)[-400:], flush=True)
                        continue
                    results = bench_common.load_json(os.path.join(out, "results.json"))
                    record(state, key, dict(argv=argv, seconds=round(seconds, 1),
                                            **figures(method, results)))
                    print(f"  {seconds:.0f} s", flush=True)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--stage", choices=("pretrain", "study", "all"), default="all")
    p.add_argument("--work_dir", default="/tmp/keras_icnn_regime")
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--methods", default=",".join(METHODS))
    p.add_argument("--datasets", default=",".join(DATASETS))
    p.add_argument("--regimes", default=",".join(REGIMES))
    p.add_argument("--table_only", action="store_true")
    args = p.parse_args()
    state = bench_common.load_json(RESULTS, default={"machine": bench_common.machine(),
                                                     "runs": {}})
    if not args.table_only:
        if args.stage in ("pretrain", "all"):
            pretrain(state, args.work_dir)
        if args.stage in ("study", "all"):
            study(state, args.work_dir, [int(s) for s in args.seeds.split(",")],
                  args.methods.split(","), args.datasets.split(","), args.regimes.split(","))
    with open(TABLE, "w") as f:
        f.write(tables(state))
    print(f"wrote {TABLE}")


if __name__ == "__main__":
    sys.exit(main())
