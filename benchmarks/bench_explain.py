"""How fast is ``explain``? Against the floor: one forward and one backward pass (issue 30).

For the built-in VGG and ``resnet50`` (``weights=None``) at 64x64, 32 images, the second and
later calls of

* ``explain(model, images, heatmaps=None)`` and ``explain(..., heatmaps="top")``,
* the floor: a hand-written ``tf.GradientTape`` Grad-CAM of the same model and layer in one
  ``tf.function`` (forward, backward, the channel weights, the map and the same bilinear
  resize to image size), its result fetched to numpy,
* tf-keras-vis ``Gradcam`` reused, when tf-keras-vis is installed (optional; not a dependency),

interleaved in one process (the machines are noisy: every figure is a ratio against the
floor measured next to it), ``--repeats`` rounds, median per method. Writes
``benchmarks/results/explain.json``.

    python benchmarks/bench_explain.py              # ~2 min on 2 cores
    python benchmarks/bench_explain.py --repeats=5  # quicker, noisier
"""
import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
HERE = os.path.dirname(os.path.abspath(__file__))

import numpy as np  # noqa: E402

import bench_common  # noqa: E402


def build(name):
    import keras

    from keras_icnn.models import backbones

    keras.utils.set_random_seed(0)
    if name == "vgg":
        model = backbones.vgg_backbone((64, 64, 3), 6)
    else:
        model = backbones.application_backbone(name, (64, 64, 3), 6, weights="none")
    return model


def tape_gradcam(model, layer):
    """The floor: Grad-CAM of the predicted class by hand, resized to image size."""
    import keras
    import tensorflow as tf

    from keras_icnn.models import graph

    probe = keras.Model(model.inputs[0], [graph.layer_output(model, layer), model.outputs[0]])
    size = tuple(int(d) for d in model.inputs[0].shape[1:3])

    @tf.function(input_signature=[tf.TensorSpec((None, 64, 64, 3), tf.float32)],
                 autograph=False)
    def run(x):
        with tf.GradientTape() as tape:
            maps, logits = probe(x, training=False)
            chosen = tf.gather(logits, tf.argmax(logits, -1, output_type=tf.int32), axis=1,
                               batch_dims=1)
        grads = tape.gradient(chosen, maps)
        cam = tf.nn.relu(tf.einsum("bhwf,bf->bhw", maps, tf.reduce_mean(grads, [1, 2])))
        return tf.image.resize(cam[..., None], size, method="bilinear")[..., 0]

    return lambda images: run(tf.constant(images)).numpy()


def keras_vis(model, layer):
    """tf-keras-vis Gradcam reused, or None when it is not installed."""
    try:
        from tf_keras_vis.gradcam import Gradcam
    except ImportError:
        return None
    cam = Gradcam(model, clone=True)

    def run(images):
        logits = model.predict(images, verbose=0)
        classes = logits.argmax(-1)
        return cam(lambda out: [out[i, c] for i, c in enumerate(classes)], images,
                   penultimate_layer=layer)

    return run


def measure(name, repeats, images):
    from keras_icnn.explain import default_layer, explain

    model = build(name)
    layer = default_layer(model)
    methods = {"floor (tape Grad-CAM)": tape_gradcam(model, layer),
               "explain, heatmaps=None": lambda x: explain(model, x, heatmaps=None),
               "explain, heatmaps='top'": lambda x: explain(model, x, heatmaps="top")}
    vis = keras_vis(model, layer)
    if vis is not None:
        methods["tf-keras-vis Gradcam (reused)"] = vis
    for fn in methods.values():  # the first calls trace: not measured
        fn(images)
        fn(images)
    times = {m: [] for m in methods}
    for _ in range(repeats):
        for m, fn in methods.items():
            t0 = time.perf_counter()
            fn(images)
            times[m].append(time.perf_counter() - t0)
    floor = float(np.median(times["floor (tape Grad-CAM)"]))
    rows = []
    for m, t in times.items():
        med = float(np.median(t))
        rows.append({"model": name, "layer": layer, "method": m, "median_ms": 1000 * med,
                     "ratio_to_floor": med / floor, "repeats": repeats})
    return rows


def main():
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--repeats", type=int, default=15)
    p.add_argument("--models", default="vgg,resnet50")
    p.add_argument("--out", default=os.path.join(HERE, "results", "explain.json"))
    args = p.parse_args()
    images = np.random.RandomState(0).uniform(0, 255, (32, 64, 64, 3)).astype(np.float32)
    rows = []
    for name in args.models.split(","):
        rows += measure(name, args.repeats, images)
    bench_common.write_rows(args.out, rows)
    from keras_icnn.reporting.tables import table

    print(table(["model", "method", "median (ms)", "× floor"],
                [[r["model"], r["method"], f"{r['median_ms']:.1f}", f"{r['ratio_to_floor']:.2f}×"]
                 for r in rows]))


if __name__ == "__main__":
    main()
