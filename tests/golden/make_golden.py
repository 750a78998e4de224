"""Write the golden models and report numbers of tests/test_golden_report.py (issue 45).

Run once, when the golden test is created (or, deliberately, when a change of the metrics is
meant to change the report; say so in the commit):

    python tests/golden/make_golden.py                  # retrain the models, then the numbers
    python tests/golden/make_golden.py --numbers_only   # new report numbers, same models

Trains an ordinary and an interpretable VGG (width 4, 16 dense units, 32 px, 3 classes, 2 epochs on 300
synthetic images, seed 0) into tests/golden/, then writes tests/golden/report.json: the
numbers of ``keras-icnn-evaluate`` on them with tests/test_golden_report.py's settings.
"""
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))


def main(numbers_only=False):
    import keras

    from keras_icnn.data import synthetic_parts
    from keras_icnn.models import make_interpretable, vgg_backbone

    if numbers_only:
        return write_numbers()
    keras.utils.set_random_seed(0)
    ex = synthetic_parts.make_examples(300, image_size=32, num_classes=3, seed=0)
    ordinary = vgg_backbone((32, 32, 3), 3, width=4, dense_units=16)
    icnn = make_interpretable(vgg_backbone((32, 32, 3), 3, width=4, dense_units=16), "top_conv")
    for model in (ordinary, icnn):
        model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                      jit_compile=False)
        model.fit(ex["image"], ex["label"], batch_size=32, epochs=2, verbose=0)
    ordinary.save(os.path.join(HERE, "ordinary.keras"))
    icnn.save(os.path.join(HERE, "interpretable.keras"))
    write_numbers()


def write_numbers():
    import test_golden_report  # noqa: E402  (tests/ is on the path)

    numbers = test_golden_report.report_numbers(os.path.join(HERE, "..", "..", "build",
                                                             "golden_eval"))
    with open(test_golden_report.GOLDEN, "w") as f:
        json.dump(numbers, f, indent=1, sort_keys=True)
        f.write("\n")
    print(f"wrote {test_golden_report.GOLDEN}: {len(numbers)} numbers")


if __name__ == "__main__":
    sys.path.insert(0, os.path.join(os.path.dirname(HERE)))
    main(numbers_only="--numbers_only" in sys.argv[1:])
