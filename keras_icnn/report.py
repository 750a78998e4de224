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
from keras_icnn.reporting import tables
from keras_icnn.metrics import streaming
from keras_icnn.data.synthetic_parts import SPLITS, TASKS
from keras_icnn.config.flags import option
from keras_icnn.config.options import DataOptions
from keras_icnn.recipes.common import check_model_files, load_model_file, open_data, prepare_output
from keras_icnn.reporting.outputs import write_config
from keras_icnn.validation import check_fields

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
    ("unique_detectors", "unique detectors (NetDissect)", "higher"),
    ("mean_best_iou", "mean best IoU (NetDissect)", "higher"),
)


@dataclasses.dataclass
class EvalConfig(DataOptions):
    """Settings of ``trainers/evaluate.py`` (the data options are the trainers', so the same
    flags give the same splits)."""

    models: tuple = option((), "Comma-separated .keras files to evaluate.")
    names: tuple = option((), "Names of the models in the report (default: file names).")
    eval_split: str = option("test", "Split to evaluate: train, validation or test.", SPLITS,
                             aliases=("split",))
    task: str = option("multi", "Synthetic task the models were trained on.", TASKS)
    category: str = option("bird", "Positive category of --task=single.")
    num_examples: int = option(1200, "Images to evaluate, taken evenly across classes (0: the "
                                     "whole split of a real dataset).")
    layer: str = option("", "Layer to evaluate (default: the top conv layer).")
    top_k: int = option(100, "Images per filter and landmark in location instability.")
    gradmap_examples: int = option(48, "Images for GradMap localization (0 skips it).")
    batch_size: int = option(64, "Images per inference step.")
    atlas_filters: int = option(64, "Filters per model in report.html's filter atlas (the most "
                                    "interpretable first).")
    atlas_images: int = option(8, "Top-activating test images shown per atlas filter.")
    ascent_steps: int = option(32, "Gradient-ascent steps of each atlas filter's picture "
                                    "(what excites it most; 0: no pictures).")
    explained_predictions: int = option(3, "Test predictions explained filter by filter in "
                                           "report.html.")
    output_dir: str = option("/tmp/keras_icnn_eval", "Where the report goes.")
    verbose: int = option(1, "Progress bars (1) or quiet (0).")

    def validate(self):
        """Raise a ValueError/TypeError/FileNotFoundError naming the first bad field."""
        check_model_files(self.models, self.names)
        check_fields(self, positive=("top_k", "batch_size", "atlas_images"),
                     non_negative=("num_examples", "gradmap_examples", "atlas_filters",
                                   "explained_predictions", "ascent_steps"),
                     choices={"task": TASKS,
                              "eval_split": SPLITS})
        self.validate_data()
        if self.dataset == "synthetic" and self.num_examples < 1:
            raise ValueError("`num_examples` must be >= 1 with synthetic data. "
                             f"Received: num_examples={self.num_examples}")
        if self.eval_split == "validation" and self.dataset != "synthetic" and self.num_val < 1:
            raise ValueError("`num_val` must be >= 1 to evaluate the validation split")
        return self


def load_source(config):
    """The evaluation data: a :class:`~keras_icnn.data.sources.Source` whose ``config.eval_split``
    holds ``num_examples`` images (evenly across classes), and its class names."""
    from keras_icnn.data import sources

    if config.dataset == "synthetic":
        sizes = {split: 1 for split in ("train", "validation", "test")}
        sizes[config.eval_split] = config.num_examples
        source = sources.open_synthetic(
            config.image_size, config.num_classes, sizes["train"], sizes["validation"],
            sizes["test"], seed=config.seed, task=config.task, category=config.category,
            synthetic_config=config.synthetic_config)
    else:
        source = open_data(config)
        if config.num_examples:
            source.limit(config.eval_split, config.num_examples, config.seed)
    return source


def _gap_dense_kernel(model, layer_name):
    """Dense kernel [K, C] when the layer feeds GAP -> Dense -> output (CAM applies), else None."""
    layers = model.layers
    if (len(layers) >= 2 and isinstance(layers[-1], keras.layers.Dense)
            and isinstance(layers[-2], keras.layers.GlobalAveragePooling2D)
            and layers[-2].input is model.get_layer(layer_name).output):
        return np.asarray(layers[-1].kernel)
    return None


def evaluate_model(model, source, config, name, pictures_dir):
    """All applicable metrics of one model on ``source``'s ``config.eval_split``, streamed; its
    pictures. Metrics the data cannot support (no parts, no object masks) are left out of
    the result ("n/a" in the report), never 0. ``pictures_dir`` None draws no pictures.

    Returns:
        ``(metrics, atlas)``: the metrics dict and the model's report.html section
        (:func:`atlas_section`).
    """
    from keras_icnn.models import graph

    # A user's nested model (a keras.applications base in a Sequential) is read through a
    # flat copy with its weights; --layer may name a layer inside it or give its path.
    layer_name = graph.flat_layer_name(model, config.layer, "evaluate") if config.layer else None
    model = graph.flat_copy(model, "evaluate")
    layer_name = layer_name or metrics.default_layer(model)
    num_classes = int(model.outputs[0].shape[-1])
    kernel = _gap_dense_kernel(model, layer_name)
    single = config.task == "single" if config.dataset == "synthetic" else False
    r = streaming.stream_filter_metrics(
        model, layer_name,
        lambda: source.dataset(config.eval_split, config.batch_size, as_supervised=False),
        source.size(config.eval_split), num_classes, single=single or None, top_k=config.top_k,
        dense_kernel=kernel, keep=max(config.gradmap_examples, 16), seed=config.seed,
        verbose=config.verbose)
    labels, pooled = r["labels"], r["pooled"]
    out = {"layer": layer_name, "filters": int(pooled.shape[-1]), "accuracy": r["accuracy"],
           "images": int(len(labels))}
    for key in ("location_instability", "part_interpretability"):
        if key in r:
            out[key] = r[key]
    if "dissection" in r:  # Network Dissection on (category, part) concepts
        d = r["dissection"]
        out.update(unique_detectors=d["unique_detectors"], mean_best_iou=d["mean_best_iou"],
                   detectors=d["detector_count"], concepts=int(d["iou"].shape[1]),
                   mean_iou_ceiling=float(d["ceiling"][d["best_concept"]].mean()))
    # Filter-class mutual information (CSG §4.2) on global-average-pooled maps.
    mi = metrics.mutual_information_matrix(pooled, labels, num_classes, random_state=config.seed)
    out["mis"] = float(mi.max(1).mean())
    if "activmap" in r:
        act = r["activmap"]
        out.update(activmap_avg_iou=act["avg_iou"], activmap_ap20=act["ap20"],
                   activmap_ap30=act["ap30"])
    kept = [k for k in r["kept"] if not single or int(k["label"]) == 1]
    if config.gradmap_examples > 0 and kept and "object_mask" in kept[0]:
        chosen = kept[:config.gradmap_examples]
        grads = metrics.gradient_maps(model, layer_name, np.stack([k["image"] for k in chosen]))
        gl = metrics.gradient_map_localization(
            grads, np.stack([k["object_mask"] for k in chosen]),
            np.array([int(k["label"]) for k in chosen]), num_classes)
        out.update(gradmap_avg_iou=gl["avg_iou"], gradmap_ap20=gl["ap20"], gradmap_ap30=gl["ap30"])
    if "cam" in r:
        out.update(cam_avg_iou=r["cam"]["avg_iou"], cam_ap20=r["cam"]["ap20"],
                   cam_ap30=r["cam"]["ap30"])
    # Filter correlation (CSG §4.3).
    layer = model.get_layer(layer_name)
    if hasattr(layer, "kernel"):
        corr = metrics.filter_correlation(np.asarray(layer.kernel))
        onehot = (labels[:, None] == np.arange(num_classes)).astype(float)
        class_act = onehot.T @ pooled / np.maximum(onehot.sum(0), 1)[:, None]
        out["redundancy_r0.1"] = metrics.redundancy_ratio(corr, 0.1)
        out["c_ic"] = metrics.inter_class_correlation(
            corr, class_act, max(1, out["filters"] // num_classes))
    matrices = _matrix_pngs(model, name, r, mi, source.class_names, source.part_names)
    out["pictures"] = (_pictures(model, name, layer_name, source, r, mi, kept, pictures_dir,
                                 matrices) if pictures_dir and kept else {})
    atlas = atlas_section(model, name, layer_name, source, config, r, mi, matrices)
    return out, atlas


def _pictures(model, name, layer_name, source, r, mi, kept, folder, matrices):
    from keras_icnn.reporting import figures as viz

    os.makedirs(folder, exist_ok=True)
    files = {}
    class_names, part_names = source.class_names, source.part_names
    p_f = r.get("p_f")
    if p_f is not None:
        top = np.argsort(-p_f, kind="stable")[:6]
        row_labels = [f"f{f}: {part_names[int(r['p'][f].argmax())]} ({p_f[f]:.2f})" for f in top]
    else:  # no parts: the filters with the most mutual information with a class
        top = np.argsort(-mi.max(1), kind="stable")[:6]
        row_labels = [f"f{f}: {_class_name(class_names, int(mi[f].argmax()))}" for f in top]
    target = int(r["filter_classes"][top[0]])
    show = [k for k in kept if int(k["label"]) == target][:8] or kept[:8]
    files["filters"] = os.path.join(folder, f"{name}_filters.png")
    viz.filter_heatmaps(
        np.stack([k["image"] for k in show]), np.stack([k["maps"] for k in show]), top,
        title=f"{name}: {'most part-like' if p_f is not None else 'most class-specific'} "
              f"filters ({layer_name})", filter_labels=row_labels, path=files["filters"])
    for key, png in matrices.items():
        files[key] = os.path.join(folder, f"{name}_{key}.png")
        with open(files[key], "wb") as f:
            f.write(png)
    if p_f is not None:
        filter_parts = np.where(p_f > 0, r["p"].argmax(1), -1)
        first = kept[0]
        shares, cls, score = metrics.part_contributions(
            model, layer_name, first["image"][None], filter_parts, len(part_names))
        files["part_contributions"] = os.path.join(folder, f"{name}_contributions.png")
        viz.part_contributions(
            first["image"], shares[0], list(part_names) + ["no part"],
            _class_name(class_names, int(cls[0])), float(score[0]),
            path=files["part_contributions"])
    return files


def _gate(model):
    gate = [w for w in model.weights if w.name.endswith("gate")]
    return np.asarray(gate[0]) if gate else None


def _matrix_pngs(model, name, r, mi, class_names, part_names):
    """PNG bytes of :func:`_matrix_figures` (each rendered once, for the pictures and the
    page alike); none without matplotlib."""
    from keras_icnn.reporting import figures as viz

    if not viz.available():
        return {}
    return {key: viz.to_png(figure, dpi=100)
            for key, figure in _matrix_figures(model, name, r, mi, class_names,
                                               part_names).items()}


def _matrix_figures(model, name, r, mi, class_names, part_names):
    """Figures of the part association (with parts), MI and gate (CSG) matrices."""
    from keras_icnn.reporting import figures as viz

    figures = {}
    if r.get("p_f") is not None:
        figures["part_association"] = viz.matrix_heatmap(
            r["p"].T, "filter", "part",
            f"{name}: P(f, k), images where filter f's region matches part k",
            yticklabels=part_names, vmin=0, vmax=1)
    figures["mi_matrix"] = viz.matrix_heatmap(
        mi.T, "filter", "class", f"{name}: MI(filter; class)",
        yticklabels=[_class_name(class_names, c) for c in range(mi.shape[1])])
    gate = _gate(model)
    if gate is not None:
        figures["gate_matrix"] = viz.matrix_heatmap(
            gate, "filter", "class", f"{name}: gate matrix G", vmin=0, vmax=1,
            yticklabels=[_class_name(class_names, c) for c in range(gate.shape[0])])
    return figures


def _images_at(source, config, indices):
    """The images at stream positions ``indices`` of the evaluated split (one more pass)."""
    wanted, found, seen = set(int(i) for i in indices), {}, 0
    for batch in source.dataset(config.eval_split, config.batch_size, as_supervised=False):
        images = batch["image"].numpy()
        for k in range(len(images)):
            if seen + k in wanted:
                found[seen + k] = images[k]
        seen += len(images)
        if len(found) == len(wanted):
            break
    return found


def _traced_rows(explainable, images, batch_size):
    """Maps [n, h, w, F], part locations [n, F, 2] and the explanation tensors of ``images``."""
    import tensorflow as tf

    step, out = explainable.traced(), {}
    for a in range(0, len(images), batch_size):
        x = tf.constant(images[a:a + batch_size])
        r = step(x, tf.fill([len(x)], -1))
        for key in ("maps", "part_locations", "contributions", "contribution_shares",
                    "classes", "target_logit"):
            out.setdefault(key, []).append(r[key].numpy())
    return {k: np.concatenate(v) for k, v in out.items()}


def atlas_section(model, name, layer_name, source, config, r, mi, matrices):
    """One model's part of report.html: its filter atlas, matrices (PNG bytes by name,
    :func:`_matrix_pngs`) and explained predictions."""
    from keras_icnn.reporting import html as report_html
    from keras_icnn.explain import explainable_for

    class_names, part_names = source.class_names, source.part_names
    scores, p_f = r["scores"], r.get("p_f")
    num_filters = scores.shape[1]
    mi_best = mi.max(1)
    ranking = p_f if p_f is not None else mi_best
    shown = np.argsort(-ranking, kind="stable")[:config.atlas_filters]
    k = min(config.atlas_images, len(scores))
    top = np.argsort(-scores[:, shown], axis=0, kind="stable")[:k]  # [k, shown]
    examples = list(range(min(config.explained_predictions, len(scores))))
    needed = sorted(set(top.ravel().tolist()) | set(examples))
    found = _images_at(source, config, needed)
    images = np.stack([found[i] for i in needed]).astype(np.float32)
    row = {i: n for n, i in enumerate(needed)}
    explainable = explainable_for(model, layer_name)
    t = _traced_rows(explainable, images, config.batch_size)
    own = np.asarray(explainable.filter_classes())
    categories = np.where(own >= 0, own, r["filter_classes"])
    gate = _gate(model)
    dis = r.get("dissection")
    concept_names = [f"{_class_name(class_names, c)}/{p}" for c in range(
        len(dis["iou"][0]) // max(len(part_names), 1)) for p in part_names] if dis else []
    pictures = (_ascent_pictures(model, layer_name, shown, config) if config.ascent_steps
                and len(shown) else None)
    filters = []
    for column, f in enumerate(shown):
        rows = [row[int(i)] for i in top[:, column]]
        thumbs = report_html.thumbnails(images[rows], t["maps"][rows, :, :, f],
                                        t["part_locations"][rows, f])
        card = {"index": int(f), "category": _class_name(class_names, int(categories[f])),
                "interpretability": float(p_f[f]) if p_f is not None else 0.0,
                "part": (part_names[int(r["p"][f].argmax())] if p_f is not None else None),
                "mi": float(mi_best[f]),
                "relevance": (float(gate[int(categories[f]), f]) if gate is not None
                              and gate.shape[1] == num_filters else None),
                "top_images": [int(i) for i in top[:, column]],
                "strip": report_html.data_uri(report_html.strip(thumbs))}
        if dis is not None:
            best = int(dis["best_concept"][f])
            card.update(concept=concept_names[best], concept_iou=float(dis["best_iou"][f]),
                        concept_ceiling=float(dis["ceiling"][best]),
                        detector=bool(dis["detectors"][f]))
        if pictures is not None:
            card["ascent"] = report_html.data_uri(pictures[column])
        filters.append(card)
    predictions = []
    filter_parts = (np.where(p_f > 0, r["p"].argmax(1), -1) if p_f is not None else None)
    for i in examples:
        n = row[i]
        shares = t["contribution_shares"][n]
        cls, logit = int(t["classes"][n]), float(t["target_logit"][n])
        if filter_parts is not None:
            onehot = (np.where(filter_parts < 0, len(part_names), filter_parts)[:, None]
                      == np.arange(len(part_names) + 1)).astype(np.float64)
            per_part = shares @ onehot
            names = list(part_names) + ["filters with no part"]
            lines = [f"{per_part[q]:+.2f} of the score from {names[q]}"
                     for q in np.argsort(-np.abs(per_part))[:5]]
        else:
            lines = [f"{shares[f]:+.2f} of the score from filter {f} (category "
                     f"{_class_name(class_names, int(categories[f]))})"
                     for f in np.argsort(-np.abs(shares))[:5]]
        best = int(np.argmax(t["contributions"][n]))
        thumb = report_html.thumbnails(images[n:n + 1], t["maps"][n:n + 1, :, :, best],
                                       t["part_locations"][n:n + 1, best], size=120)[0]
        label = int(r["labels"][i])
        predictions.append({
            "image": report_html.data_uri(thumb),
            "title": f"test image {i}: predicted {_class_name(class_names, cls)} (true "
                     f"{_class_name(class_names, label)}), logit {logit:.2f}; map of filter "
                     f"{best}, the largest contribution",
            "lines": lines})
    matrices = {key.replace("_", " "): report_html.png_uri(png) for key, png in matrices.items()}
    dissection = None if dis is None else {
        "unique_detectors": int(dis["unique_detectors"]), "detectors": int(dis["detector_count"]),
        "concepts": len(concept_names), "mean_best_iou": float(dis["mean_best_iou"])}
    return {"name": name, "slug": "".join(c if c.isalnum() else "-" for c in name),
            "dissection": dissection, "ascent_steps": int(config.ascent_steps),
            "layer": layer_name, "num_filters": int(num_filters), "has_parts": p_f is not None,
            "images_per_filter": int(k), "filters": filters, "predictions": predictions,
            "matrices": matrices}


def _ascent_pictures(model, layer_name, filters, config):
    """uint8 thumbnails [len(filters), THUMB, THUMB, 3] of each filter's gradient-ascent
    picture (:func:`keras_icnn.ascent.filter_images`, raw-pixel range 0-255, the report's
    seed), each stretched to its own min-max so faint patterns show."""
    import tensorflow as tf
    from keras_icnn import ascent
    from keras_icnn.reporting import html as report_html

    images = ascent.filter_images(model, layer_name, filters=filters, steps=config.ascent_steps,
                                  seed=config.seed, batch_size=config.batch_size)[..., :3]
    low = images.min(axis=(1, 2, 3), keepdims=True)
    high = images.max(axis=(1, 2, 3), keepdims=True)
    stretched = (images - low) / np.maximum(high - low, 1e-6)
    small = tf.image.resize(stretched, (report_html.THUMB, report_html.THUMB), method="area")
    return np.clip(np.round(small.numpy() * 255.0), 0, 255).astype(np.uint8)


def _class_name(class_names, c):
    return class_names[c] if c < len(class_names) else f"class {c}"


def markdown_table(rows):
    """Rows = models, columns = metrics (the papers' table shape)."""
    return tables.metrics_table(rows, COLUMNS)


def check_model_matches(model, path, config, source):
    """A ValueError naming the flag when the saved model does not take the data's images
    (``--image_size``) or predict its classes (``--num_classes`` / the dataset's classes)."""
    want = tuple(model.inputs[0].shape[1:3])
    if None not in want and want != (config.image_size, config.image_size):
        raise ValueError(f"`image_size` does not match the model {path}: it takes "
                         f"{want[0]}x{want[1]} images. Received: --image_size="
                         f"{config.image_size}")
    classes = int(model.outputs[0].shape[-1])
    if classes != source.num_classes and not (classes == 2 and config.task == "single"):
        flag = "--num_classes" if config.dataset == "synthetic" else "--dataset/--data_dir"
        raise ValueError(f"the model {path} predicts {classes} classes but the data has "
                         f"{source.num_classes} (set by {flag}). Received: "
                         f"--num_classes={config.num_classes}, --dataset={config.dataset}")


def evaluate_models(config):
    """Evaluate every model of the config; write config.json, report.json, report.md,
    report.html (with the filter atlas) and pictures."""
    config.validate()
    names = list(config.names) or [os.path.splitext(os.path.basename(m))[0] for m in config.models]
    prepare_output(config)
    t0 = time.time()
    source = load_source(config)
    write_config(config, source, splits=())
    from keras_icnn.reporting import figures as viz

    pictures_dir = os.path.join(config.output_dir, "pictures") if viz.available() else None
    if pictures_dir is None:
        print("pictures not drawn: matplotlib is not installed (pip install 'keras_icnn[viz]'); "
              "the numbers are all in report.json / report.md")
    rows, sections = {}, []
    for name, path in zip(names, config.models):
        if config.verbose:
            print(f"evaluating {name} ({path})")
        model = load_model_file(path, "models")
        check_model_matches(model, path, config, source)
        with source.naming_bad_files(config.eval_split):
            rows[name], atlas = evaluate_model(model, source, config, name, pictures_dir)
        sections.append(atlas)
    from keras_icnn.reporting import html as report_html

    title = (f"keras_icnn evaluation ({config.dataset}, {config.eval_split} split, "
             f"{source.size(config.eval_split)} images)")
    notes = [] if source.has_parts else [
        f"{config.dataset} has no part annotations: part metrics are not applicable (n/a)."]
    html_path = report_html.write(os.path.join(config.output_dir, "report.html"), title, rows,
                                  COLUMNS, sections, notes)
    report = {"config": dataclasses.asdict(config), "models": rows,
              "atlas": report_html.summary_json(sections), "html": html_path,
              "seconds": round(time.time() - t0, 1)}
    with open(os.path.join(config.output_dir, "report.json"), "w") as f:
        json.dump(report, f, indent=2, default=lambda o: o.tolist() if hasattr(o, "tolist") else str(o))
    table = markdown_table(rows)
    with open(os.path.join(config.output_dir, "report.md"), "w") as f:
        f.write(f"# keras_icnn evaluation ({config.dataset}, {config.eval_split} split, "
                f"{source.size(config.eval_split)} images)\n\n{table}\n\n")
        if not source.has_parts:
            f.write(f"{config.dataset} has no part annotations: part metrics (location "
                    "instability, part interpretability) are not applicable (n/a).\n\n")
        for name, r in rows.items():
            f.write(f"## {name} (layer `{r['layer']}`, {r['filters']} filters)\n\n")
            for kind, png in r["pictures"].items():
                f.write(f"![{kind}](pictures/{os.path.basename(png)})\n")
            f.write("\n")
    return report, table
