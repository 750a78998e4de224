"""Training-step cost of the interpretable top layers vs. plain Conv2D layers.

For each feature-map size s x s and filter count K, two models share one
backbone (a conv stem from 4s x 4s images down to s x s maps with K/2
channels); their top is either two ``Conv2D(K, 3) + ReLU`` (plain) or
``InterpretableConv(K)`` twice (as ``make_interpretable`` builds it). Both are
timed in the same process, alternating, and the ratio of median step times
is reported (these machines are noisy: only ratios are meaningful).

Usage:
    python benchmarks/bench_layers.py --quick      # a subset, < 3 minutes on 2 CPU cores
    python benchmarks/bench_layers.py              # the full grid
    python benchmarks/bench_layers.py --sizes=14 --filters=512 --batch_size=32

Writes benchmarks/results/layers.json (layers_quick.json with --quick, or --out).
"""
import argparse
import os
import statistics
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import bench_common  # noqa: E402
import keras  # noqa: E402
import numpy as np  # noqa: E402

from keras_icnn.layers import InterpretableConv  # noqa: E402
from keras_icnn.models import InterpretableModel  # noqa: E402

NUM_CLASSES = 10


def build(size, filters, kind, gradient):
    inputs = keras.Input((4 * size, 4 * size, 3))
    x = keras.layers.Conv2D(32, 3, strides=2, padding="same", activation="relu")(inputs)
    x = keras.layers.Conv2D(max(filters // 2, 32), 3, strides=2, padding="same",
                            activation="relu")(x)
    if kind == "plain":
        x = keras.layers.Conv2D(filters, 3, padding="same", activation="relu")(x)
        x = keras.layers.Conv2D(filters, 3, padding="same", activation="relu")(x)
    else:
        for _ in range(2):
            x = InterpretableConv(filters, 3, num_classes=NUM_CLASSES, gradient=gradient)(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = keras.layers.Dense(NUM_CLASSES)(x)
    return InterpretableModel(inputs, outputs)


def time_steps(models, x, y, steps, repeats):
    """Median seconds per training step of each model, measured alternately."""
    for model in models:
        model.train_on_batch(x, y)  # trace and compile
        model.train_on_batch(x, y)
    samples = [[] for _ in models]
    for _ in range(repeats):
        for i, model in enumerate(models):
            t0 = time.perf_counter()
            for _ in range(steps):
                model.train_on_batch(x, y)
            samples[i].append((time.perf_counter() - t0) / steps)
    return [statistics.median(s) for s in samples]


def run(config):
    size, filters, gradient, jit, batch = config
    keras.utils.set_random_seed(0)
    rng = np.random.RandomState(0)
    x = rng.uniform(0, 1, (batch, 4 * size, 4 * size, 3)).astype("float32")
    y = rng.randint(0, NUM_CLASSES, batch)
    models = []
    for kind in ("plain", "interpretable"):
        model = build(size, filters, kind, gradient)
        model.compile(keras.optimizers.Adam(1e-3),
                      keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                      jit_compile=jit)
        models.append(model)
    # Aim for about a second of work per sample.
    t0 = time.perf_counter()
    models[0].train_on_batch(x, y)
    models[0].train_on_batch(x, y)
    one = max((time.perf_counter() - t0) / 2, 1e-3)
    steps = int(np.clip(0.5 / one, 1, 20))
    plain, icnn = time_steps(models, x, y, steps, repeats=3)
    return {"map": f"{size}x{size}", "filters": filters, "gradient": gradient, "xla": jit,
            "batch": batch, "plain_ms": 1e3 * plain, "interpretable_ms": 1e3 * icnn,
            "ratio": icnn / plain}


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="a subset that runs in < 3 minutes")
    p.add_argument("--sizes", default="8,14,28", help="comma-separated map sizes")
    p.add_argument("--filters", default="64,256,512", help="comma-separated filter counts")
    p.add_argument("--gradients", default="approximate,exact")
    p.add_argument("--xla", default="on,off", help="on, off or on,off")
    p.add_argument("--batch_size", type=int, default=32)
    p.add_argument("--out", default=None,
                   help="JSON file (default benchmarks/results/layers.json, layers_quick.json "
                        "with --quick)")
    args = p.parse_args()
    if args.out is None:
        args.out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results",
                                "layers_quick.json" if args.quick else "layers.json")
    if args.quick:
        configs = [(14, 512, "approximate", True, args.batch_size),
                   (14, 512, "exact", True, args.batch_size),
                   (8, 64, "approximate", True, args.batch_size),
                   (8, 64, "approximate", False, args.batch_size)]
    else:
        configs = [(int(s), int(f), g, x == "on", args.batch_size)
                   for s in args.sizes.split(",") for f in args.filters.split(",")
                   for g in args.gradients.split(",") for x in args.xla.split(",")]
    rows = []
    header = f"{'map':>6} {'filters':>7} {'gradient':>11} {'xla':>4} {'plain ms':>9} {'icnn ms':>9} {'ratio':>6}"
    print(header)
    print("-" * len(header))
    for config in configs:
        r = run(config)
        rows.append(r)
        print(f"{r['map']:>6} {r['filters']:>7} {r['gradient']:>11} {'on' if r['xla'] else 'off':>4} "
              f"{r['plain_ms']:>9.1f} {r['interpretable_ms']:>9.1f} {r['ratio']:>6.2f}", flush=True)
        keras.backend.clear_session()
    target = [r for r in rows if r["map"] == "14x14" and r["filters"] == 512]
    if target:
        worst = max(r["ratio"] for r in target)
        print(f"\n14x14x512, batch {args.batch_size}: worst ratio {worst:.2f} "
              f"(target <= 1.15: {'met' if worst <= 1.15 else 'MISSED'})")
    bench_common.write_rows(args.out, rows)


if __name__ == "__main__":
    main()
