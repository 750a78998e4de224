"""What the non-finite guard (``keras_icnn.models.guard``) costs per training step.

The guard checks the batch and every gradient (and its square) before each optimizer's
apply, which runs only on a verdict of finite (issue 49: a conditional apply); it keeps a
copy only of what the forward pass writes (BatchNorm statistics and the like), checks it
and restores it after a bad step, and its callback reads the verdict after every batch. Timed here through
``fit`` (so the callback's per-batch read is in the figure), one epoch of
``--steps`` batches from an in-memory dataset, guarded and unguarded models of
the same architecture and weights alternately within each repeat (these machines
are noisy: only ratios mean something), with XLA off and on, in CPU seconds of the
process (``time.process_time``: what the guard adds to the work, little disturbed by other
processes on the cores) and in wall seconds:

* **VGG**: the built-in VGG (``vgg_backbone``, width 16, 64x64 images, batch 32) as a
  plain Keras model, guarded with ``guard.protect`` vs unguarded. Target: <= 1.02x.
* **ICNN**: the same VGG with its top conv an ``InterpretableConv``
  (``make_interpretable``): ``InterpretableModel``'s own guarded step vs the same
  step with the guard bypassed (``train_step = _train_step``). Reported.

    python benchmarks/bench_guard.py              # ~6 minutes on 2 CPU cores
    python benchmarks/bench_guard.py --steps=4 --repeats=2     # a smoke run

Writes ``benchmarks/results/guard.json`` (``--out``).
"""
import argparse
import os
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
HERE = os.path.dirname(os.path.abspath(__file__))

import bench_common  # noqa: E402
import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from keras_icnn.models import guard, make_interpretable, vgg_backbone  # noqa: E402


def _models(kind, jit, size, classes):
    """(guarded, unguarded, fit callbacks of the guarded one), same weights."""
    pair = []
    for _ in range(2):
        keras.utils.set_random_seed(0)
        model = vgg_backbone((size, size, 3), classes, width=16)
        if kind == "ICNN":
            model = make_interpretable(model, "top_conv", num_classes=classes)
        model.compile(keras.optimizers.Adam(1e-3),
                      keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                      jit_compile=jit)
        pair.append(model)
    guarded, plain = pair
    if kind == "VGG":
        callbacks = [guard.protect(guarded)]
    else:
        callbacks = []   # InterpretableModel.fit adds its own StopOnNonFiniteStep
        object.__setattr__(plain, "train_step", plain._train_step)   # the guard bypassed
        plain.train_function = None
    return guarded, plain, callbacks


def timed_pairs(args):
    size, classes, batch = args.image_size, 6, args.batch_size
    rng = np.random.RandomState(0)
    x = rng.uniform(0, 255, (batch * args.steps, size, size, 3)).astype("float32")
    y = rng.randint(0, classes, batch * args.steps)
    data = tf.data.Dataset.from_tensor_slices((x, y)).batch(batch).cache()
    rows = []
    for kind in args.kinds.split(","):
        for jit in (False, True):
            guarded, plain, callbacks = _models(kind, jit, size, classes)
            runs = {"guarded": lambda: guarded.fit(data, epochs=1, verbose=0, shuffle=False,
                                                   callbacks=callbacks),
                    "unguarded": lambda: plain.fit(data, epochs=1, verbose=0, shuffle=False)}
            # One fit of --steps batches per repeat, alternately; seconds per step. CPU
            # seconds of the process are the figure (wall time on a shared 2-core machine
            # moves in steps of whole scheduler slices); wall time is kept beside them.
            for clock_name, clock in (("cpu", time.process_time), ("wall", time.perf_counter)):
                samples = {name: [t / args.steps for t in times] for name, times in
                           bench_common.alternate(runs, 1, args.repeats, clock).items()}
                row = bench_common.ratio_row(samples, "guarded", "unguarded")
                row.update(model=kind, jit_compile=jit, clock=clock_name,
                           ratio_mean_of_repeats=statistics.mean(
                               a / b for a, b in zip(samples["guarded"], samples["unguarded"])))
                rows.append(row)
                print(f"{kind:>5} jit={str(jit):<5} {clock_name:>4}: guarded {row['ms']:7.1f} ms / "
                      f"unguarded {row['baseline_ms']:7.1f} ms = {row['ratio']:.3f} "
                      f"[{row['ratio_min']:.3f}, {row['ratio_max']:.3f}]", flush=True)
            keras.backend.clear_session()
    return rows


def main():
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=20, help="batches per timed epoch (default 20)")
    p.add_argument("--repeats", type=int, default=7, help="alternating repeats (default 7)")
    p.add_argument("--batch_size", type=int, default=32)
    p.add_argument("--image_size", type=int, default=64, help="the bench's 64x64 images")
    p.add_argument("--kinds", default="VGG,ICNN", help="which pairs: VGG, ICNN")
    p.add_argument("--out", default=os.path.join(HERE, "results", "guard.json"))
    args = p.parse_args()
    rows = timed_pairs(args)
    bench_common.write_rows(args.out, rows, steps=args.steps, repeats=args.repeats,
                            batch_size=args.batch_size, image_size=args.image_size,
                            target="<= 1.02x at the built-in VGG's step, XLA on and off")


if __name__ == "__main__":
    main()
