"""Where an interpretable layer's training step goes (issue 49 item 1): at one grid point of
``bench_layers.py`` (default 28x28x64, batch 32, approximate gradient), in one process and
alternately (CPU seconds of the process, median of repeats):

* the plain and the interpretable model of ``bench_layers.build`` (two top layers each);
* one layer's filter pass and its gradient, as the layer runs them (``fused_training_pass``
  and ``training_gradient``, XLA-compiled: the score table, ``-MI``, the peaks, the class
  statistics, the mask and eq. (5)'s gradient) on maps of the same shape;
* the score table alone (``template_scores``: the dense ``[B*K, hw] x [hw, hw+1]`` matmul);
* the same table as an FFT correlation (``bench_scores.fft``), forward only.

The model steps' difference against twice the per-layer figures says what share of the
interpretable step's extra time is the table.

    python benchmarks/profile_layer.py                 # ~2 minutes on 2 CPU cores
    python benchmarks/profile_layer.py --size=14 --filters=512

Writes ``benchmarks/results/profile_layer.json`` (``--out``).
"""
import argparse
import os
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
HERE = os.path.dirname(os.path.abspath(__file__))

import bench_common  # noqa: E402
import bench_layers  # noqa: E402
import bench_scores  # noqa: E402
import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from keras_icnn import losses  # noqa: E402
from keras_icnn.layers import filter_pass  # noqa: E402


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--size", type=int, default=28)
    p.add_argument("--filters", type=int, default=64)
    p.add_argument("--batch_size", type=int, default=32)
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--repeats", type=int, default=7)
    p.add_argument("--out", default=os.path.join(HERE, "results", "profile_layer.json"))
    args = p.parse_args()
    size, k, b, classes = args.size, args.filters, args.batch_size, bench_layers.NUM_CLASSES
    rng = np.random.RandomState(0)
    images = rng.uniform(0, 1, (b, 4 * size, 4 * size, 3)).astype("float32")
    y = rng.randint(0, classes, b)
    maps = tf.constant(np.maximum(rng.randn(b, size, size, k), 0).astype("float32"))
    labels = tf.constant(y, tf.int32)
    templates = tf.constant(losses.standard_constants(size, size, 4.0)[0])
    activation, seen = tf.zeros([classes, k]), tf.zeros([classes])
    spectrum = bench_scores.fft_pyramid(size, size // 2)
    table = tf.function(lambda z: losses.template_scores(z, templates), jit_compile=True)
    fft = tf.function(lambda z: bench_scores.fft(tf.transpose(z, [0, 3, 1, 2]), spectrum),
                      jit_compile=True)

    def layer_pass():
        out = filter_pass.fused_training_pass(maps, labels, activation, seen, classes, 0.9, 0,
                                              "approximate", "printed", 4.0, "centroid")
        return filter_pass.training_gradient(tf.ones([k]), maps, out[2], out[3], 4.0)

    rows = []
    for jit in (True, False):
        fns = {}
        for kind in ("plain", "interpretable"):
            keras.utils.set_random_seed(0)
            model = bench_layers.build(size, k, kind, "approximate")
            model.compile(keras.optimizers.Adam(1e-3),
                          keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                          jit_compile=jit)
            fns[f"{kind} model step"] = (lambda m: lambda: m.train_on_batch(images, y))(model)
        fns["filter pass + gradient, one layer"] = layer_pass
        fns["score table, one layer (dense matmul)"] = lambda: table(maps)
        fns["score table, one layer (FFT)"] = lambda: fft(maps)
        samples = bench_common.alternate(fns, args.steps, args.repeats, clock=time.process_time)
        ms = {name: 1e3 * statistics.median(v) for name, v in samples.items()}
        extra = ms["interpretable model step"] - ms["plain model step"]
        for name, value in ms.items():
            rows.append({"map": f"{size}x{size}", "filters": k, "xla": jit, "part": name,
                         "ms": value, "share_of_extra": (2 * value / extra
                                                         if "one layer" in name else None)})
            print(f"XLA {'on ' if jit else 'off'} {name:<40} {value:8.1f} ms", flush=True)
        print(f"  extra time of the interpretable step: {extra:.1f} ms; two dense tables "
              f"{2 * ms['score table, one layer (dense matmul)']:.1f} ms", flush=True)
        keras.backend.clear_session()
    bench_common.write_rows(args.out, rows, batch_size=b, clock="cpu")


if __name__ == "__main__":
    main()
