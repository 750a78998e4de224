"""The report's explanatory graph (``keras-icnn-evaluate --graph``; SPEC §10): the graph of a
model fitted on training images, its layers drawn (nodes and the edges to their parents) and
a picture per node (its top-activating patches on those images)."""
import numpy as np
import tensorflow as tf

from keras_icnn.evaluation.trees import training_images
from keras_icnn.graphs import ExplanatoryGraph

PATCHES = 4  # top-activating patches per node
PATCH = 20  # pixels of one patch in the picture
COLUMNS = 20  # nodes per row of a layer's picture


def node_patches(images, inference, offsets, sizes, fields, image_size, count=PATCHES,
                 side=PATCH):
    """uint8 [K, count, side, side, 3]: each node's ``count`` highest-scoring present
    positions, the receptive field around each (clipped to half the image) cut out and
    resized in one batched crop; blank where a node is present on fewer images."""
    images = np.asarray(images, np.float32)
    images = images / 255.0 if images.max() > 1.0 else images
    h, w = image_size
    score = np.where(inference.present, inference.scores, -np.inf)  # [N, K]
    top = np.argsort(-score, axis=0, kind="stable")[:count].T  # [K, count]
    shown = np.isfinite(np.take_along_axis(score.T, top, 1))
    half = np.concatenate([np.full(n, min(max(f.rows.size, f.cols.size), min(h, w)) / 4.0)
                           for n, f in zip(sizes, fields)])  # [K]
    centre = inference.positions[top, np.arange(len(top))[:, None]]  # [K, count, 2]
    # the window slides to stay inside the image (no black padding)
    x = np.clip(centre[..., 0], half[:, None], w - half[:, None])
    y = np.clip(centre[..., 1], half[:, None], h - half[:, None])
    # crop_and_resize samples pixel indices from box * (size - 1), first to last; the window
    # [c - half, c + half] of image coordinates (pixel i centred at i + 0.5) gives ``side``
    # samples at its cells' centres
    first = -0.5 + half[:, None] * (1.0 / side - 1.0)  # offset of the first sample's index
    last = -0.5 + half[:, None] * (1.0 - 1.0 / side)
    boxes = np.stack([(y + first) / (h - 1), (x + first) / (w - 1),
                      (y + last) / (h - 1), (x + last) / (w - 1)], -1).reshape(-1, 4)
    crops = tf.image.crop_and_resize(images[..., :3], boxes.astype(np.float32),
                                     top.reshape(-1).astype(np.int32), (side, side)).numpy()
    crops = np.where(shown.reshape(-1)[:, None, None, None], crops, 1.0)
    return np.clip(np.round(crops * 255), 0, 255).astype(np.uint8).reshape(
        len(top), count, side, side, 3)


def layer_picture(patches, columns=COLUMNS):
    """One picture of a layer's nodes: a cell per node (its patches 2 x 2), node ids in
    row-major order, 2-pixel white gaps. uint8 [rows * (2s + 2), columns * (2s + 2), 3]."""
    k, count, s = patches.shape[:3]
    cell = np.full((k, 2 * s, 2 * s, 3), 255, np.uint8)
    for q in range(min(count, 4)):  # the four quadrants of a cell
        cell[:, (q // 2) * s:(q // 2 + 1) * s, (q % 2) * s:(q % 2 + 1) * s] = patches[:, q]
    rows = -(-k // columns)
    grid = np.full((rows * columns, 2 * s + 2, 2 * s + 2, 3), 255, np.uint8)
    grid[:k, :2 * s, :2 * s] = cell
    return grid.reshape(rows, columns, 2 * s + 2, 2 * s + 2, 3).transpose(
        0, 2, 1, 3, 4).reshape(rows * (2 * s + 2), columns * (2 * s + 2), 3)


def graph_svg(graph, presence, width=900, row=120):
    """The graph's layers as rows of dots (a node's size: how often it is present), the edges
    to its parents as lines (darker: a steadier displacement)."""
    layers = len(graph.layers)
    xs = np.zeros(graph.num_nodes)
    ys = np.zeros(graph.num_nodes)
    for l, (a, d, n) in enumerate(zip(graph.offsets, graph.filters, graph.nodes_per_filter)):
        k = d * n
        xs[a:a + k] = 20 + (np.arange(k) + 0.5) * (width - 40) / k
        ys[a:a + k] = 20 + l * row
    child, parent, _, std = graph.edges()
    strength = 1.0 / (1.0 + std / max(graph.image_size))
    lines = "".join(f"<line x1='{xs[c]:.1f}' y1='{ys[c]:.1f}' x2='{xs[p]:.1f}' y2='{ys[p]:.1f}' "
                    f"stroke-opacity='{0.05 + 0.4 * s:.2f}'/>"
                    for c, p, s in zip(child, parent, strength))
    dots = "".join(f"<circle cx='{x:.1f}' cy='{y:.1f}' r='{0.8 + 2.5 * q:.1f}'/>"
                   for x, y, q in zip(xs, ys, presence))
    labels = "".join(f"<text x='2' y='{14 + l * row}'>{name}</text>"
                     for l, name in enumerate(graph.layers))
    return (f"<svg xmlns='http://www.w3.org/2000/svg' width='{width}' "
            f"height='{40 + (layers - 1) * row}' font-size='11'><g stroke='#336'>{lines}</g>"
            f"<g fill='#c30'>{dots}</g>{labels}</svg>")


def graph_section(model, source, config):
    """``{"summary": {...}, "svg": str, "layers": [{"name", "nodes", "picture"}]}`` for
    report.html and report.json: the graph fitted on ``config.graph_images`` training images
    per class of ``source``."""
    from keras_icnn.reporting import html as report_html

    x, _ = training_images(source, config.graph_images, config.batch_size)
    graph = ExplanatoryGraph.fit(model, x, batch_size=config.batch_size, seed=config.seed,
                                 verbose=config.verbose)
    inf = graph.infer(x, batch_size=config.batch_size)
    presence = inf.present.mean(0)
    sizes = [d * n for d, n in zip(graph.filters, graph.nodes_per_filter)]
    patches = node_patches(x, inf, graph.offsets, sizes, graph.receptive_fields(), graph.image_size)
    layers = []
    for l, (a, k) in enumerate(zip(graph.offsets, sizes)):
        layers.append({"name": graph.layers[l], "nodes": int(k),
                       "filters": graph.filters[l],
                       "nodes_per_filter": graph.nodes_per_filter[l],
                       "presence": float(presence[a:a + k].mean()),
                       "picture": report_html.data_uri(layer_picture(patches[a:a + k]))})
    child, _, _, std = graph.edges()
    summary = {"images": int(len(x)), "nodes": graph.num_nodes, "edges": int(len(child)),
               "median_edge_std_px": float(np.median(std)) if len(std) else None,
               "fit_seconds": graph.info["seconds"]}
    return {"summary": summary, "svg": graph_svg(graph, presence), "layers": layers}
