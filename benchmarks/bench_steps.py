"""What the other methods add to a training step, as ratios measured in one process.

* **CSG**: a CSG ResNet-20 step in each phase (STD epochs: cross-entropy of the
  ungated network; CSG epochs: the gated path, the sparsity penalty and G's own
  optimizer; default ``std_in_csg=False``) vs the step of the same ResNet-20
  trained as an ordinary Keras model (the STD baseline of ``train_csg.py``).
  Target: <= 1.05x.
* **Explainer**: one distillation step (frozen performer forward, both tracks,
  decoder, filter losses, the lambda rule's extra gradients) vs a forward +
  backward + Adam step of the performer layers the explainer stands in for (its
  top conv and the head up to the reconstructed feature, fed the same target-
  layer maps), and vs a whole training step of the performer. Reported, no
  target.

Every model is timed alternately within each repeat (these machines are noisy:
only ratios mean something); a repeat is ``--steps`` steps, the figure is the
median over ``--repeats`` repeats, the spread the min-max of the per-repeat
ratios.

    python benchmarks/bench_steps.py            # ~3 minutes on 2 CPU cores
    python benchmarks/bench_steps.py --steps=5 --repeats=2     # a smoke run

Writes ``benchmarks/results/steps.json`` (``--out``).
"""
import argparse
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
HERE = os.path.dirname(os.path.abspath(__file__))

import bench_common  # noqa: E402
import keras  # noqa: E402
import numpy as np  # noqa: E402

from keras_icnn.models import build_explainer, make_csg, resnet20_backbone, vgg_backbone  # noqa: E402
from keras_icnn.models.explainer import plan_head  # noqa: E402


def csg_rows(args):
    size, classes, batch = args.image_size, 10, args.batch_size
    rng = np.random.RandomState(0)
    x = rng.uniform(0, 255, (batch, size, size, 3)).astype("float32")
    y = rng.randint(0, classes, batch)

    def backbone():
        keras.utils.set_random_seed(0)
        return resnet20_backbone((size, size, 3), classes, width=16)

    baseline = backbone()
    baseline.compile(keras.optimizers.Adam(1e-3),
                     keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    models = {"STD baseline": baseline}
    for phase in ("std", "csg"):
        model = make_csg(backbone(), "top_conv", classes, density=0.1)
        model.compile(keras.optimizers.Adam(1e-3), csg_optimizer=keras.optimizers.Adam(1e-3),
                      gate_optimizer=keras.optimizers.Adam(0.05))
        model.phase = phase
        models[f"CSG, {phase.upper()} phase"] = model
    steps = {name: (lambda m=m: m.train_on_batch(x, y)) for name, m in models.items()}
    samples = bench_common.alternate(steps, args.steps, args.repeats)
    return [bench_common.ratio_row(samples, name, "STD baseline")
            for name in models if name != "STD baseline"]


def explainer_rows(args):
    size, classes, batch, target = args.image_size, 6, args.batch_size, "block3_pool"
    rng = np.random.RandomState(0)
    x = rng.uniform(0, 255, (batch, size, size, 3)).astype("float32")
    y = rng.randint(0, classes, batch)
    keras.utils.set_random_seed(0)
    performer = vgg_backbone((size, size, 3), classes, width=16)
    _, distiller = build_explainer(performer, target)
    distiller.compile(keras.optimizers.Adam(1e-3))
    # The layers the explainer stands in for: the top conv and the head up to the last
    # reconstructed feature, as a trainable copy fed the target layer's maps.
    plan = plan_head(performer, target)
    feats_in = keras.Input(performer.get_layer(target).output.shape[1:])
    h = feats_in
    for layer in (plan.top, *plan.decoder_layers):
        h = layer.__class__.from_config(layer.get_config())(h)
    replaced = keras.Model(feats_in, h)
    replaced.compile(keras.optimizers.Adam(1e-3), "mse")
    lower = keras.Model(performer.inputs, performer.get_layer(target).output)
    feats = lower(x).numpy()
    targets = replaced(feats).numpy()
    # build_explainer freezes the performer: time the training step of a trainable copy.
    trainable = keras.models.clone_model(performer)
    trainable.compile(keras.optimizers.Adam(1e-3),
                      keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    steps = {"performer layers replaced": lambda: replaced.train_on_batch(feats, targets),
             "performer training step": lambda: trainable.train_on_batch(x, y),
             "distillation step": lambda: distiller.train_on_batch(x, y)}
    samples = bench_common.alternate(steps, args.steps, args.repeats)
    return [bench_common.ratio_row(samples, "distillation step", "performer layers replaced"),
            bench_common.ratio_row(samples, "distillation step", "performer training step")]


def main():
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=20, help="steps per repeat (default 20)")
    p.add_argument("--repeats", type=int, default=5, help="alternating repeats (default 5)")
    p.add_argument("--batch_size", type=int, default=32)
    p.add_argument("--image_size", type=int, default=64, help="the bench's 64x64 images")
    p.add_argument("--out", default=os.path.join(HERE, "results", "steps.json"))
    args = p.parse_args()
    rows = []
    for group, fn in (("csg", csg_rows), ("explainer", explainer_rows)):
        for row in fn(args):
            row["group"] = group
            rows.append(row)
            print(f"{row['step']:>26} / {row['baseline']:<26} {row['ms']:8.1f} / "
                  f"{row['baseline_ms']:8.1f} ms = {row['ratio']:.3f} "
                  f"[{row['ratio_min']:.3f}, {row['ratio_max']:.3f}]", flush=True)
        keras.backend.clear_session()
    bench_common.write_rows(args.out, rows, steps=args.steps, repeats=args.repeats,
                            batch_size=args.batch_size, image_size=args.image_size)


if __name__ == "__main__":
    main()
