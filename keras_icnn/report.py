"""Evaluate saved models with every applicable metric; write a report and pictures.

``trainers/evaluate.py`` parses flags into :class:`EvalConfig` and calls
:func:`evaluate_models`.
"""

import dataclasses
import json
import os
import time

import keras
import numpy as np

from keras_icnn import metrics
from keras_icnn.validation import check_fields
from keras_icnn.data import readers, synthetic_parts

COLUMNS = (
    ("accuracy", "accuracy", "higher"),
    ("location_instability", "location instability", "lower"),
    ("part_interpretability", "part interpretability", "higher"),
    ("mis", "MIS", "higher"),
    ("activmap_avg_iou", "ActivMap Avg-IoU", "higher"),
    ("activmap_ap20", "ActivMap AP20", "higher"),
    ("activmap_ap30", "ActivMap AP30", "higher"),
    ("gradmap_avg_iou", "GradMap Avg-IoU", "higher"),
    ("cam_avg_iou", "CAM Avg-IoU", "higher"),
    ("redundancy_r0.1", "r_0.1", "lower"),
    ("c_ic", "C_IC", "lower"),
)


@dataclasses.dataclass
class EvalConfig:
    models: tuple = ()
    names: tuple = ()
    dataset: str = "synthetic"  # synthetic | cub | pascal_part
    data_dir: str = ""
    split: str = "test"
    task: str = "multi"
    category: str = "bird"
    num_examples: int = 1200
    image_size: int = 64
    num_classes: int = 6
    seed: int = 0
    layer: str = ""
    top_k: int = 100
    gradmap_examples: int = 48
    batch_size: int = 64
    output_dir: str = "/tmp/keras_icnn_eval"
    verbose: int = 1

    def validate(self):
        """Raise a ValueError/TypeError/FileNotFoundError naming the first bad field."""
        if not self.models:
            raise ValueError("`models` must name at least one .keras file "
                             "(--models=a.keras,b.keras). Received: models=()")
        if self.names and len(self.names) != len(self.models):
            raise ValueError(f"`names` must give one name per model ({len(self.models)}). "
                             f"Received: names={list(self.names)}")
        for path in self.models:
            if not os.path.isfile(path):
                raise FileNotFoundError(f"`models`: model file not found: {path}")
        check_fields(self, positive=("num_examples", "image_size", "top_k", "batch_size"),
                     non_negative=("gradmap_examples", "seed"),
                     choices={"dataset": ("synthetic", "cub", "pascal_part"),
                              "task": ("multi", "single")})
        if self.num_classes < 2:
            raise ValueError(f"`num_classes` must be >= 2. Received: num_classes={self.num_classes}")
        if self.dataset == "synthetic":
            if self.split not in ("train", "validation", "test"):
                raise ValueError("`split` must be train, validation or test. "
                                 f"Received: split={self.split!r}")
        elif not self.data_dir:
            raise ValueError(f"`data_dir` is needed with dataset={self.dataset!r} (a local copy "
                             "of it). Received: data_dir=''")
        elif not os.path.isdir(self.data_dir):
            raise FileNotFoundError(f"`data_dir` not found. Received: data_dir={self.data_dir!r}")
        return self


def load_examples(config):
    """The evaluation examples named by the config (a dict of arrays), part and class names."""
    if config.dataset == "synthetic":
        common = dict(image_size=config.image_size, num_classes=config.num_classes,
                      seed=config.seed, split=config.split)
        if config.task == "single":
            ex = synthetic_parts.make_single_category_examples(
                config.category, config.num_examples, **common)
            classes = ["background", str(config.category)]
        else:
            ex = synthetic_parts.make_examples(config.num_examples, **common)
            classes = list(synthetic_parts.CATEGORY_NAMES[:config.num_classes])
        return ex, list(synthetic_parts.PART_NAMES), classes
    if not config.data_dir:
        raise ValueError(f"--dataset={config.dataset} needs --data_dir (a local copy of it)")
    if config.dataset == "cub":
        ex = readers.read_cub(config.data_dir, split=config.split, image_size=config.image_size,
                              limit=config.num_examples)
        classes = [f"class {c + 1}" for c in range(int(ex["label"].max()) + 1 if len(ex["label"]) else 0)]
    elif config.dataset == "pascal_part":
        ex = readers.read_pascal_part(config.data_dir, image_size=config.image_size)
        classes = list(readers.PASCAL_ANIMALS)
    else:
        raise ValueError("`dataset` must be synthetic, cub or pascal_part. "
                         f"Received: dataset={config.dataset!r}")
    names = [str(n) for n in ex.pop("part_names")]
    return ex, names, classes


def _gap_dense_kernel(model, layer_name):
    """Dense kernel [K, C] when the layer feeds GAP -> Dense -> output (CAM applies), else None."""
    layers = model.layers
    if (len(layers) >= 2 and isinstance(layers[-1], keras.layers.Dense)
            and isinstance(layers[-2], keras.layers.GlobalAveragePooling2D)
            and layers[-2].input is model.get_layer(layer_name).output):
        return np.asarray(layers[-1].kernel)
    return None


def evaluate_model(model, examples, part_names, class_names, config, name, pictures_dir):
    """All applicable metrics of one model and its pictures; returns a dict of numbers.

    ``pictures_dir`` None draws no pictures (``pictures`` is then ``{}``).
    """
    layer_name = config.layer or metrics.default_layer(model)
    r = metrics.collect_responses(model, layer_name, examples, config.batch_size, config.verbose)
    labels = r["label"]
    num_classes = int(r["logits"].shape[-1])
    size = examples["image"].shape[1:3]
    single = num_classes == 2 and not examples["part_masks"][labels == 0].any()
    pos = labels == 1 if single else np.ones(len(labels), bool)
    out = {"layer": layer_name, "filters": int(r["maps"].shape[-1]),
           "accuracy": float(np.mean(r["logits"].argmax(-1) == labels))}
    # Location instability and part interpretability (ICNN §5.2).
    if single:
        out["location_instability"], _ = metrics.location_instability(
            r["positions"][pos], r["landmarks"][pos], size, r["scores"][pos], config.top_k)
        classes = np.ones(out["filters"], int)
        pi, p_f, p = metrics.part_interpretability(r["maps"][pos], r["part_masks"][pos])
    else:
        out["location_instability"], _, _ = metrics.location_instability_multi(
            r["positions"], r["landmarks"], labels, size, r["scores"], num_classes, config.top_k)
        classes = metrics.filter_classes_by_activation(r["maps"], labels, num_classes)
        pi, p_f, p = metrics.part_interpretability(r["maps"], r["part_masks"], labels=labels,
                                                   filter_classes=classes)
    out["part_interpretability"] = pi
    # Filter-class mutual information (CSG §4.2) on global-average-pooled maps.
    pooled = r["maps"].mean(axis=(1, 2))
    mi = metrics.mutual_information_matrix(pooled, labels, num_classes, random_state=config.seed)
    out["mis"] = float(mi.max(1).mean())
    # Localization (CSG App. G/H).
    act = metrics.activation_map_localization(r["maps"][pos], examples["object_mask"][pos],
                                              labels[pos], num_classes)
    out.update(activmap_avg_iou=act["avg_iou"], activmap_ap20=act["ap20"],
               activmap_ap30=act["ap30"])
    if config.gradmap_examples > 0:
        idx = np.nonzero(pos)[0][:config.gradmap_examples]
        grads = metrics.gradient_maps(model, layer_name, examples["image"][idx])
        gl = metrics.gradient_map_localization(grads, examples["object_mask"][idx], labels[idx],
                                               num_classes)
        out.update(gradmap_avg_iou=gl["avg_iou"], gradmap_ap20=gl["ap20"], gradmap_ap30=gl["ap30"])
    kernel = _gap_dense_kernel(model, layer_name)
    if kernel is not None:
        cam = metrics.cam_localization(r["maps"][pos], kernel, examples["object_mask"][pos],
                                       labels[pos])
        out.update(cam_avg_iou=cam["avg_iou"], cam_ap20=cam["ap20"], cam_ap30=cam["ap30"])
    # Filter correlation (CSG §4.3).
    layer = model.get_layer(layer_name)
    if hasattr(layer, "kernel"):
        corr = metrics.filter_correlation(np.asarray(layer.kernel))
        onehot = (labels[:, None] == np.arange(num_classes)).astype(float)
        class_act = onehot.T @ pooled / np.maximum(onehot.sum(0), 1)[:, None]
        out["redundancy_r0.1"] = metrics.redundancy_ratio(corr, 0.1)
        out["c_ic"] = metrics.inter_class_correlation(
            corr, class_act, max(1, out["filters"] // num_classes))
    out["pictures"] = (_pictures(model, name, layer_name, examples, part_names, class_names, r,
                                 p, p_f, mi, classes, pos, pictures_dir)
                       if pictures_dir else {})
    return out


def _pictures(model, name, layer_name, examples, part_names, class_names, r, p, p_f, mi, classes,
              pos, folder):
    from keras_icnn import viz

    os.makedirs(folder, exist_ok=True)
    files = {}
    top = np.argsort(-p_f, kind="stable")[:6]
    target = int(classes[top[0]])
    labels = r["label"]
    show = np.nonzero(pos & (labels == target))[0][:8] if np.any(pos & (labels == target)) \
        else np.nonzero(pos)[0][:8]
    row_labels = [f"f{f}: {part_names[int(p[f].argmax())]} ({p_f[f]:.2f})" for f in top]
    files["filters"] = viz.filter_heatmaps(
        os.path.join(folder, f"{name}_filters.png"), examples["image"][show], r["maps"][show], top,
        title=f"{name}: most part-like filters ({layer_name})", filter_labels=row_labels)
    files["part_association"] = viz.matrix_heatmap(
        os.path.join(folder, f"{name}_part_association.png"), p.T, "filter", "part",
        f"{name}: P(f, k), images where filter f's region matches part k", yticklabels=part_names,
        vmin=0, vmax=1)
    files["mi_matrix"] = viz.matrix_heatmap(
        os.path.join(folder, f"{name}_mi_matrix.png"), mi.T, "filter", "class",
        f"{name}: MI(filter; class)",
        yticklabels=[_class_name(class_names, c) for c in range(mi.shape[1])])
    gate = [w for w in model.weights if w.name.endswith("gate")]
    if gate:
        files["gate_matrix"] = viz.matrix_heatmap(
            os.path.join(folder, f"{name}_gate.png"), np.asarray(gate[0]), "filter", "class",
            f"{name}: gate matrix G", vmin=0, vmax=1)
    filter_parts = np.where(p_f > 0, p.argmax(1), -1)
    first = int(np.nonzero(pos)[0][0])
    shares, cls, score = metrics.part_contributions(
        model, layer_name, examples["image"][first:first + 1], filter_parts, len(part_names))
    files["part_contributions"] = viz.part_contributions(
        os.path.join(folder, f"{name}_contributions.png"), examples["image"][first], shares[0],
        list(part_names) + ["no part"], _class_name(class_names, int(cls[0])), float(score[0]))
    return files


def _class_name(class_names, c):
    return class_names[c] if c < len(class_names) else f"class {c}"


def markdown_table(rows):
    """Rows = models, columns = metrics (the papers' table shape)."""
    present = [c for c in COLUMNS if any(c[0] in r for r in rows.values())]
    head = "| model | " + " | ".join(f"{h} ({'↑' if d == 'higher' else '↓'})"
                                     for _, h, d in present) + " |"
    sep = "|---|" + "---|" * len(present)
    lines = [head, sep]
    for name, r in rows.items():
        cells = [f"{r[k]:.4f}" if isinstance(r.get(k), float) else "n/a" for k, _, _ in present]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def evaluate_models(config):
    """Evaluate every model of the config; write report.json, report.md and pictures."""
    config.validate()
    names = list(config.names) or [os.path.splitext(os.path.basename(m))[0] for m in config.models]
    t0 = time.time()
    os.makedirs(config.output_dir, exist_ok=True)
    examples, part_names, class_names = load_examples(config)
    from keras_icnn import viz

    pictures_dir = os.path.join(config.output_dir, "pictures") if viz.available() else None
    if pictures_dir is None:
        print("pictures not drawn: matplotlib is not installed (pip install 'keras_icnn[viz]'); "
              "the numbers are all in report.json / report.md")
    rows = {}
    for name, path in zip(names, config.models):
        if config.verbose:
            print(f"evaluating {name} ({path})")
        model = keras.models.load_model(path)
        rows[name] = evaluate_model(model, examples, part_names, class_names, config, name,
                                    pictures_dir)
    report = {"config": dataclasses.asdict(config), "models": rows,
              "seconds": round(time.time() - t0, 1)}
    with open(os.path.join(config.output_dir, "report.json"), "w") as f:
        json.dump(report, f, indent=2, default=lambda o: o.tolist() if hasattr(o, "tolist") else str(o))
    table = markdown_table(rows)
    with open(os.path.join(config.output_dir, "report.md"), "w") as f:
        f.write(f"# keras_icnn evaluation ({config.dataset}, {config.split} split, "
                f"{len(examples['image'])} images)\n\n{table}\n\n")
        for name, r in rows.items():
            f.write(f"## {name} (layer `{r['layer']}`, {r['filters']} filters)\n\n")
            for kind, png in r["pictures"].items():
                f.write(f"![{kind}](pictures/{os.path.basename(png)})\n")
            f.write("\n")
    return report, table
