"""Soak the command-line entry points: run each many times on tiny sizes, record how each run ends.

Each command runs through its installed console script (``keras-icnn-train-icnn`` & co., as a
user runs it); the export's client check is ``export/serving_client.py``. Every run is a fresh
process with a wall-clock timeout. For each run the JSON
records the exit code, the signal that killed it (if any), whether it hit the
timeout, its wall time, and how long it took to exit after printing its last
line of output (a hang at interpreter shutdown shows up there). Targets: no
crash, no hang, every process gone within 5 s of its last line.

Usage:
    python benchmarks/soak_cli.py --evaluate=20         # issue 44's soak: 20 runs of each
    python benchmarks/soak_cli.py                       # the full soak (about 30 min, 2 cores)
    python benchmarks/soak_cli.py --evaluate=5 --runs=2  # a quick look
    python benchmarks/soak_cli.py --only=evaluate,export
    python benchmarks/soak_cli.py --only=detect_adversarial --runs=20   # issue 31's soak

Writes benchmarks/results/soak.json (or --out).
"""
import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

import bench_common  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXIT_TARGET_S = 5.0
TINY = ["--image_size=32", "--num_classes=3", "--verbose=0"]
ENTRY_POINTS = ("train_icnn", "evaluate", "train_csg", "train_explainer", "export",
                "detect_adversarial")


def executable(argv):
    """The process to start: a ``keras-icnn-*`` console script as installed on PATH (the way a
    user runs the command), or ``python`` for a ``.py`` helper."""
    if argv[0].endswith(".py"):
        return [sys.executable] + argv
    path = shutil.which(argv[0])
    if path is None:
        raise SystemExit(f"{argv[0]} is not on PATH: pip install -e .")
    return [path] + argv[1:]


def run_once(argv, timeout):
    """Run ``argv``; returns a dict with rc, signal, timed_out, wall_s, exit_after_last_line_s."""
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="")
    t0 = time.monotonic()
    proc = subprocess.Popen(executable(argv), cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, start_new_session=True)
    last = {"t": t0, "lines": []}

    def pump():
        for raw in proc.stdout:
            last["t"] = time.monotonic()
            last["lines"].append(raw.decode(errors="replace").rstrip())
            del last["lines"][:-40]

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    timed_out = False
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        timed_out = True
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    end = time.monotonic()
    reader.join(timeout=10)
    rc = proc.returncode
    row = {"rc": rc, "signal": signal.Signals(-rc).name if rc < 0 else None,
           "timed_out": timed_out, "wall_s": round(end - t0, 2),
           "exit_after_last_line_s": round(end - last["t"], 2)}
    if rc != 0 or timed_out:
        row["tail"] = last["lines"][-25:]
    return row


def commands(kind, i, work, models, out=None):
    """The argv lists of run ``i`` of ``kind`` (several for export: export, then the client)."""
    out = out or os.path.join(work, f"{kind}_{i}")
    seed = f"--seed={i}"
    if kind == "train_icnn":
        return [["keras-icnn-train-icnn", "--num_train=64", "--num_val=16", "--num_test=32",
                 "--epochs=1", "--batch_size=16", "--width=4", seed, f"--output_dir={out}"]
                + TINY]
    if kind == "evaluate":
        return [["keras-icnn-evaluate", f"--models={models['ordinary']},{models['interpretable']}",
                 "--names=ordinary,interpretable", "--num_examples=36", "--gradmap_examples=4",
                 seed, f"--output_dir={out}"] + TINY]
    if kind == "train_csg":
        return [["keras-icnn-train-csg", "--num_train=64", "--num_val=16", "--num_test=32",
                 "--epochs=3", "--warmup=1", "--batch_size=16", "--width=4", "--density=0.5",
                 seed, f"--output_dir={out}"] + TINY]
    if kind == "train_explainer":
        return [["keras-icnn-train-explainer", f"--performer={models['ordinary']}",
                 "--num_train=64", "--num_val=16", "--num_test=32", "--epochs=1",
                 "--batch_size=16", seed, f"--output_dir={out}"] + TINY]
    if kind == "detect_adversarial":
        # Every attack and both feature sites on the tiny STD/CSG pair, at tiny budgets.
        return [["keras-icnn-detect-adversarial", f"--models={models['std']},{models['csg']}",
                 "--names=STD,CSG", "--num_train=1", "--num_val=0", "--num_test=60",
                 "--train_per_class=6", "--test_per_class=4", "--repeats=2",
                 "--attacks=fgsm,pgd,cw", "--pgd_iterations=3", "--cw_iterations=5",
                 "--black_box=one_pixel,local_search", "--black_box_images=6",
                 "--one_pixel_generations=2", "--local_search_rounds=2",
                 "--features=block,raw_conv", seed, f"--output_dir={out}"] + TINY]
    if kind == "export":
        base = os.path.join(work, "models")
        version = str(i + 1)
        return [["keras-icnn-export", f"--model={models['interpretable']}",
                 f"--base_dir={base}", "--name=icnn", f"--version={version}"],
                ["export/serving_client.py", "--image_size=32", "--signature=explain",
                 f"--saved_model={os.path.join(base, 'icnn', version)}"]]
    raise ValueError(f"unknown entry point {kind!r}")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--evaluate", type=int, default=50, help="runs of trainers/evaluate.py")
    p.add_argument("--runs", type=int, default=20, help="runs of every other entry point")
    p.add_argument("--only", default=",".join(ENTRY_POINTS),
                   help=f"comma-separated subset of {','.join(ENTRY_POINTS)}")
    p.add_argument("--timeout", type=float, default=600, help="seconds before a run is a hang")
    p.add_argument("--out", default=os.path.join(ROOT, "benchmarks", "results", "soak.json"))
    args = p.parse_args(argv)
    only = [k for k in args.only.split(",") if k]
    unknown = set(only) - set(ENTRY_POINTS)
    if unknown:
        p.error(f"--only: unknown entry points {sorted(unknown)}; choose from {ENTRY_POINTS}")
    work = tempfile.mkdtemp(prefix="keras_icnn_soak_")
    rows, t_start = [], time.time()
    try:
        # Models for evaluate / explainer / export: one tiny train_icnn run, not counted.
        seed_dir = os.path.join(work, "models_src")
        setup = run_once(commands("train_icnn", 0, work, {}, out=seed_dir)[0], args.timeout)
        if setup["rc"] != 0:
            print("could not train the models the soak needs:\n" + "\n".join(setup.get("tail", [])))
            return 1
        models = {k: os.path.join(seed_dir, f"{k}.keras") for k in ("ordinary", "interpretable")}
        if "detect_adversarial" in only:
            # A tiny CSG model and its STD baseline for the detector, not counted either.
            pair_dir = os.path.join(work, "csg_src")
            argv_ = commands("train_csg", 0, work, {}, out=pair_dir)[0] + ["--train_baseline"]
            setup = run_once(argv_, args.timeout)
            if setup["rc"] != 0:
                print("could not train the CSG pair:\n" + "\n".join(setup.get("tail", [])))
                return 1
            models.update(std=os.path.join(pair_dir, "baseline.keras"),
                          csg=os.path.join(pair_dir, "csg.keras"))
        for kind in only:
            n = args.evaluate if kind == "evaluate" else args.runs
            for i in range(n):
                for argv_ in commands(kind, i, work, models):
                    row = {"entry_point": argv_[0], "run": i, **run_once(argv_, args.timeout)}
                    rows.append(row)
                    status = ("ok" if row["rc"] == 0 else
                              f"FAILED rc={row['rc']} {row['signal'] or ''}".strip())
                    print(f"{argv_[0]} #{i}: {status}, {row['wall_s']} s, exit "
                          f"{row['exit_after_last_line_s']} s after last line", flush=True)
                    if row["rc"] != 0:
                        print("\n".join("    " + line for line in row.get("tail", [])))
                if kind in ("evaluate", "export", "detect_adversarial"):
                    shutil.rmtree(os.path.join(work, f"{kind}_{i}"), ignore_errors=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    summary = {}
    for row in rows:
        s = summary.setdefault(row["entry_point"], {"runs": 0, "failures": 0, "crashes": 0,
                                                     "hangs": 0, "max_wall_s": 0.0,
                                                     "max_exit_after_last_line_s": 0.0})
        s["runs"] += 1
        s["failures"] += row["rc"] != 0
        s["crashes"] += row["signal"] is not None and not row["timed_out"]
        s["hangs"] += row["timed_out"]
        s["max_wall_s"] = max(s["max_wall_s"], row["wall_s"])
        s["max_exit_after_last_line_s"] = max(s["max_exit_after_last_line_s"],
                                              row["exit_after_last_line_s"])
    total = {k: sum(s[k] for s in summary.values()) for k in ("runs", "failures", "crashes",
                                                              "hangs")}
    total["slow_exits"] = sum(r["exit_after_last_line_s"] > EXIT_TARGET_S for r in rows)
    total["minutes"] = round((time.time() - t_start) / 60, 1)
    print(f"\n{total['runs']} runs: {total['failures']} failures, {total['crashes']} crashes, "
          f"{total['hangs']} hangs, {total['slow_exits']} exits more than {EXIT_TARGET_S:.0f} s "
          f"after the last line ({total['minutes']} min)")
    for name, s in summary.items():
        print(f"  {name}: {s}")
    bench_common.write_rows(args.out, rows, summary=summary, total=total,
                            exit_target_s=EXIT_TARGET_S,
                            env={k: os.environ.get(k) for k in ("TF_ENABLE_ONEDNN_OPTS",
                                                                 "OMP_NUM_THREADS")})
    return 0 if not (total["failures"] or total["hangs"] or total["slow_exits"]) else 1


if __name__ == "__main__":
    sys.exit(main())
