"""Fingerprint what the multi-category ICNN experiment trains on and measures, at any commit.

Runs ``recipes.run_icnn_experiment(ICNNConfig(...))`` of the checkout at ``--root`` (an old
commit's worktree works: the recipe API is the same since 51651e6) with ``keras.Model.fit``
wrapped so that each model's fit records, instead of training for ``--epochs``:

- a hash of the model's initial weights (in layer order, names left out),
- a hash of every batch of the first epoch (images, labels) and of the whole epoch, and of the
  validation batches,
- then trains ``--steps`` steps only (so the run takes seconds to a minute).

The measurement that follows runs as the recipe wrote it; the script records its figures on
these barely-trained models, which are equal across commits when the inputs, weights and
measurement are (a change in what is measured shows there). The evaluation images reach the
measurement through the recipe's own code, so their hash is read from the source: the
``synthetic_splits`` arrays of the eval split (old and new recipes both have it).

Usage (bisecting the regression of issue 25):
    git worktree add /tmp/wt 51651e6
    python benchmarks/fingerprint_icnn.py --root=/tmp/wt --out=/tmp/fp_51651e6.json
    python benchmarks/fingerprint_icnn.py --root=. --out=/tmp/fp_head.json
    python benchmarks/fingerprint_icnn.py --compare /tmp/fp_51651e6.json /tmp/fp_head.json
"""
import argparse
import hashlib
import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def _digest(*arrays):
    import numpy as np

    h = hashlib.sha256()
    for a in arrays:
        a = np.ascontiguousarray(np.asarray(a))
        h.update(str(a.dtype).encode() + str(a.shape).encode())
        h.update(a.tobytes())
    return h.hexdigest()[:16]


def _batch_arrays(batch):
    """(images, labels, part masks or None) of a batch as the fit receives it."""
    if isinstance(batch, dict):
        return batch["image"], batch.get("label"), batch.get("part_masks")
    x, y = batch[0], batch[1]
    if isinstance(x, dict):
        return x.get("image", next(iter(x.values()))), y, x.get("part_masks")
    return x, y, None


def _dataset_record(dataset):
    import numpy as np

    per_batch, labels, h = [], [], hashlib.sha256()
    for batch in dataset:
        images, y, masks = (None if v is None else np.asarray(v) for v in _batch_arrays(batch))
        y = y.astype(np.int64)  # the order and values, not the dtype (fit may cast labels)
        d = _digest(images, y) + ("" if masks is None else _digest(masks))
        per_batch.append(d)
        h.update(d.encode())
        labels.append(y)
    labels = np.concatenate(labels)
    return {"batches": len(per_batch), "epoch": h.hexdigest()[:16], "first_batches": per_batch[:5],
            "images": int(len(labels)), "label_counts": np.bincount(labels.astype(int)).tolist()}


class _InputsRecorded(Exception):
    """Raised by the wrapped fit with --inputs_only: the first model's inputs are recorded."""


def run(root, out, steps, seed, num_train, num_test, inputs_only=False):
    sys.path.insert(0, os.path.abspath(root))
    import keras
    import numpy as np

    from keras_icnn import recipes

    import keras_icnn

    record = {"root": os.path.abspath(root), "package": keras_icnn.__file__, "fits": []}
    if not keras_icnn.__file__.startswith(os.path.abspath(root) + os.sep):
        raise RuntimeError(f"keras_icnn resolved to {keras_icnn.__file__}, not under {root}")
    original_fit = keras.Model.fit

    def fit(self, x=None, y=None, **kwargs):
        weights = [np.asarray(w) for w in self.get_weights()]
        entry = {"model": self.name, "initial_weights": _digest(*weights),
                 "num_weights": len(weights),
                 "fit_kwargs": {k: v for k, v in kwargs.items()
                                if isinstance(v, (int, float, str, bool, type(None)))},
                 "train": _dataset_record(x)}
        if kwargs.get("validation_data") is not None:
            entry["validation"] = _dataset_record(kwargs["validation_data"])
        record["fits"].append(entry)
        if inputs_only:
            raise _InputsRecorded
        kwargs.update(epochs=1, steps_per_epoch=steps, validation_steps=1)
        return original_fit(self, x, y, **kwargs)

    keras.Model.fit = fit
    config = recipes.ICNNConfig(num_train=num_train, num_test=num_test, epochs=15, seed=seed,
                                output_dir=out + ".run", verbose=0)
    from keras_icnn.recipes import icnn

    splits = icnn.synthetic_splits(config)
    record["splits"] = {name: {"n": int(len(ex["image"])),
                               "images": _digest(ex["image"]), "labels": _digest(ex["label"]),
                               "part_masks": _digest(ex["part_masks"]) if "part_masks" in ex
                               else None}
                        for name, ex in splits.items()}
    try:
        results = recipes.run_icnn_experiment(config)
    except _InputsRecorded:
        results = {}
    record["measured"] = {name: {k: results[name].get(k) for k in
                                 ("layer", "test_accuracy", "location_instability",
                                  "part_interpretability")}
                          for name in ("ordinary", "interpretable") if name in results}
    with open(out, "w") as f:
        json.dump(record, f, indent=2)
    print(json.dumps(record, indent=2))


def compare(a_path, b_path):
    a, b = (json.load(open(p)) for p in (a_path, b_path))
    same = True

    def show(label, x, y):
        nonlocal same
        flag = "same" if x == y else "DIFFERENT"
        same &= x == y
        print(f"{flag:9s} {label}: {x} | {y}")

    for split in a["splits"]:
        for key in ("n", "images", "labels", "part_masks"):
            show(f"split {split} {key}", a["splits"][split][key], b["splits"][split][key])
    for fa, fb in zip(a["fits"], b["fits"]):  # (--inputs_only: the first model's only)
        show(f"fit {fa['model']} initial weights", fa["initial_weights"], fb["initial_weights"])
        for part in ("train", "validation"):
            if part in fa or part in fb:
                show(f"fit {fa['model']} {part} epoch", fa.get(part, {}).get("epoch"),
                     fb.get(part, {}).get("epoch"))
                show(f"fit {fa['model']} {part} labels",
                     fa.get(part, {}).get("label_counts"), fb.get(part, {}).get("label_counts"))
        show(f"fit {fa['model']} kwargs", fa["fit_kwargs"], fb["fit_kwargs"])
    for name in a["measured"]:
        for key, value in a["measured"][name].items():
            show(f"measured {name} {key}", value, b["measured"].get(name, {}).get(key))
    return same


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--root", default=os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                   help="checkout whose keras_icnn runs (default: this one)")
    p.add_argument("--out", default="/tmp/icnn_fingerprint.json", help="JSON written here")
    p.add_argument("--steps", type=int, default=3, help="training steps per model")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--num_train", type=int, default=4800, help="the bench's (full) size")
    p.add_argument("--num_test", type=int, default=1200)
    p.add_argument("--inputs_only", action="store_true",
                   help="stop after the first model's inputs are recorded (bisecting)")
    p.add_argument("--compare", nargs=2, metavar=("A", "B"), help="compare two fingerprints")
    args = p.parse_args()
    if args.compare:
        sys.exit(0 if compare(*args.compare) else 1)
    run(args.root, args.out, args.steps, args.seed, args.num_train, args.num_test,
        args.inputs_only)


if __name__ == "__main__":
    main()
