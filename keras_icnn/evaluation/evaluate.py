"""One saved model's evaluation on a split: every applicable metric, streamed (two reads of the
split), its pictures and its report.html section (``keras-icnn-evaluate``'s per-model work)."""
import os

import keras
import numpy as np

from keras_icnn import metrics
from keras_icnn.evaluation import streaming
from keras_icnn.evaluation.atlas import atlas_section, class_name, gate_of
from keras_icnn.evaluation.clock import StageClock
from keras_icnn.reporting.html import THUMB


def _gap_dense_kernel(model, layer_name):
    """Dense kernel [K, C] when the layer feeds GAP -> Dense -> output (CAM applies), else None."""
    layers = model.layers
    if (len(layers) >= 2 and isinstance(layers[-1], keras.layers.Dense)
            and isinstance(layers[-2], keras.layers.GlobalAveragePooling2D)
            and layers[-2].input is model.get_layer(layer_name).output):
        return np.asarray(layers[-1].kernel)
    return None


def evaluate_model(model, source, config, name, pictures_dir, tree_source=None):
    """All applicable metrics of one model on ``source``'s ``config.eval_split``, streamed; its
    pictures. Metrics the data cannot support (no parts, no object masks) are left out of
    the result ("n/a" in the report), never 0. ``pictures_dir`` None draws no pictures.

    Returns:
        ``(metrics, atlas)``: the metrics dict and the model's report.html section
        (:func:`atlas_section`; with ``tree_source``, the training images of ``--trees`` and
        ``--graph``, its ``"trees"``: :func:`keras_icnn.evaluation.trees.tree_sections`, and
        its ``"graph"``: :func:`keras_icnn.evaluation.graph_section.graph_section`). The
        metrics' ``"stage_seconds"`` says where the time went (the streamed passes over the
        split, GradMaps, pictures, the atlas with its gradient-ascent pictures, trees, graph).
    """
    from keras_icnn.models import graph

    clock = StageClock()
    # A user's nested model (a keras.applications base in a Sequential) is read through a
    # flat copy with its weights; --layer may name a layer inside it or give its path.
    layer_name = graph.flat_layer_name(model, config.layer, "evaluate") if config.layer else None
    model = graph.flat_copy(model, "evaluate")
    layer_name = layer_name or metrics.default_layer(model)
    num_classes = int(model.outputs[0].shape[-1])
    kernel = _gap_dense_kernel(model, layer_name)
    single = config.task == "single" if config.dataset == "synthetic" else False
    with clock("stream"):
        r = _stream(model, layer_name, source, config, single, kernel, num_classes)
    labels, pooled = r["labels"], r["pooled"]
    out = {"layer": layer_name, "filters": int(pooled.shape[-1]), "accuracy": r["accuracy"],
           "images": int(len(labels))}
    for key in ("location_instability", "part_consistency", "part_stability",
                "part_interpretability"):
        if key in r:
            out[key] = r[key]
    if "dissection" in r:  # Network Dissection on (category, part) concepts
        d = r["dissection"]
        out.update(unique_detectors=d["unique_detectors"], mean_best_iou=d["mean_best_iou"],
                   detectors=d["detector_count"], concepts=int(d["iou"].shape[1]),
                   mean_iou_ceiling=float(d["ceiling"][d["best_concept"]].mean()))
    # Filter-class mutual information (CSG §4.2) on global-average-pooled maps.
    with clock("mutual_information"):
        mi = metrics.mutual_information_matrix(pooled, labels, num_classes,
                                               random_state=config.seed)
    out["mis"] = metrics.mutual_information_score(matrix=mi)
    if "activmap" in r:
        act = r["activmap"]
        out.update(activmap_avg_iou=act["avg_iou"], activmap_ap20=act["ap20"],
                   activmap_ap30=act["ap30"])
    kept = [k for k in r["kept"] if not single or int(k["label"]) == 1]
    if config.gradmap_examples > 0 and kept and "object_mask" in kept[0]:
        chosen = kept[:config.gradmap_examples]
        with clock("gradmaps"):
            grads = metrics.gradient_maps(model, layer_name,
                                          np.stack([k["image"] for k in chosen]))
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
    with clock("pictures"):
        matrices = matrix_pngs(model, name, r, mi, source.class_names, source.part_names)
        out["pictures"] = (_pictures(model, name, layer_name, source, r, mi, kept, pictures_dir,
                                     matrices) if pictures_dir and kept else {})
    atlas = atlas_section(model, name, layer_name, source, config, r, mi, matrices, clock)
    if tree_source is not None and getattr(config, "graph", False):
        from keras_icnn.evaluation.graph_section import graph_section

        with clock("graph"):
            atlas["graph"] = graph_section(model, tree_source, config)
    if tree_source is not None and getattr(config, "trees", True):
        from keras_icnn.evaluation.trees import tree_sections

        p_f = r.get("p_f")
        filter_parts = np.where(p_f > 0, r["p"].argmax(1), -1) if p_f is not None else None
        explained = [k["image"] for k in r["kept"][:config.explained_predictions]]
        with clock("trees"):
            atlas["trees"] = tree_sections(model, layer_name, tree_source, config, filter_parts,
                                           source.part_names, explained)
    out["stage_seconds"] = clock.rounded()
    return out, atlas


def _stream(model, layer_name, source, config, single, kernel, num_classes):
    """:func:`streaming.stream_filter_metrics` of the config's split."""
    return streaming.stream_filter_metrics(
        model, layer_name,
        lambda: source.dataset(config.eval_split, config.batch_size, as_supervised=False),
        source.size(config.eval_split), num_classes, single=single or None, top_k=config.top_k,
        dense_kernel=kernel, keep=max(config.gradmap_examples, 16, config.explained_predictions),
        seed=config.seed, verbose=config.verbose, atlas_images=config.atlas_images,
        atlas_size=THUMB)


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
        row_labels = [f"f{f}: {class_name(class_names, int(mi[f].argmax()))}" for f in top]
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
            class_name(class_names, int(cls[0])), float(score[0]),
            path=files["part_contributions"])
    return files


def matrix_pngs(model, name, r, mi, class_names, part_names):
    """PNG bytes of :func:`_matrix_figures` (each rendered once, for the pictures and the
    page alike); none without matplotlib."""
    from keras_icnn.reporting import figures as viz

    if not viz.available():
        return {}
    return {key: viz.to_png(figure, dpi=100)
            for key, figure in matrix_figures(model, name, r, mi, class_names,
                                               part_names).items()}


def matrix_figures(model, name, r, mi, class_names, part_names):
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
        yticklabels=[class_name(class_names, c) for c in range(mi.shape[1])])
    gate = gate_of(model)
    if gate is not None:
        figures["gate_matrix"] = viz.matrix_heatmap(
            gate, "filter", "class", f"{name}: gate matrix G", vmin=0, vmax=1,
            yticklabels=[class_name(class_names, c) for c in range(gate.shape[0])])
    return figures
