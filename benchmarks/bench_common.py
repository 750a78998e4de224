"""What every benchmark writes next to its rows."""
import json
import os
import platform
import statistics
import time


def machine():
    return f"{platform.machine()}, {os.cpu_count()} CPU cores, no GPU"


def load_json(path, default=None):
    """The JSON at ``path`` (a benchmark's results or resume state), or ``default`` (a fresh
    ``{}`` when None) when there is no file yet."""
    if not os.path.isfile(path):
        return {} if default is None else default
    with open(path) as f:
        return json.load(f)


def save_json(path, value, indent=1, sort_keys=False, quiet=True):
    """Write ``value`` to ``path`` atomically (a temporary file, then a rename: a run killed
    mid-write leaves the previous state), numpy values as plain numbers
    (:func:`keras_icnn.reporting.outputs.jsonable`). The one JSON writer of the benchmarks."""
    from keras_icnn.reporting.outputs import jsonable

    folder = os.path.dirname(path)
    if folder:
        os.makedirs(folder, exist_ok=True)
    with open(path + ".tmp", "w") as f:
        json.dump(jsonable(value), f, indent=indent, sort_keys=sort_keys)
    os.replace(path + ".tmp", path)
    if not quiet:
        print(f"wrote {path}")
    return path


def write_rows(path, rows, **extra):
    """Write ``{"machine", "date", "rows", **extra}`` as JSON to ``path`` and say so."""
    save_json(path, {"machine": machine(), "date": time.strftime("%Y-%m-%d"), "rows": rows,
                     **extra}, indent=2, quiet=False)


def alternate(steps_by_name, steps, repeats, clock=time.perf_counter):
    """Per-repeat seconds per step of each callable, run alternately (each traced, compiled
    and its optimizer built by two untimed calls first). ``clock``: wall time by default;
    ``time.process_time`` counts the CPU seconds of this process (all its threads), which
    other processes sharing the cores disturb far less."""
    for fn in steps_by_name.values():
        fn()
        fn()
    samples = {name: [] for name in steps_by_name}
    for _ in range(repeats):
        for name, fn in steps_by_name.items():
            t0 = clock()
            for _ in range(steps):
                out = fn()
            _sync(out)
            samples[name].append((clock() - t0) / steps)
    return samples


def _sync(out):
    import tensorflow as tf

    for value in tf.nest.flatten(out):
        if hasattr(value, "numpy"):
            value.numpy()


def ratio_row(samples, name, baseline):
    """Median ms of both, the ratio of the medians and the min-max of the per-repeat ratios."""
    per_repeat = [a / b for a, b in zip(samples[name], samples[baseline])]
    return {"step": name, "baseline": baseline,
            "ms": 1e3 * statistics.median(samples[name]),
            "baseline_ms": 1e3 * statistics.median(samples[baseline]),
            "ratio": statistics.median(samples[name]) / statistics.median(samples[baseline]),
            "ratio_min": min(per_repeat), "ratio_max": max(per_repeat)}
