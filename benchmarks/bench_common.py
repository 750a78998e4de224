"""What every benchmark writes next to its rows."""
import json
import os
import platform
import statistics
import time


def machine():
    return f"{platform.machine()}, {os.cpu_count()} CPU cores, no GPU"


def write_rows(path, rows, **extra):
    """Write ``{"machine", "date", "rows", **extra}`` as JSON to ``path`` and say so."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        json.dump({"machine": machine(), "date": time.strftime("%Y-%m-%d"), "rows": rows, **extra},
                  f, indent=2)
    print(f"wrote {path}")


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
