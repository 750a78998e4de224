"""Serving latency of exported models (same process, alternating, median of repeats).

* ``serving_default`` of an interpretable CNN vs a plain CNN of the same backbone
  exported the same way (ratio).
* ``explain`` vs ``serving_default`` of the interpretable CNN (ratio).

Batch sizes 1 and 32. Usage: python benchmarks/bench_export.py [--repeats 30] [--out FILE]
"""
import argparse
import os
import statistics
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import bench_common  # noqa: E402
import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from keras_icnn import export  # noqa: E402
from keras_icnn.models import make_interpretable, vgg_backbone  # noqa: E402


def median_ms(fns, x, repeats):
    for fn in fns:  # warm up
        fn(images=x)
        fn(images=x)
    samples = [[] for _ in fns]
    for _ in range(repeats):
        for i, fn in enumerate(fns):
            t0 = time.perf_counter()
            fn(images=x)
            samples[i].append(time.perf_counter() - t0)
    return [1e3 * statistics.median(s) for s in samples]


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--repeats", type=int, default=30)
    p.add_argument("--image_size", type=int, default=64)
    p.add_argument("--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                                 "results", "export.json"))
    args = p.parse_args()
    keras.utils.set_random_seed(0)
    shape = (args.image_size, args.image_size, 3)
    plain = vgg_backbone(shape, 6)
    icnn = make_interpretable(vgg_backbone(shape, 6), "top_conv")
    with tempfile.TemporaryDirectory() as base:
        plain_fn = tf.saved_model.load(export.export_model(plain, base, "plain"))
        icnn_fn = tf.saved_model.load(export.export_model(icnn, base, "icnn"))
        rows = []
        for batch in (1, 32):
            x = tf.constant(np.random.RandomState(batch).uniform(0, 255, (batch,) + shape)
                            .astype("float32"))
            p_ms, i_ms, e_ms = median_ms([plain_fn.signatures["serving_default"],
                                          icnn_fn.signatures["serving_default"],
                                          icnn_fn.signatures["explain"]], x, args.repeats)
            rows.append({"batch": batch, "plain_serving_ms": p_ms, "icnn_serving_ms": i_ms,
                         "icnn_explain_ms": e_ms, "serving_ratio": i_ms / p_ms,
                         "explain_ratio": e_ms / i_ms})
    print(f"{'batch':>5} {'plain ms':>9} {'icnn ms':>9} {'explain ms':>11} "
          f"{'icnn/plain':>11} {'explain/serve':>14}")
    for r in rows:
        print(f"{r['batch']:>5} {r['plain_serving_ms']:>9.2f} {r['icnn_serving_ms']:>9.2f} "
              f"{r['icnn_explain_ms']:>11.2f} {r['serving_ratio']:>11.2f} {r['explain_ratio']:>14.2f}")
    bench_common.write_rows(args.out, rows)


if __name__ == "__main__":
    main()
