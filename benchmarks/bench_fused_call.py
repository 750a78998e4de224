"""The fused training call of InterpretableConv vs the same call as ordinary ops.

On one replica, an ``InterpretableConv`` training call runs its filter loss,
target-class statistics, finite check and part mask as one XLA-compiled
function, and their gradient as another. This measures what that buys: the
same two-layer models as ``bench_layers.py`` (plain Conv2D top vs interpretable
top), with the interpretable one built twice, with ``fused=True`` (the default)
and with ``fused=False`` (the layer's public switch: the training call and the
filter loss as ordinary ops). Single training steps of the three
models are interleaved ``--steps`` times (step-level interleaving cancels the
machine's slow drift, which dominates on 2 shared cores); each figure is the
median step time, ratios against the plain model's.

Usage:
    python benchmarks/bench_fused_call.py            # 4 points, ~4 min on 2 CPU cores
    python benchmarks/bench_fused_call.py --points=8:64:approximate:off --steps=2000

Writes benchmarks/results/fused_call.json (or --out).
"""
import argparse
import os
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import bench_common  # noqa: E402
import bench_layers  # noqa: E402
import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

DEFAULT_POINTS = ("8:64:approximate:off,14:64:approximate:off,8:64:exact:off,"
                  "14:512:approximate:on")


def measure(size, filters, gradient, jit, steps, seconds, batch=32):
    rng = np.random.RandomState(0)
    x = tf.constant(rng.uniform(0, 1, (batch, 4 * size, 4 * size, 3)).astype("float32"))
    y = tf.constant(rng.randint(0, bench_layers.NUM_CLASSES, batch))
    models = {}
    for name in ("plain", "fused", "unfused"):
        keras.utils.set_random_seed(0)
        model = bench_layers.build(size, filters, "plain" if name == "plain" else "icnn",
                                   gradient, fused=name != "unfused")
        model.compile(keras.optimizers.Adam(1e-3),
                      keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                      jit_compile=jit)
        for _ in range(3):
            model.train_on_batch(x, y)
        models[name] = model
    if not steps:  # about `seconds` in all
        t0 = time.perf_counter()
        for _ in range(5):
            for model in models.values():
                model.train_on_batch(x, y)
        steps = max(20, int(5 * seconds / (time.perf_counter() - t0)))
    times = {name: [] for name in models}
    for _ in range(steps):
        for name, model in models.items():
            t0 = time.perf_counter()
            model.train_on_batch(x, y)
            times[name].append(time.perf_counter() - t0)
    ms = {name: 1e3 * statistics.median(t) for name, t in times.items()}
    return {"map": f"{size}x{size}", "filters": filters, "gradient": gradient, "xla": jit,
            "batch": batch, "steps": steps, "plain_ms": ms["plain"], "fused_ms": ms["fused"],
            "unfused_ms": ms["unfused"], "fused_ratio": ms["fused"] / ms["plain"],
            "unfused_ratio": ms["unfused"] / ms["plain"]}


def main():
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--points", default=DEFAULT_POINTS,
                   help="comma-separated size:filters:gradient:xla (xla on/off)")
    p.add_argument("--steps", type=int, default=0,
                   help="interleaved steps per model (default: as many as take --seconds)")
    p.add_argument("--seconds", type=float, default=40.0,
                   help="time per point, all three models together, when --steps is 0")
    p.add_argument("--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                                 "results", "fused_call.json"))
    args = p.parse_args()
    rows = []
    print(f"{'map':>6} {'filters':>7} {'gradient':>11} {'xla':>4} {'plain ms':>9} "
          f"{'fused':>13} {'unfused':>13}")
    for point in args.points.split(","):
        size, filters, gradient, xla = point.split(":")
        if xla not in ("on", "off") or gradient not in ("approximate", "exact"):
            raise SystemExit(f"--points: expected size:filters:approximate|exact:on|off, "
                             f"got {point!r}")
        size, filters = int(size), int(filters)
        r = measure(size, filters, gradient, xla == "on", args.steps, args.seconds)
        rows.append(r)
        print(f"{r['map']:>6} {filters:>7} {gradient:>11} {xla:>4} {r['plain_ms']:>9.2f} "
              f"{r['fused_ms']:>7.2f} {r['fused_ratio']:.3f} {r['unfused_ms']:>7.2f} "
              f"{r['unfused_ratio']:.3f}", flush=True)
        keras.backend.clear_session()
    bench_common.write_rows(args.out, rows)


if __name__ == "__main__":
    main()
