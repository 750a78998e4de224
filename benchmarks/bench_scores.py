"""Formulations of the filter loss's score table, timed against the dense matmul.

The fitness score of every template is ``s_mu = tau * (-sum(x) + (beta/n) * P(mu))``
with ``P(mu) = sum_ij x_ij * relu(D - |i - mu_i| - |j - mu_j|)``, ``D = 2n/beta``:
a correlation of each map with one L1 pyramid. ``keras_icnn.losses`` computes it
as one ``[B*K, hw] x [hw, hw+1]`` float32 matmul. This script times, per map size
and filter count (batch 32, forward only, XLA on and off, median of repeats in
one process), the alternatives that give the same numbers:

* ``matmul``: the pyramid matrix product (what the loss does);
* ``staircase``: the pyramid as D nested rectangles ``|di| <= D-t, |dj| <= t-1``,
  each a 4-lookup box sum of one 2-D prefix-sum table (prefix sums by small
  triangular matmuls): O(4 D hw) additions per map instead of O(hw^2) products;
* ``bfloat16``: the matmul with bfloat16 inputs (oneDNN's fast path; TF rounds the
  output to bfloat16 too), with its error relative to float32;
* ``staircase, adjoint + gradient`` (with ``--gradients``): the staircase forward and, as
  its gradient, the staircase of the upstream gradient (the pyramid is symmetric);
* ``table: dense + gradient`` / ``table: ops.pyramid + gradient`` (with ``--gradients``): the
  loss's whole score table ``[B, K, hw + 1]`` from maps ``[B, h, w, K]`` as
  ``ops.filter_loss.template_scores`` computes it, dense or by the staircase (transposes,
  the sums and the negative template included), forward + backward: the figures behind
  ``ops.pyramid.MIN_UNITS``;
* ``fft``: the correlation as a product of spectra (issue 49): ``rfft2d`` of each map
  zero-padded to 2h x 2w, times the pyramid's spectrum laid out circularly (offsets
  -(h-1)..h-1 are distinct modulo 2h, so the circular correlation is the exact linear one),
  ``irfft2d``, the h x w corner: O(hw log hw) per map.

With ``--gradients`` each formulation is also timed forward + backward (the gradient of a
sum of squares of the table with respect to the maps: the exact filter loss's autodiff).

Usage: python benchmarks/bench_scores.py   (~2 minutes on 2 CPU cores)
       python benchmarks/bench_scores.py --shapes=56x64,28x64 --gradients --xla=on \
           --out=benchmarks/results/scores_adjoint.json   (the staircase's adjoint, issue 49)
Writes benchmarks/results/scores.json (``--out``).
"""
import argparse
import os
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import bench_common  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from keras_icnn import templates  # noqa: E402
from keras_icnn.ops import filter_loss, pyramid  # noqa: E402


def median_ms(fn, x, repeats=7, steps=10):
    fn(x)
    fn(x)
    samples = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(steps):
            out = fn(x)
        out.numpy()
        samples.append((time.perf_counter() - t0) / steps)
    return 1e3 * statistics.median(samples)


def staircase_adjoint(x, d):
    """:func:`staircase` whose gradient is the staircase of the upstream gradient (exact: the
    pyramid matrix ``relu(d - |i - m|_1)`` is symmetric)."""
    @tf.custom_gradient
    def run(z):
        return pyramid.staircase(z, d), lambda upstream: pyramid.staircase(upstream, d)

    return run(x)


def fft_pyramid(size, d):
    """The pyramid ``relu(d - |di| - |dj|)`` laid out circularly on a 2h x 2w grid, as the
    spectrum ``rfft2d`` gives (complex64 ``[2h, h + 1]``)."""
    offsets = np.arange(2 * size)
    offsets = np.where(offsets < size, offsets, offsets - 2 * size)
    kernel = np.maximum(d - np.abs(offsets)[:, None] - np.abs(offsets)[None, :], 0)
    return tf.constant(np.fft.rfft2(kernel).astype(np.complex64))


def fft(x, spectrum):
    """P by spectra: ``x`` [..., h, w] zero-padded to 2h x 2w (``fft_length``)."""
    h, w = x.shape[-2], x.shape[-1]
    product = tf.signal.rfft2d(x, fft_length=[2 * h, 2 * w]) * spectrum
    return tf.signal.irfft2d(product, fft_length=[2 * h, 2 * w])[..., :h, :w]


def with_gradient(fn):
    def run(z):
        with tf.GradientTape() as tape:
            tape.watch(z)
            out = fn(z)
            loss = tf.reduce_sum(tf.square(out))
        return tape.gradient(loss, z)
    return run


def main():
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--shapes", default="8x64,14x512,28x64", help="map size x filters, comma-separated")
    p.add_argument("--batch_size", type=int, default=32)
    p.add_argument("--xla", default="on,off", help="XLA settings timed, comma-separated")
    p.add_argument("--gradients", action="store_true",
                   help="also time forward + backward of each formulation")
    p.add_argument("--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                                 "results", "scores.json"))
    args = p.parse_args()
    rows = []
    for shape in args.shapes.split(","):
        size, filters = (int(v) for v in shape.split("x"))
        d = size // 2  # D = 2n/beta with the default beta = 4 (an integer for even n)
        n = args.batch_size * filters
        x = tf.constant(np.maximum(np.random.RandomState(0).randn(n, size, size), 0)
                        .astype(np.float32))
        dist = templates.l1_distance_matrix(size, size)
        pyramid_matrix = tf.constant(np.maximum(d - dist, 0).astype(np.float32))
        reference = tf.reshape(tf.reshape(x, [n, -1]) @ pyramid_matrix, x.shape).numpy()
        # d/dx sum(P^2) = 2 P A^T with A the (symmetric) pyramid matrix.
        grad_reference = tf.reshape(2.0 * tf.reshape(reference, [n, -1]) @ tf.transpose(
            pyramid_matrix), x.shape).numpy()
        for xla in [{"on": True, "off": False}[v] for v in args.xla.split(",")]:
            fns = {
                "matmul": lambda z: tf.reshape(tf.reshape(z, [n, -1]) @ pyramid_matrix, z.shape),
                "staircase": lambda z: pyramid.staircase(z, d),
                "bfloat16": lambda z: tf.cast(tf.reshape(
                    tf.reshape(tf.cast(z, tf.bfloat16), [n, -1]) @ tf.cast(pyramid_matrix, tf.bfloat16),
                    z.shape), tf.float32),
                "fft": lambda z, s=fft_pyramid(size, d): fft(z, s),
            }
            if args.gradients:
                for name in ("matmul", "fft"):
                    fns[f"{name} + gradient"] = with_gradient(fns[name])
                # The pyramid matrix is symmetric: the correlation's adjoint is the same
                # staircase on the upstream gradient (XLA's autodiff of the slices and pads
                # took 13.4x the matmul's step at 56x56x64, issue 49).
                fns["staircase, adjoint + gradient"] = with_gradient(
                    lambda z: staircase_adjoint(z, d))
                matrix = tf.constant(templates.template_matrix(size, size))

                def table(z, method):  # [B*K, h, w] -> the loss's layout and table
                    maps = tf.transpose(tf.reshape(z, [args.batch_size, filters, size, size]),
                                        [0, 2, 3, 1])
                    scores = filter_loss.template_scores(maps, matrix, 4.0, method=method)
                    return scores[..., :-1] - scores[..., -1:]  # tau * (beta / n) * P

                scale = templates.default_tau(size, size) * 4.0 / size
                for method in ("dense", "staircase"):
                    fns[f"table: {'ops.pyramid' if method == 'staircase' else method}"
                        " + gradient"] = with_gradient(
                        lambda z, m=method: tf.reshape(table(z, m), z.shape) / scale)
            base = None
            for name, fn in fns.items():
                f = tf.function(fn, jit_compile=xla)
                if name.endswith("gradient"):
                    err = float(np.abs(f(x).numpy() - grad_reference).max()
                                / np.abs(grad_reference).max())
                else:
                    err = float(np.abs(f(x).numpy() - reference).max() / np.abs(reference).max())
                ms = median_ms(f, x)
                base = ms if name == "matmul" else base
                base = ms if name in ("matmul + gradient", "table: dense + gradient") else base
                rows.append({"map": f"{size}x{size}", "filters": filters, "xla": xla,
                             "formulation": name, "ms": ms, "vs_matmul": ms / base,
                             "max_relative_error": err})
                print(f"{size}x{size}x{filters} XLA {'on ' if xla else 'off'} {name:>17}: "
                      f"{ms:7.2f} ms ({ms / base:.2f}x matmul), error {err:.1e}", flush=True)
    bench_common.write_rows(args.out, rows, batch_size=args.batch_size)


if __name__ == "__main__":
    main()
