"""Data benchmarks: synthetic generation, streamed real-data input, memory.

Usage:
    python benchmarks/bench_data.py                 # every section, results/data.json
    python benchmarks/bench_data.py --only=stream   # one section (generate|stream|step|memory)

Sections:
* generate: synthetic part images per second on one core (target >= 1000 at 64 px).
* stream: images per second of the streamed CUB-layout JPEG pipeline (decode, crop
  to the box, resize, part masks, shuffle, flip, batch) at 64 and 224 px.
* step: training-step time of the same small backbone fed by the streamed
  pipeline vs by in-memory arrays, in the same process (target ratio <= 1.1:
  the input is never the bottleneck).
* memory: peak resident memory of a fresh process streaming one epoch of a
  CUB-layout directory, for two dataset sizes (target: independent of the
  size), next to reading the same directory into memory as the old readers did.
"""
import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def generation_speed(n=2000, image_size=64, repeats=3, **kwargs):
    """Synthetic images per second, generated on one thread."""
    from keras_icnn.data import synthetic_parts

    synthetic_parts.make_examples(64, image_size=image_size, **kwargs)  # warm-up
    best = float("inf")
    for r in range(repeats):
        t0 = time.perf_counter()
        synthetic_parts.make_examples(n, image_size=image_size, seed=r + 1, **kwargs)
        best = min(best, time.perf_counter() - t0)
    return n / best


def write_cub(root, n, side=192, unique=240, seed=0):
    """A CUB-layout directory of ``n`` JPEGs (``unique`` distinct creatures, repeated),
    each ``side`` px plus a 25% margin on every edge (so a 288 px file for 192)."""
    import numpy as np

    from keras_icnn.data import layouts, synthetic_parts

    ex = synthetic_parts.make_examples(min(n, unique), image_size=side, num_classes=6, seed=seed)
    reps = -(-n // len(ex["label"]))
    tiled = {k: np.concatenate([v] * reps)[:n] for k, v in ex.items()}
    return layouts.write_cub_layout(tiled, root, train_fraction=1.0)


def stream_speed(root, image_size, batch_size=32, epochs=2):
    """Images per second of one epoch of the training pipeline (after a warm-up epoch)."""
    from keras_icnn.data import sources

    source = sources.open_source("cub", root, image_size=image_size, num_val=0)
    ds = source.dataset("train", batch_size, training=True, seed=0)
    rates = []
    for _ in range(epochs):
        t0, n = time.perf_counter(), 0
        for x, _ in ds:
            n += int(x.shape[0])
        rates.append(n / (time.perf_counter() - t0))
    return max(rates[1:] or rates), source.size("train")


def step_ratio(root, image_size=64, batch_size=32, epochs=3):
    """Seconds per training step, streamed vs in memory, same model and images."""
    import keras

    from keras_icnn.data import pipeline, sources
    from keras_icnn.models import vgg_backbone

    source = sources.open_source("cub", root, image_size=image_size, num_val=0)
    arrays = source.materialize("train")
    feeds = {"in_memory": lambda: pipeline.make_dataset(arrays, batch_size, training=True),
             "streamed": lambda: source.dataset("train", batch_size, training=True)}
    steps = -(-source.size("train") // batch_size)
    times = {}
    for name in ("in_memory", "streamed", "in_memory", "streamed"):  # interleaved, best of 2
        keras.utils.set_random_seed(0)
        model = vgg_backbone((image_size, image_size, 3), source.num_classes, width=16)
        model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                      jit_compile=True)
        ds = feeds[name]()
        model.fit(ds, epochs=1, verbose=0, shuffle=False)  # compile and warm the pipeline
        t0 = time.perf_counter()
        model.fit(ds, epochs=epochs, verbose=0, shuffle=False)
        per_step = (time.perf_counter() - t0) / (epochs * steps)
        times[name] = min(times.get(name, float("inf")), per_step)
    return times, times["streamed"] / times["in_memory"]


def _peak_child(mode, root, image_size):
    """Run one memory measurement in a fresh process; returns peak RSS in MiB."""
    code = (
        "import os, sys; os.environ['TF_CPP_MIN_LOG_LEVEL']='2';"
        f"sys.path.insert(0, {os.path.dirname(os.path.dirname(os.path.abspath(__file__)))!r});"
        "from keras_icnn.data import sources, readers;"
        f"root, size = {root!r}, {image_size};"
        "src = sources.open_source('cub', root, image_size=size, num_val=0);"
        "n = 0\n"
        f"if {mode!r} == 'streamed':\n"
        "    for x, y in src.dataset('train', 32, training=True): n += int(x.shape[0])\n"
        "else:\n"
        "    ex = readers.read_cub(root, 'train', image_size=size); n = len(ex['image'])\n"
        # VmHWM: this process's peak RSS since exec (ru_maxrss would keep the forked
        # parent's peak across exec).
        "hwm = [l for l in open('/proc/self/status') if l.startswith('VmHWM')][0];"
        "print(n, int(hwm.split()[1]) / 1024.0)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=1800, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"))
    if out.returncode != 0:
        raise RuntimeError(out.stderr[-2000:])
    n, mib = out.stdout.split()[-2:]
    return int(n), float(mib)


def main():
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--only", default="generate,stream,step,memory")
    p.add_argument("--stream_images", type=int, default=1200)
    p.add_argument("--memory_sizes", default="600,2400")
    p.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "results",
                                                 "data.json"))
    args = p.parse_args()
    only = set(args.only.split(","))
    results = {}
    import bench_common  # the script's own folder (generation_speed runs as benchmarks.bench_data)

    if os.path.exists(args.out):
        results = bench_common.load_json(args.out)
    results["machine"] = f"{platform.machine()} {os.cpu_count()} cores"
    work = tempfile.mkdtemp(prefix="bench_data_")
    for legacy in ("image_size", "multi_images_per_s", "negatives_images_per_s",
                   "meets_1000_per_s"):
        results.pop(legacy, None)  # the flat layout of earlier versions
    if "generate" in only:
        # One core, as the target says: a fresh process with single-threaded numpy.
        code = ("import json, sys; sys.path.insert(0, sys.argv[1]);"
                "from benchmarks.bench_data import generation_speed;"
                "print(json.dumps([generation_speed(), generation_speed(negatives=True)]))")
        env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1",
                   MKL_NUM_THREADS="1")
        root_dir = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        out = subprocess.run([sys.executable, "-c", code, root_dir], capture_output=True,
                             text=True, env=env, timeout=600, check=True)
        multi, negatives = json.loads(out.stdout.strip().splitlines()[-1])
        results["generate"] = {"image_size": 64, "multi_images_per_s": multi,
                               "negatives_images_per_s": negatives}
        results["generate"]["meets_1000_per_s"] = results["generate"]["multi_images_per_s"] >= 1000
        print(f"synthetic generation: {results['generate']['multi_images_per_s']:.0f} images/s")
    if only & {"stream", "step"}:
        root = write_cub(os.path.join(work, "cub_stream"), args.stream_images)
    if "stream" in only:
        results["stream"] = {}
        for size in (64, 224):
            rate, n = stream_speed(root, size)
            results["stream"][f"{size}px_images_per_s"] = rate
            print(f"streamed CUB-layout JPEGs ({n} files of 288x288 px) -> {size} px: "
                  f"{rate:.0f} images/s")
    if "step" in only:
        times, ratio = step_ratio(root)
        results["step"] = {"seconds_per_step": times, "streamed_over_in_memory": ratio,
                           "meets_1.1": ratio <= 1.1, "model": "vgg width 16, 64 px, batch 32"}
        print(f"training step: in memory {times['in_memory'] * 1e3:.1f} ms, streamed "
              f"{times['streamed'] * 1e3:.1f} ms, ratio {ratio:.3f} (target <= 1.1)")
    if "memory" in only:
        results["memory"] = {"image_size": 224}
        for n in (int(v) for v in args.memory_sizes.split(",")):
            root_n = write_cub(os.path.join(work, f"cub_{n}"), n)
            streamed = _peak_child("streamed", root_n, 224)
            in_memory = _peak_child("in_memory", root_n, 224)
            results["memory"][str(n)] = {"streamed_peak_mib": streamed[1],
                                         "read_into_memory_peak_mib": in_memory[1]}
            print(f"{n} images at 224 px: peak RSS streamed {streamed[1]:.0f} MiB, "
                  f"read into memory {in_memory[1]:.0f} MiB")
        sizes = [v for k, v in results["memory"].items() if k != "image_size"]
        results["memory"]["streamed_growth_mib"] = (sizes[-1]["streamed_peak_mib"]
                                                    - sizes[0]["streamed_peak_mib"])
    bench_common.save_json(args.out, results, indent=2, quiet=False)


if __name__ == "__main__":
    main()
