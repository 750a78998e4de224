"""One model's section of report.html: its filter atlas (each shown filter's top images with
its map and peak, its part, category, MI, NetDissect concept, gate relevance and
gradient-ascent picture) and predictions explained filter by filter. Built from what
:func:`~keras_icnn.evaluation.streaming.stream_filter_metrics` kept: no extra read of the data.
"""
import numpy as np
import tensorflow as tf

from keras_icnn.evaluation.clock import StageClock
from keras_icnn.explain import ascent
from keras_icnn.explain import explainable_for
from keras_icnn.reporting import html as report_html


def class_name(class_names, c):
    """The name of class ``c`` (``"class c"`` past the list)."""
    return class_names[c] if c < len(class_names) else f"class {c}"


def gate_of(model):
    """A CSG model's gate matrix G [C, F] (its weight named ``gate``), else None."""
    gate = [w for w in model.weights if w.name.endswith("gate")]
    return np.asarray(gate[0]) if gate else None


def _traced_rows(explainable, images, batch_size):
    """Maps [n, h, w, F], part locations [n, F, 2] and the explanation tensors of ``images``."""
    step, out = explainable.traced(), {}
    for a in range(0, len(images), batch_size):
        x = tf.constant(images[a:a + batch_size])
        r = step(x, tf.fill([len(x)], -1))
        for key in ("maps", "part_locations", "contributions", "contribution_shares",
                    "classes", "target_logit"):
            out.setdefault(key, []).append(r[key].numpy())
    return {k: np.concatenate(v) for k, v in out.items()}


def atlas_section(model, name, layer_name, source, config, r, mi, matrices, clock=None):
    """One model's part of report.html: its filter atlas, matrices (PNG bytes by name,
    :func:`~keras_icnn.evaluation.evaluate.matrix_pngs`) and explained predictions; ``clock``
    (a :class:`~keras_icnn.evaluation.clock.StageClock`) times its stages."""
    clock = clock or StageClock()
    class_names, part_names = source.class_names, source.part_names
    scores, p_f = r["scores"], r.get("p_f")
    num_filters = scores.shape[1]
    mi_best = mi.max(1)
    ranking = p_f if p_f is not None else mi_best
    shown = np.argsort(-ranking, kind="stable")[:config.atlas_filters]
    collected = r["atlas"]  # each filter's top images, kept by the stream's second pass
    k = collected["top"].shape[0]
    top = collected["top"][:, shown]  # [k, shown]
    examples = list(range(min(config.explained_predictions, len(r["kept"]))))
    with clock("explained_predictions"):
        explainable = explainable_for(model, layer_name)
        t = _traced_rows(explainable, np.stack([r["kept"][i]["image"] for i in examples]).astype(
            np.float32), config.batch_size) if examples else {}
    own = np.asarray(explainable.filter_classes())
    categories = np.where(own >= 0, own, r["filter_classes"])
    gate = gate_of(model)
    dis = r.get("dissection")
    concept_names = [f"{class_name(class_names, c)}/{p}" for c in range(
        len(dis["iou"][0]) // max(len(part_names), 1)) for p in part_names] if dis else []
    with clock("ascent"):
        pictures = (ascent_pictures(model, layer_name, shown, config) if config.ascent_steps
                    and len(shown) else None)
    filters = []
    for column, f in enumerate(shown):
        thumbs = report_html.thumbnails(
            np.stack([collected["images"][int(i)] for i in top[:, column]]),
            collected["maps"][:, f], r["positions"][top[:, column], f],
            image_size=collected["image_size"])
        card = {"index": int(f), "category": class_name(class_names, int(categories[f])),
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
    for n in examples:
        i = n
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
                     f"{class_name(class_names, int(categories[f]))})"
                     for f in np.argsort(-np.abs(shares))[:5]]
        best = int(np.argmax(t["contributions"][n]))
        thumb = report_html.thumbnails(r["kept"][n]["image"][None], t["maps"][n:n + 1, :, :, best],
                                       t["part_locations"][n:n + 1, best], size=120)[0]
        label = int(r["labels"][i])
        predictions.append({
            "image": report_html.data_uri(thumb),
            "title": f"test image {i}: predicted {class_name(class_names, cls)} (true "
                     f"{class_name(class_names, label)}), logit {logit:.2f}; map of filter "
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


def ascent_pictures(model, layer_name, filters, config):
    """uint8 thumbnails [len(filters), THUMB, THUMB, 3] of each filter's gradient-ascent
    picture (:func:`keras_icnn.explain.ascent.filter_images`, raw-pixel range 0-255, the report's
    seed), each stretched to its own min-max so faint patterns show."""
    images = ascent.filter_images(model, layer_name, filters=filters, steps=config.ascent_steps,
                                  seed=config.seed, batch_size=config.batch_size)[..., :3]
    low = images.min(axis=(1, 2, 3), keepdims=True)
    high = images.max(axis=(1, 2, 3), keepdims=True)
    stretched = (images - low) / np.maximum(high - low, 1e-6)
    small = tf.image.resize(stretched, (report_html.THUMB, report_html.THUMB), method="area")
    return np.clip(np.round(small.numpy() * 255.0), 0, 255).astype(np.uint8)
