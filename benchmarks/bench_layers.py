"""Training-step cost of the interpretable top layers vs. plain Conv2D layers.

For each feature-map size s x s and filter count K, two models share one
backbone (a conv stem from 4s x 4s images down to s x s maps with K/2
channels); their top is either two ``Conv2D(K, 3) + ReLU`` (plain) or
``InterpretableConv(K)`` twice (as ``make_interpretable`` builds it). Both are
timed in the same process, alternately: a repeat is ``--steps`` training steps
(``train_on_batch``; more where they would take under ``--min_repeat_seconds``)
of each model; the figure is the ratio of the medians over
``--repeats`` repeats, the spread the min-max of the per-repeat ratios (these
machines are noisy: only ratios are meaningful).

Targets (issue 17): <= 1.15x everywhere with XLA on, <= 1.05x at 14x14x512,
<= 1.3x everywhere with XLA off, exact gradient <= 1.1x the approximate one at
14x14x512. The summary at the end says which rows meet them.

Usage:
    python benchmarks/bench_layers.py --quick      # 5 points, ~7 minutes on 2 CPU cores
    python benchmarks/bench_layers.py              # the full grid: sizes x filters x gradients x
                                                   #   XLA on/off (~2 h on 2 cores; the committed
                                                   #   run took ~40 min with --steps=5 --append for
                                                   #   14x14x512 and 28x28x256/512)
    python benchmarks/bench_layers.py --sizes=28 --filters=512 --steps=5 --append
                                                   # re-measure some points, keep the rest
    python benchmarks/bench_layers.py --steps=5 --resume
                                                   # restart an interrupted run (rows are
                                                   #   written as they are measured)
    python benchmarks/bench_layers.py --sizes=56 --filters=64 --steps=5 --append
                                                   # 56x56: the staircase score table (issue 49)
    python benchmarks/bench_layers.py --sizes=56 --filters=64 --steps=5 --score_table=dense \
        --out=benchmarks/results/layers_56_dense.json   # the same with the dense table

Writes benchmarks/results/layers.json (layers_quick.json with --quick, or --out).
"""
import argparse
import json
import math
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import bench_common  # noqa: E402
import keras  # noqa: E402
import numpy as np  # noqa: E402

from keras_icnn.layers import InterpretableConv  # noqa: E402
from keras_icnn.models import InterpretableModel  # noqa: E402
from keras_icnn.ops import pyramid  # noqa: E402

NUM_CLASSES = 10
KEY = ("map", "filters", "gradient", "xla")


def build(size, filters, kind, gradient, fused=True):
    inputs = keras.Input((4 * size, 4 * size, 3))
    x = keras.layers.Conv2D(32, 3, strides=2, padding="same", activation="relu")(inputs)
    x = keras.layers.Conv2D(max(filters // 2, 32), 3, strides=2, padding="same",
                            activation="relu")(x)
    if kind == "plain":
        x = keras.layers.Conv2D(filters, 3, padding="same", activation="relu")(x)
        x = keras.layers.Conv2D(filters, 3, padding="same", activation="relu")(x)
    else:
        for _ in range(2):
            x = InterpretableConv(filters, 3, num_classes=NUM_CLASSES, gradient=gradient,
                                  fused=fused)(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = keras.layers.Dense(NUM_CLASSES)(x)
    return InterpretableModel(inputs, outputs)


def run(config, steps, repeats, min_repeat_seconds):
    size, filters, gradient, jit, batch = config
    keras.utils.set_random_seed(0)
    rng = np.random.RandomState(0)
    x = rng.uniform(0, 1, (batch, 4 * size, 4 * size, 3)).astype("float32")
    y = rng.randint(0, NUM_CLASSES, batch)
    fns = {}
    for kind in ("plain", "interpretable"):
        model = build(size, filters, kind, gradient)
        model.compile(keras.optimizers.Adam(1e-3),
                      keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                      jit_compile=jit)
        fns[kind] = (lambda m: lambda: m.train_on_batch(x, y))(model)
    t0 = time.perf_counter()
    for _ in range(3):  # trace, compile, build the optimizer; then one timed step
        t1 = time.perf_counter()
        fns["plain"]()
    # Short steps are noisy: at least min_repeat_seconds of work per repeat and model.
    steps = max(steps, int(math.ceil(min_repeat_seconds / (time.perf_counter() - t1))))
    r = bench_common.ratio_row(bench_common.alternate(fns, steps, repeats),
                               "interpretable", "plain")
    return {"map": f"{size}x{size}", "filters": filters, "gradient": gradient, "xla": jit,
            "batch": batch, "steps": steps, "repeats": repeats,
            "plain_ms": r["baseline_ms"], "interpretable_ms": r["ms"], "ratio": r["ratio"],
            "ratio_min": r["ratio_min"], "ratio_max": r["ratio_max"],
            "seconds": round(time.perf_counter() - t0, 1)}


def targets(rows):
    """(row, target, met) of every target the rows can be held to."""
    out = []
    for r in rows:
        limit = 1.3 if not r["xla"] else (1.05 if (r["map"], r["filters"]) == ("14x14", 512)
                                          else 1.15)
        out.append((f"{r['map']}x{r['filters']} {r['gradient']} XLA "
                    f"{'on' if r['xla'] else 'off'}", f"<= {limit}", r["ratio"] <= limit))
    by_key = {(r["map"], r["filters"], r["gradient"], r["xla"]): r for r in rows}
    a = by_key.get(("14x14", 512, "approximate", True))
    e = by_key.get(("14x14", 512, "exact", True))
    if a and e:  # each against its own plain baseline, so the ratio of the ratios
        ratio = e["ratio"] / a["ratio"]
        out.append((f"14x14x512 XLA on, exact / approximate step ({ratio:.3f})", "<= 1.1",
                    ratio <= 1.1))
    return out


def main():
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true",
                   help="5 points: 14x14x512 both gradients, 28x28x64 and 8x8x64 XLA on, "
                        "8x8x64 XLA off")
    p.add_argument("--sizes", default="8,14,28", help="comma-separated map sizes")
    p.add_argument("--filters", default="64,256,512", help="comma-separated filter counts")
    p.add_argument("--gradients", default="approximate,exact")
    p.add_argument("--xla", default="on,off", help="on, off or on,off")
    p.add_argument("--batch_size", type=int, default=32)
    p.add_argument("--steps", type=int, default=20, help="training steps per repeat (default 20)")
    p.add_argument("--repeats", type=int, default=5, help="alternating repeats (default 5)")
    p.add_argument("--min_repeat_seconds", type=float, default=2.0,
                   help="more steps than --steps where a repeat would take less than this "
                        "(short steps are noisy)")
    p.add_argument("--score_table", choices=("auto", "dense"), default="auto",
                   help="auto: the layers' own rule (the staircase under XLA from "
                        "ops.pyramid.MIN_UNITS units); dense: the dense matmul at every size "
                        "(the before of issue 49's switch)")
    p.add_argument("--resume", action="store_true",
                   help="skip the points --out already holds and keep its rows (restart an "
                        "interrupted run; implies --append)")
    p.add_argument("--append", action="store_true",
                   help="keep the rows of --out that this run does not measure")
    p.add_argument("--out", default=None,
                   help="JSON file (default benchmarks/results/layers.json, layers_quick.json "
                        "with --quick)")
    args = p.parse_args()
    if args.out is None:
        args.out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results",
                                "layers_quick.json" if args.quick else "layers.json")
    b = args.batch_size
    if args.score_table == "dense":
        pyramid.MIN_UNITS = float("inf")
    if args.quick:
        configs = [(14, 512, "approximate", True, b), (14, 512, "exact", True, b),
                   (28, 64, "approximate", True, b), (8, 64, "approximate", True, b),
                   (8, 64, "approximate", False, b)]
    else:
        configs = [(int(s), int(f), g, x == "on", b)
                   for s in args.sizes.split(",") for f in args.filters.split(",")
                   for g in args.gradients.split(",") for x in args.xla.split(",")]
    old = []
    if (args.append or args.resume) and os.path.exists(args.out):
        with open(args.out) as f:
            old = json.load(f)["rows"]
    if args.resume:
        done = {tuple(r[k] for k in KEY) for r in old}
        configs = [c for c in configs
                   if (f"{c[0]}x{c[0]}", c[1], c[2], c[3]) not in done]
        print(f"--resume: {len(done)} points already in {args.out}, {len(configs)} to measure")

    def merged(new):
        measured = {tuple(r[k] for k in KEY) for r in new}
        return [r for r in old if tuple(r[k] for k in KEY) not in measured] + new

    rows = []
    header = (f"{'map':>6} {'filters':>7} {'gradient':>11} {'xla':>4} {'plain ms':>9} "
              f"{'icnn ms':>9} {'ratio':>6} {'spread':>13}")
    print(header)
    print("-" * len(header))
    for config in configs:
        r = run(config, args.steps, args.repeats, args.min_repeat_seconds)
        r["score_table"] = args.score_table
        rows.append(r)
        print(f"{r['map']:>6} {r['filters']:>7} {r['gradient']:>11} "
              f"{'on' if r['xla'] else 'off':>4} {r['plain_ms']:>9.1f} "
              f"{r['interpretable_ms']:>9.1f} {r['ratio']:>6.3f} "
              f"[{r['ratio_min']:.3f}, {r['ratio_max']:.3f}]", flush=True)
        keras.backend.clear_session()
        # written as it goes: an interrupted run restarts with --resume
        bench_common.write_rows(args.out, merged(rows), batch_size=b)
    rows = merged(rows)
    print()
    for what, target, met in targets(rows):
        print(f"{what}: target {target}: {'met' if met else 'MISSED'}")
    bench_common.write_rows(args.out, rows, batch_size=b)


if __name__ == "__main__":
    main()
