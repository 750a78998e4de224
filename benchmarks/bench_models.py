"""User-sized models (issue 49 item 4): what the methods add to a training step, and what
``explain`` costs, on the models users convert, each a ratio against the plain model timed
alternately in the same process (these machines are noisy: only ratios mean something).

The models are the README's "your own model": a ``keras.applications`` base (``weights=None``:
no download; the weights do not change the cost) nested in a ``Sequential`` with global average
pooling and a 200-class ``Dense`` head (CUB-200), 224x224 images, batch ``--batch_size`` (8):

* **VGG16 ICNN**: ``make_interpretable(model, "block5_conv3")`` vs the plain model;
* **ResNet50 ICNN**: ``make_interpretable(model, "conv5_block3_out")`` (the last stage's
  output is no conv: both interpretable convs, 3x3 x 2048 filters each, are new layers on it,
  ICNN §5) vs the plain model;

each ICNN also against its **ordinary twin** (:func:`ordinary_twin`: the same architecture,
the added convs ordinary: the paper's "ordinary CNN"), which separates what interpretability
costs from what the layers ICNN adds cost;
* **ResNet50 CSG**: ``make_csg(model, "conv5_block3_out")``, a step of each phase (STD, CSG)
  vs the plain model;

a training step each (forward + backward + Adam apply: ``train_on_batch``), XLA off and on;
and ``explain(model, images)`` (heatmaps of the predicted class) of the plain models against
the tape floor (a hand-written Grad-CAM of the same layer in one ``tf.function``: one forward
and one backward pass). Target (issue 49): every step <= 1.10x its plain model.

Rows are written to the JSON as they finish; a restart skips the rows already there
(``--fresh`` starts over).

    python benchmarks/bench_models.py                  # ~15 minutes on 2 CPU cores
    python benchmarks/bench_models.py --image_size=64 --steps=1 --repeats=1 --out=/tmp/m.json
                                                       # a smoke run

Writes ``benchmarks/results/models.json`` (``--out``) and the table ``models.md`` beside it.
"""
import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
HERE = os.path.dirname(os.path.abspath(__file__))

import bench_common  # noqa: E402
import numpy as np  # noqa: E402

CLASSES = 200
# (row name, keras.applications base, conversion, layer)
CASES = [("VGG16 ICNN", "VGG16", "icnn", "block5_conv3"),
         ("ResNet50 ICNN", "ResNet50", "icnn", "conv5_block3_out"),
         ("ResNet50 CSG", "ResNet50", "csg", "conv5_block3_out")]


def user_model(base_name, size):
    """A user's model: a ``keras.applications`` base in a ``Sequential`` with a GAP head."""
    import keras

    keras.utils.set_random_seed(0)
    base = getattr(keras.applications, base_name)(include_top=False, weights=None,
                                                  input_shape=(size, size, 3))
    return keras.Sequential([keras.Input((size, size, 3)), base,
                             keras.layers.GlobalAveragePooling2D(),
                             keras.layers.Dense(CLASSES, name="logits")])


def ordinary_twin(icnn):
    """The same architecture as ``icnn`` with ordinary layers: every ``InterpretableConv`` a
    ``Conv2D`` + ReLU of the same shape, every ``InterpretableMask`` an identity (the paper's
    "ordinary CNN": what interpretability itself costs, the added layers aside)."""
    import keras

    from keras_icnn.layers import InterpretableConv
    from keras_icnn.layers.interpretable_mask import InterpretableMask

    def swap(layer):
        if isinstance(layer, InterpretableMask):
            return keras.layers.Identity(name=layer.name)
        if isinstance(layer, InterpretableConv):
            return keras.layers.Conv2D(layer.filters, layer.kernel_size, layer.strides,
                                       layer.padding, activation="relu",
                                       use_bias=layer.use_bias, name=layer.name)
        return layer.__class__.from_config(layer.get_config())

    twin = keras.models.clone_model(icnn, clone_function=swap)
    return keras.Model(twin.inputs, twin.outputs)


def _compile(model, jit):
    import keras

    model.compile(keras.optimizers.Adam(1e-4),
                  keras.losses.SparseCategoricalCrossentropy(from_logits=True), jit_compile=jit)
    return model


def step_rows(case, args, jit, x, y):
    import keras

    from keras_icnn.models import make_csg, make_interpretable

    name, base_name, kind, layer = case
    plain = _compile(user_model(base_name, args.image_size), jit)
    steps = {"plain": lambda: plain.train_on_batch(x, y)}
    if kind == "icnn":
        icnn = make_interpretable(user_model(base_name, args.image_size), layer)
        twin = _compile(ordinary_twin(icnn), jit)
        model = _compile(icnn, jit)
        steps["ordinary twin"] = lambda: twin.train_on_batch(x, y)
        steps[name] = lambda: model.train_on_batch(x, y)
    else:
        for phase in ("std", "csg"):
            model = make_csg(user_model(base_name, args.image_size), layer, density=0.1)
            model.compile(keras.optimizers.Adam(1e-4), csg_optimizer=keras.optimizers.Adam(1e-4),
                          gate_optimizer=keras.optimizers.Adam(0.05), jit_compile=jit)
            model.phase = phase
            steps[f"{name}, {phase.upper()} phase"] = (lambda m=model: m.train_on_batch(x, y))
    samples = bench_common.alternate(steps, args.steps, args.repeats, clock=time.process_time)
    rows = []
    for step in steps:
        for baseline in ("plain", "ordinary twin"):
            if step in ("plain", "ordinary twin") or baseline not in steps:
                continue
            row = bench_common.ratio_row(samples, step, baseline)
            row.update(case=name, jit_compile=jit, kind="train step", clock="cpu")
            rows.append(row)
    keras.backend.clear_session()
    return rows


def tape_floor(model, layer, size):
    """One forward and one backward pass: Grad-CAM of the predicted class by hand."""
    import keras
    import tensorflow as tf

    from keras_icnn.models import graph

    flat = graph.flat_copy(model, "bench_models")
    name = graph.flat_layer_name(model, layer, "bench_models")
    probe = keras.Model(flat.inputs[0], [graph.layer_output(flat, name), flat.outputs[0]])

    @tf.function(autograph=False)
    def run(x):
        with tf.GradientTape() as tape:
            maps, logits = probe(x, training=False)
            chosen = tf.gather(logits, tf.argmax(logits, -1, output_type=tf.int32), axis=1,
                               batch_dims=1)
        grads = tape.gradient(chosen, maps)
        cam = tf.nn.relu(tf.einsum("bhwf,bf->bhw", maps, tf.reduce_mean(grads, [1, 2])))
        return tf.image.resize(cam[..., None], (size, size), method="bilinear")[..., 0]

    return lambda images: run(tf.constant(images)).numpy()


def explain_rows(case, args, x):
    import keras

    from keras_icnn.explain import explain

    name, base_name, _, layer = case
    model = user_model(base_name, args.image_size)
    floor = tape_floor(model, layer, args.image_size)
    steps = {"tape floor": lambda: floor(x),
             f"explain ({base_name})": lambda: explain(model, x, layer=layer, heatmaps="top")}
    samples = bench_common.alternate(steps, 1, args.repeats)
    row = bench_common.ratio_row(samples, f"explain ({base_name})", "tape floor")
    row.update(case=f"{base_name} explain", jit_compile=False, kind="explain", clock="wall")
    keras.backend.clear_session()
    return [row]


def table(rows):
    from keras_icnn.reporting.tables import table as render

    return render(["case", "measured", "against", "XLA", "ms", "baseline ms", "ratio",
                   "per-repeat"],
                  [[r["case"], r["step"], r["baseline"], "on" if r["jit_compile"] else "off",
                    f"{r['ms']:.0f}",
                    f"{r['baseline_ms']:.0f}", f"{r['ratio']:.3f}×",
                    f"{r['ratio_min']:.3f}-{r['ratio_max']:.3f}"] for r in rows])


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--image_size", type=int, default=224)
    p.add_argument("--batch_size", type=int, default=8)
    p.add_argument("--steps", type=int, default=2, help="steps per repeat (default 2)")
    p.add_argument("--repeats", type=int, default=3, help="alternating repeats (default 3)")
    p.add_argument("--cases", default=",".join(c[0] for c in CASES))
    p.add_argument("--fresh", action="store_true", help="ignore the rows already written")
    p.add_argument("--out", default=os.path.join(HERE, "results", "models.json"))
    args = p.parse_args()
    rng = np.random.RandomState(0)
    x = rng.uniform(0, 255, (args.batch_size, args.image_size, args.image_size, 3)).astype(
        np.float32)
    y = rng.randint(0, CLASSES, args.batch_size)
    old = {} if args.fresh else bench_common.load_json(args.out, default={})
    rows = list(old.get("rows", [])) if old.get("image_size") == args.image_size else []
    done = {(r["case"], r["jit_compile"], r["kind"]) for r in rows}
    wanted = [c for c in CASES if c[0] in args.cases.split(",")]
    todo = [(c, jit) for c in wanted for jit in (False, True)]
    for case, jit in todo:
        if (case[0], jit, "train step") in done:
            continue
        t0 = time.time()
        rows += step_rows(case, args, jit, x, y)
        print(f"{case[0]} XLA {'on' if jit else 'off'}: {time.time() - t0:.0f} s", flush=True)
        bench_common.write_rows(args.out, rows, image_size=args.image_size,
                                batch_size=args.batch_size, steps=args.steps,
                                repeats=args.repeats)
    for case in {c[1]: c for c in wanted if c[2] == "icnn"}.values():
        if (f"{case[1]} explain", False, "explain") in done:
            continue
        rows += explain_rows(case, args, x)
        bench_common.write_rows(args.out, rows, image_size=args.image_size,
                                batch_size=args.batch_size, steps=args.steps,
                                repeats=args.repeats)
    text = table(rows)
    with open(os.path.splitext(args.out)[0] + ".md", "w") as f:
        f.write(f"Batch {args.batch_size}, {args.image_size}x{args.image_size}; ratios against "
                "the plain model (train steps, CPU seconds) or the tape floor (explain, wall "
                "seconds), timed alternately in one process.\n\n" + text + "\n")
    print(text)


if __name__ == "__main__":
    main()
