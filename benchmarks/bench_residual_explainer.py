"""Explainers of residual performers (issue 48 item 6): the explainer stands in for the
performer's last residual block. p, Δerror and location instability (explainer / the
block's output) on the test split, each case a ``keras-icnn-train-explainer`` run as a user
types it; results go to ``benchmarks/results/residual_explainer.json`` as each case ends (a
finished case is skipped when the script is restarted).

Cases:
- ``hard_resnet20``: the STD ResNet-20 of ``bench_csg_hard.py`` (90 epochs on the hard
  10-category synthetic data, committed under ``results/models/csg_hard``) as the performer;
  the explainer reads ``stage3_block1_out`` (the last block's input).
- ``birds_resnet50``: a ``keras.applications.ResNet50`` (``--weights=none``) performer trained by
  the recipe on our birds at 128 px, the explainer at ``conv5_block2_out``. Heavy on a CPU
  (the explainer's two 3x3 convs have 2048 filters each).

Usage:
    python benchmarks/bench_residual_explainer.py --cases=hard_resnet20
    python benchmarks/bench_residual_explainer.py --table_only
"""
import argparse
import os
import subprocess
import sys
import time

import bench_common

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RESULTS = os.path.join(ROOT, "benchmarks", "results", "residual_explainer.json")
TABLE = os.path.join(ROOT, "benchmarks", "results", "residual_explainer.md")
CASES = {
    "hard_resnet20": [
        f"--performer={ROOT}/benchmarks/results/models/csg_hard/bench_e90_seed0/baseline.keras",
        "--layer=stage3_block1_out", "--dataset=synthetic", "--synthetic_config=hard",
        "--num_classes=10", "--num_train=3000", "--num_val=300", "--num_test=1200"],
    # The same at the explainer's learning rates before issue 48 (1e-3 for all, p included).
    "hard_resnet20_lr1e-3": [
        f"--performer={ROOT}/benchmarks/results/models/csg_hard/bench_e90_seed0/baseline.keras",
        "--layer=stage3_block1_out", "--dataset=synthetic", "--synthetic_config=hard",
        "--num_classes=10", "--num_train=3000", "--num_val=300", "--num_test=1200",
        "--learning_rate=1e-3", "--p_learning_rate=0"],
    "birds_resnet50": [
        "--backbone=resnet50", "--weights=none", "--image_size=128", "--dataset=cub",
        "--data_dir={birds}", "--num_val=240", "--performer_epochs=10", "--batch_size=16"],
}

# Cases whose performer the recipe trains: the layer the explainer reads when resumed from the
# saved performer (the backbone's default layer).
RESUME_LAYER = {"birds_resnet50": "conv5_block2_out"}


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cases", default=",".join(CASES))
    p.add_argument("--work_dir", default="/tmp/keras_icnn_residual_explainer")
    p.add_argument("--birds_dir", default="/tmp/keras_icnn_birds",
                   help="the evaluation birds (python -m keras_icnn.data.synthetic_birds "
                        "--output_dir=DIR writes them)")
    p.add_argument("--table_only", action="store_true")
    args = p.parse_args()
    state = bench_common.load_json(RESULTS, default={"machine": bench_common.machine(),
                                                     "runs": {}})
    for case in ([] if args.table_only else args.cases.split(",")):
        if case in state["runs"]:
            continue
        out = os.path.join(args.work_dir, case)
        os.makedirs(out, exist_ok=True)
        argv = ["keras-icnn-train-explainer", f"--output_dir={out}", "--verbose=0",
                *[a.format(birds=args.birds_dir) for a in CASES[case]]]
        performer = os.path.join(out, "performer.keras")
        if case in RESUME_LAYER and os.path.isfile(performer):
            # The performer finished before the run was stopped (the recipe writes it before
            # distilling): distil from it instead of training it again.
            argv = [a for a in argv if not a.startswith(("--backbone=", "--weights=",
                                                         "--performer_epochs="))]
            argv += [f"--performer={performer}", f"--layer={RESUME_LAYER[case]}"]
            print(f"  resumed from {performer}", flush=True)
        print(case, "...", flush=True)
        t0 = time.time()
        with open(os.path.join(out, "log.txt"), "w") as log:
            code = subprocess.call(argv, stdout=log, stderr=subprocess.STDOUT,
                                   env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
        if code:
            print(f"  {case} exited {code}: see {out}/log.txt", flush=True)
            continue
        r = bench_common.load_json(os.path.join(out, "results.json"))
        state["runs"][case] = {
            "argv": argv, "seconds": round(time.time() - t0, 1),
            "resumed_from_saved_performer": any(a.startswith("--performer=") for a in argv)
            and case in RESUME_LAYER, "p": r["p"],
            "delta_error": r["delta_error"], "performer_test_error": r["performer_test_error"],
            "location_instability": r["location_instability"],
            "part_consistency": r.get("part_consistency"),
            "part_stability": r.get("part_stability"), "dead_filters": r.get("dead_filters"),
            "reconstructs": r["reconstructs"]}
        bench_common.save_json(RESULTS, state)
    rows = ["| case | p | Δerror (points) | performer accuracy | location instability, "
            "explainer / block output | part consistency ratio |", "|---|---|---|---|---|---|"]
    for case, r in state["runs"].items():
        li = r["location_instability"] or {}
        pc = r.get("part_consistency") or {}
        ratio = "—" if pc.get("ratio") is None else f"{pc['ratio']:.2f}×"
        rows.append(f"| {case} | {r['p']:.3f} | {100 * r['delta_error']:+.2f} | "
                    f"{1 - r['performer_test_error']:.3f} | "
                    f"{li.get('ratio', float('nan')):.3f}× | {ratio} |")
    with open(TABLE, "w") as f:
        f.write("\n".join(rows) + "\n")
    print("\n".join(rows))


if __name__ == "__main__":
    sys.exit(main())
