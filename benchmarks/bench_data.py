"""Generation speed of the synthetic part dataset (images/s on one core).

Usage: python benchmarks/bench_data.py [--n 2000] [--image_size 64] [--out FILE.json]
Target (issue 3): >= 1000 images/s at 64x64 on one core.
"""
import argparse
import json
import os
import platform
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

from keras_icnn.data import synthetic_parts  # noqa: E402


def measure(n, image_size, repeats=3, **kwargs):
    synthetic_parts.make_examples(64, image_size=image_size, **kwargs)  # warm-up
    best = float("inf")
    for r in range(repeats):
        t0 = time.perf_counter()
        synthetic_parts.make_examples(n, image_size=image_size, seed=r + 1, **kwargs)
        best = min(best, time.perf_counter() - t0)
    return n / best


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, default=2000)
    p.add_argument("--image_size", type=int, default=64)
    p.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "results", "data.json"))
    args = p.parse_args()
    results = {
        "machine": f"{platform.machine()} {os.cpu_count()} cores",
        "image_size": args.image_size,
        "multi_images_per_s": measure(args.n, args.image_size),
        "negatives_images_per_s": measure(args.n, args.image_size, negatives=True),
    }
    results["meets_1000_per_s"] = results["multi_images_per_s"] >= 1000
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(results, f, indent=2)
    print(f"{'kind':<12}{'images/s':>10}")
    print(f"{'multi':<12}{results['multi_images_per_s']:>10.0f}")
    print(f"{'negatives':<12}{results['negatives_images_per_s']:>10.0f}")
    print(f"target >= 1000 images/s: {'met' if results['meets_1000_per_s'] else 'MISSED'}")


if __name__ == "__main__":
    main()
