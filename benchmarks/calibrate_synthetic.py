"""Calibrate a difficulty of the synthetic data on STD-only criteria (no CSG run).

For each setting of the difficulty knobs (``similarity:color_jitter:distractors:occlusion[:variants]``)
it trains the STD ResNet-20 of ``train_csg.py`` (same backbone, optimizer,
batch, epochs and training-set size as ``benchmarks/bench_interpretability.py``'s
CSG rows) and measures on the **validation** split its accuracy and its MIS
as a fraction of the ceiling ``H_b(1/C)``. Issue 16's criteria for the "hard"
configuration with 10 categories: accuracy 80-92%, MIS <= 50% of the ceiling
(0.325 for 10 classes; the paper's CIFAR-10 STD network sits at 34%).

    python benchmarks/calibrate_synthetic.py --settings=1.0:0.35:2:0.5,0.75:0.25:2:0.2

Writes ``benchmarks/results/calibration_synthetic.{json,md}`` (one row per
setting, appended to the rows already there for other settings).
"""
import json
import os
import time

from absl import app, flags


import bench_common  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_list("settings", ["1.0:0.35:2:0.5"],
                  "similarity:color_jitter:distractors:occlusion[:variants], one per run.")
flags.DEFINE_integer("num_classes", 10, "Synthetic categories.")
flags.DEFINE_integer("num_train", 3000, "Training images (the bench's CSG rows: 3000).")
flags.DEFINE_integer("num_val", 600, "Validation images the criteria are measured on.")
flags.DEFINE_integer("epochs", 30, "Epochs (the bench's CSG rows: 30).")
flags.DEFINE_integer("seed", 0, "Seed of data and weights.")
flags.DEFINE_enum("learning_rate_schedule", "cosine", ["constant", "cosine"],
                  "train_csg.py's --learning_rate_schedule. cosine (default): with a constant rate the last "
                  "epoch's validation accuracy swings by +-5 points from one epoch to the next "
                  "on this data, so the criteria would judge the lottery, not the data.")
flags.DEFINE_string("output", os.path.join(os.path.dirname(os.path.abspath(__file__)), "results",
                                           "calibration_synthetic.json"), "JSON to write.")


def calibrate(similarity, color_jitter, distractors, occlusion, variants=1):
    import keras
    import numpy as np

    from keras_icnn import metrics
    from keras_icnn.data import sources
    from keras_icnn.evaluation import csg as csg_eval
    from keras_icnn.recipes import common, csg, optim

    config = csg.CSGConfig(num_classes=FLAGS.num_classes, num_train=FLAGS.num_train,
                           num_val=FLAGS.num_val, epochs=FLAGS.epochs, seed=FLAGS.seed,
                           eval_split="validation", learning_rate_schedule=FLAGS.learning_rate_schedule,
                           verbose=2).validate()
    source = sources.open_synthetic(
        config.image_size, config.num_classes, config.num_train, config.num_val, 1,
        seed=config.seed, similarity=similarity, color_jitter=color_jitter,
        distractors=distractors, occlusion=occlusion, variants=variants)
    t0 = time.time()
    keras.utils.set_random_seed(config.seed)
    model, layer = common.make_backbone(config, source.num_classes, "csg")
    steps = -(-source.size("train") // config.batch_size)
    _, _, lr = optim.network_learning_rates(config, steps, ["std"] * config.epochs)
    model.compile(keras.optimizers.Adam(lr),
                  keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    train, val = common.datasets(config, source)
    model.fit(train, validation_data=val, epochs=config.epochs, verbose=2, shuffle=False)
    r = csg_eval.csg_pass(model, layer, common.eval_batches(config, source, "validation"), csg=False)
    mis = metrics.mutual_information_score(r["pooled"], r["label"], source.num_classes,
                                           config.seed)
    ceiling = metrics.mutual_information_ceiling(r["label"], source.num_classes)
    return {"similarity": similarity, "color_jitter": color_jitter, "distractors": distractors,
            "occlusion": occlusion, "variants": variants, "learning_rate_schedule": FLAGS.learning_rate_schedule,
            "validation_accuracy": float(np.mean(r["std"].argmax(-1) == r["label"])),
            "train_accuracy_last_epoch": float(model.history.history["accuracy"][-1]),
            "mis": mis, "mis_ceiling": ceiling, "mis_fraction_of_ceiling": mis / ceiling,
            "seconds": round(time.time() - t0, 1)}


def markdown(rows):
    """The rows as a Markdown table, in the order they were run."""
    from keras_icnn.reporting.tables import table

    cells = []
    for r in rows:
        ok = 0.80 <= r["validation_accuracy"] <= 0.92 and r["mis_fraction_of_ceiling"] <= 0.5
        cells.append([r["similarity"], r["color_jitter"], r["distractors"], r["occlusion"],
                      r["variants"], r.get("learning_rate_schedule", "constant"),
                      f"{r['validation_accuracy']:.4f}", f"{r['mis_fraction_of_ceiling']:.3f}",
                      "yes" if ok else "no"])
    return table(["similarity", "color_jitter", "distractors", "occlusion", "variants",
                  "lr schedule", "val. accuracy", "MIS / ceiling", "meets both"], cells) + "\n"


def main(argv):
    del argv
    old = []
    if os.path.exists(FLAGS.output):
        with open(FLAGS.output) as f:
            old = json.load(f).get("rows", [])
    for setting in FLAGS.settings:
        s, j, d, o, *v = setting.split(":")
        row = calibrate(float(s), float(j), int(d), float(o), int(v[0]) if v else 1)
        row.update(num_classes=FLAGS.num_classes, num_train=FLAGS.num_train,
                   num_val=FLAGS.num_val, epochs=FLAGS.epochs, seed=FLAGS.seed)
        print(json.dumps(row))
        fields = ("similarity", "color_jitter", "distractors", "occlusion", "variants",
                  "learning_rate_schedule", "num_classes",
                  "num_train", "epochs", "seed")
        key = lambda r: tuple(r.get(k) for k in fields)  # noqa: E731
        old = [r for r in old if key(r) != key(row)] + [row]
        bench_common.write_rows(FLAGS.output, old, criteria="validation accuracy 0.80-0.92, "
                                "MIS <= 0.5 x ceiling (STD ResNet-20, validation split)")
        with open(os.path.splitext(FLAGS.output)[0] + ".md", "w") as f:
            f.write(markdown(old))


if __name__ == "__main__":
    app.run(main)
