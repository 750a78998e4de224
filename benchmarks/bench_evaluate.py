"""How long ``trainers/evaluate.py`` takes against the training it evaluates.

Runs ``make demo``'s two commands as subprocesses, one after the other, and
times each (wall clock, process start and imports included, as a user sees
them): ``trainers/train_icnn.py --epochs=8`` (an ordinary and an interpretable
VGG on the synthetic data) and ``trainers/evaluate.py`` on both models (the
1200-image test split: every metric, pictures and report.html). Target (issue
17): evaluation <= 10% of the training time. The evaluation's own breakdown
(report.json's ``seconds``, excluding imports, and each model's ``stage_seconds``) is
reported too.

    python benchmarks/bench_evaluate.py                # ~8 minutes on 2 CPU cores
    python benchmarks/bench_evaluate.py --models_dir=/tmp/keras_icnn_demo --skip_training
                                                       # time only the evaluation

Writes benchmarks/results/evaluate.json (``--out``).
"""
import argparse
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)

import bench_common  # noqa: E402


def timed(cmd):
    """Wall seconds of ``cmd`` (run from the repository root; fails loudly)."""
    t0 = time.perf_counter()
    subprocess.run([sys.executable] + cmd, cwd=ROOT, check=True,
                   env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"))
    return time.perf_counter() - t0


def main():
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models_dir", default="/tmp/keras_icnn_bench_evaluate",
                   help="where the demo models are trained (and read with --skip_training)")
    p.add_argument("--epochs", type=int, default=8, help="make demo's 8")
    p.add_argument("--skip_training", action="store_true",
                   help="evaluate models already in --models_dir; no training time")
    p.add_argument("--out", default=os.path.join(HERE, "results", "evaluate.json"))
    args = p.parse_args()
    row = {"epochs": args.epochs}
    if not args.skip_training:
        row["train_seconds"] = timed(["trainers/train_icnn.py", f"--output_dir={args.models_dir}",
                                      f"--epochs={args.epochs}", "--verbose=0"])
    models = [os.path.join(args.models_dir, f"{m}.keras") for m in ("ordinary", "interpretable")]
    eval_dir = os.path.join(args.models_dir, "eval")
    row["evaluate_seconds"] = timed(["trainers/evaluate.py", "--models=" + ",".join(models),
                                     f"--output_dir={eval_dir}", "--verbose=0"])
    report = bench_common.load_json(os.path.join(eval_dir, "report.json"))
    row["evaluate_seconds_in_report"] = report["seconds"]
    # The figures of both commands (docs/results.md's demo tables are drawn from them).
    row["report"] = {name: {k: v for k, v in r.items() if isinstance(v, (int, float))}
                     for name, r in report["models"].items()}
    # Where the evaluation's time goes, per model (report.json's stage_seconds).
    row["stages"] = {name: r.get("stage_seconds", {}) for name, r in report["models"].items()}
    trained = os.path.join(args.models_dir, "results.json")
    if not args.skip_training and os.path.isfile(trained):
        results = bench_common.load_json(trained)
        row["training_results"] = {
            name: {k: results[name].get(k) for k in ("test_accuracy", "location_instability",
                                                      "part_interpretability")}
            for name in ("ordinary", "interpretable") if name in results}
    if "train_seconds" in row:
        row["ratio"] = row["evaluate_seconds"] / row["train_seconds"]
        print(f"training {row['train_seconds']:.1f} s, evaluation {row['evaluate_seconds']:.1f} s "
              f"= {100 * row['ratio']:.1f}% (target <= 10%: "
              f"{'met' if row['ratio'] <= 0.10 else 'MISSED'})")
    else:
        print(f"evaluation {row['evaluate_seconds']:.1f} s")
    bench_common.write_rows(args.out, [row])


if __name__ == "__main__":
    main()
