"""The two non-finite guards side by side (issue 49 item 2): the issue-31 guard (snapshot every
weight and slot, restore after a bad step) against today's (a conditional apply, only the
forward-written state snapshotted), each against the unguarded model, in one process.

The old guard is read from git (``--old_commit``, the last commit with it) into a module of
its own; the three models (built-in VGG, same weights) take ``train_on_batch`` steps
alternately (no callback: the step's own cost), ``--repeats`` repeats of ``--steps`` steps, CPU
seconds of the process, median, XLA off and on.

    python benchmarks/ab_guard.py            # ~3 minutes on 2 CPU cores

Writes ``benchmarks/results/guard_ab.json`` (``--out``).
"""
import argparse
import importlib.util
import os
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
HERE = os.path.dirname(os.path.abspath(__file__))

import bench_common  # noqa: E402
import keras  # noqa: E402
import numpy as np  # noqa: E402

from keras_icnn.models import guard as new_guard, vgg_backbone  # noqa: E402


def old_guard_module(commit):
    source = subprocess.run(["git", "show", f"{commit}:keras_icnn/models/guard.py"],
                            cwd=os.path.dirname(HERE), check=True, capture_output=True,
                            text=True).stdout
    path = os.path.join(tempfile.mkdtemp(), "guard_issue31.py")
    with open(path, "w") as f:
        f.write(source)
    spec = importlib.util.spec_from_file_location("guard_issue31", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules["guard_issue31"] = module
    spec.loader.exec_module(module)
    return module


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--old_commit", default="16c46da")
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--repeats", type=int, default=7)
    p.add_argument("--out", default=os.path.join(HERE, "results", "guard_ab.json"))
    args = p.parse_args()
    old = old_guard_module(args.old_commit)
    rng = np.random.RandomState(0)
    x = rng.uniform(0, 255, (32, 64, 64, 3)).astype("float32")
    y = rng.randint(0, 6, 32)
    rows = []
    for jit in (False, True):
        steps = {}
        for name, module in (("unguarded", None), ("issue-31 guard", old),
                             ("issue-49 guard", new_guard)):
            keras.utils.set_random_seed(0)
            model = vgg_backbone((64, 64, 3), 6)
            model.compile(keras.optimizers.Adam(1e-3),
                          keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                          jit_compile=jit)
            if module is not None:
                module.protect(model)
            steps[name] = (lambda m: lambda: m.train_on_batch(x, y))(model)
        samples = bench_common.alternate(steps, args.steps, args.repeats, clock=time.process_time)
        for name in ("issue-31 guard", "issue-49 guard"):
            row = bench_common.ratio_row(samples, name, "unguarded")
            row.update(jit_compile=jit, model="VGG", clock="cpu")
            rows.append(row)
            print(f"XLA {'on ' if jit else 'off'} {name}: {row['ratio']:.3f} "
                  f"[{row['ratio_min']:.3f}, {row['ratio_max']:.3f}]", flush=True)
        keras.backend.clear_session()
    bench_common.write_rows(args.out, rows, steps=args.steps, repeats=args.repeats,
                            old_commit=args.old_commit)


if __name__ == "__main__":
    main()
