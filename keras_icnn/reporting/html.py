"""``report.html``: one self-contained page (images inline) with the metrics table and a
filter atlas per model, written by :func:`keras_icnn.report.evaluate_models`.

The atlas shows, for each filter of the evaluated layer, its category, its part
association and score, and the test images that activate it most with its map
over them and its peak marked; the page sorts and filters the filters by
category and interpretability (plain JavaScript, no network access). Thumbnails
are drawn with numpy and encoded by TensorFlow (JPEG), so the page needs no
plotting library; the matrices (gate, MI, part association) are drawn with
matplotlib when the ``viz`` extra is installed.
"""

import base64
import html
import json

import numpy as np
import tensorflow as tf

from keras_icnn.reporting import tables

THUMB = 80  # thumbnail side in pixels

# Matplotlib's jet, as piecewise-linear ramps (r, g, b) over [0, 1].
_JET = {"r": ([0, 0.35, 0.66, 0.89, 1], [0, 0, 1, 1, 0.5]),
        "g": ([0, 0.125, 0.375, 0.64, 0.91, 1], [0, 0, 1, 1, 0, 0]),
        "b": ([0, 0.11, 0.34, 0.65, 1], [0.5, 1, 1, 0, 0])}


def jet(values):
    """Jet colours [..., 3] in [0, 1] of ``values`` in [0, 1]."""
    v = np.clip(np.asarray(values, np.float32), 0, 1)
    return np.stack([np.interp(v, *_JET[c]) for c in "rgb"], axis=-1)


def data_uri(pixels, fmt="jpeg"):
    """``data:`` URI of an RGB image [H, W, 3] (uint8, or float in [0, 1])."""
    pixels = np.asarray(pixels)
    if pixels.dtype != np.uint8:
        pixels = np.clip(np.round(pixels * 255.0), 0, 255).astype(np.uint8)
    if fmt == "png":
        encoded = tf.io.encode_png(pixels).numpy()
    else:
        encoded = tf.io.encode_jpeg(pixels, quality=85).numpy()
    return f"data:image/{fmt};base64,{base64.b64encode(encoded).decode('ascii')}"


def png_uri(png_bytes):
    return f"data:image/png;base64,{base64.b64encode(png_bytes).decode('ascii')}"


def thumbnails(images, maps, locations, scale=None, size=THUMB, image_size=None):
    """Images [n, H, W, 3] with one filter's maps [n, h, w] over them (jet, half transparent,
    scaled by ``scale`` or the maps' maximum) and its peaks ``locations`` [n, 2] (x, y image
    pixels) marked by a white ring: uint8 [n, size, size, 3]. ``image_size`` (H, W): the size
    the locations refer to, when ``images`` are already reduced (default: theirs)."""
    images = np.asarray(images, np.float32)
    images = images / 255.0 if images.max() > 1.0 else images
    height, width = image_size or images.shape[1:3]
    small = tf.image.resize(images[..., :3], (size, size), method="area").numpy()
    heat = tf.image.resize(np.asarray(maps, np.float32)[..., None], (size, size),
                           method="bilinear").numpy()[..., 0]
    scale = float(scale) if scale else max(float(heat.max()), 1e-12)
    out = 0.5 * small + 0.5 * jet(heat / max(scale, 1e-12))
    yy, xx = np.mgrid[0:size, 0:size] + 0.5
    for k, (x, y) in enumerate(np.asarray(locations, np.float32)):
        cx, cy = x * size / width, y * size / height
        dist = np.hypot(xx - cx, yy - cy)
        ring = np.abs(dist - size * 0.06) < 1.0
        out[k][ring] = 1.0
    return np.clip(np.round(out * 255.0), 0, 255).astype(np.uint8)


def strip(thumbs):
    """Thumbnails [n, s, s, 3] side by side with a 2-pixel gap: [s, n * (s + 2) - 2, 3]."""
    n, s = thumbs.shape[:2]
    out = np.full((s, n * (s + 2) - 2, 3), 255, np.uint8)
    for k in range(n):
        out[:, k * (s + 2):k * (s + 2) + s] = thumbs[k]
    return out


_STYLE = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px;color:#222;max-width:1400px}
h1{font-size:1.5em}h2{margin-top:2em;border-bottom:1px solid #ccc}h3{font-size:1.05em}
table.metrics{border-collapse:collapse;font-size:.9em}
table.metrics td,table.metrics th{border:1px solid #ccc;padding:4px 8px;text-align:right}
table.metrics td:first-child,table.metrics th:first-child{text-align:left}
.controls{margin:8px 0 12px;font-size:.9em}.controls label{margin-right:16px}
.filters{display:flex;flex-direction:column;gap:6px}
.filter{display:flex;align-items:center;gap:12px;border:1px solid #e4e4e4;border-radius:6px;padding:6px}
.filter .meta{width:230px;font-size:.85em;line-height:1.4}.filter .meta b{font-size:1.05em}
.filter img{height:80px}.hidden{display:none}
.filter img.ascent{outline:2px solid #444;outline-offset:1px}
.matrices img{max-width:100%;border:1px solid #eee;margin:4px 0}
.prediction{display:flex;gap:12px;align-items:flex-start;margin:8px 0;font-size:.9em}
.prediction img{height:120px}.note{color:#666;font-size:.85em}
.tree,.parse{font-size:.9em;margin:6px 0}.mode-images img{height:48px;margin:2px}
"""

_SCRIPT = """
function update(section){
  var cat = section.querySelector('select.category').value;
  var key = section.querySelector('select.sort').value;
  var box = section.querySelector('.filters');
  var cards = Array.prototype.slice.call(box.children);
  cards.sort(function(a, b){
    var x = parseFloat(a.dataset[key]), y = parseFloat(b.dataset[key]);
    return key === 'index' ? x - y : y - x;
  });
  cards.forEach(function(card){
    card.classList.toggle('hidden', cat !== 'all' && card.dataset.category !== cat);
    box.appendChild(card);
  });
}
document.querySelectorAll('section.atlas').forEach(function(section){
  section.querySelectorAll('select').forEach(function(select){
    select.addEventListener('change', function(){ update(section); });
  });
  update(section);
});
document.body.dataset.ready = 'yes';
"""


def _esc(value):
    return html.escape(str(value))


def _metrics_table(rows, columns):
    present = tables.metric_columns(rows, columns)
    head = "".join(f"<th>{_esc(h)}</th>" for _, h in present)
    body = []
    for name, r in rows.items():
        cells = "".join(f"<td>{tables.format_value(r.get(k))}</td>" for k, _ in present)
        body.append(f"<tr><td>{_esc(name)}</td>{cells}</tr>")
    return (f"<table class='metrics'><tr><th>model</th>{head}</tr>{''.join(body)}</table>")


def _atlas(section):
    cards = []
    categories = sorted({c["category"] for c in section["filters"]})
    for c in section["filters"]:
        data = {"index": c["index"], "interp": c["interpretability"], "mi": c["mi"]}
        attrs = " ".join(f"data-{k}='{v:.6g}'" for k, v in data.items())
        lines = [f"<b>filter {c['index']}</b>", f"category: {_esc(c['category'])}"]
        if c.get("part") is not None:
            lines.append(f"part: {_esc(c['part'])} (P = {c['interpretability']:.2f})")
        lines.append(f"MI with its class: {c['mi']:.3f}")
        if c.get("relevance") is not None:
            lines.append(f"gate G[category]: {c['relevance']:.2f}")
        if c.get("concept") is not None:
            lines.append(f"<span class='concept'>NetDissect: {_esc(c['concept'])}, IoU "
                         f"{c['concept_iou']:.3f} (ceiling {c['concept_ceiling']:.2f})"
                         f"{', detector' if c['detector'] else ''}</span>")
        ascent = (f"<img class='ascent' alt='gradient-ascent picture of filter {c['index']}' "
                  f"title='what excites filter {c['index']} most (gradient ascent)' "
                  f"src='{c['ascent']}'>" if c.get("ascent") else "")
        cards.append(f"<div class='filter' data-category='{_esc(c['category'])}' {attrs}>"
                     f"<div class='meta'>{'<br>'.join(lines)}</div>{ascent}"
                     f"<img alt='top images of filter {c['index']}' src='{c['strip']}'></div>")
    options = "".join(f"<option value='{_esc(c)}'>{_esc(c)}</option>" for c in categories)
    sort = ("<option value='interp'>part interpretability</option>" if section["has_parts"]
            else "") + "<option value='mi'>MI with its class</option>" \
        "<option value='index'>filter index</option>"
    d = section.get("dissection")
    dissected = (f"<p class='dissection'>Network Dissection: <b>{d['unique_detectors']} unique "
                 f"detectors</b> of {d['concepts']} (category, part) concepts; "
                 f"{d['detectors']} of {section['num_filters']} filters are detectors (best IoU "
                 f"&gt; 0.04), mean best IoU {d['mean_best_iou']:.3f}.</p>" if d else "")
    ascent = (f" First, in a frame: the picture that excites the filter most (gradient ascent, "
              f"{section['ascent_steps']} steps, stretched per filter)."
              if section.get("ascent_steps") else "")
    return (f"<section class='atlas' id='atlas-{_esc(section['slug'])}'>"
            f"<h3>Filter atlas: {len(section['filters'])} of {section['num_filters']} filters of "
            f"<code>{_esc(section['layer'])}</code></h3>{dissected}"
            f"<p class='note'>Each row: a filter and the {section['images_per_filter']} test "
            "images that activate it most, its map over each (jet, scaled per filter) and its "
            f"peak ringed.{ascent}</p><div class='controls'><label>category <select class='category'>"
            f"<option value='all'>all</option>{options}</select></label>"
            f"<label>sort by <select class='sort'>{sort}</select></label></div>"
            f"<div class='filters'>{''.join(cards)}</div></section>")


def _predictions(section):
    items = []
    for p in section["predictions"]:
        lines = "".join(f"<li>{_esc(line)}</li>" for line in p["lines"])
        items.append(f"<div class='prediction'><img alt='test image' src='{p['image']}'>"
                     f"<div><b>{_esc(p['title'])}</b><ul>{lines}</ul></div></div>")
    return "<h3>Predictions explained</h3>" + "".join(items) if items else ""


def _trees(section):
    """Per class: the tree's top decision modes (parts, shares, example images); per explained
    prediction: its parse path through its class's tree."""
    t = section.get("trees")
    if not t:
        return ""
    blocks = []
    for c in t["classes"]:
        modes = []
        for m in c["top_modes"]:
            pictures = "".join(f"<img alt='training image of mode {m['node']}' src='{u}'>"
                               for u in m["examples"])
            modes.append(f"<li><b>mode {m['node']}</b>: {m['images']} training images, "
                         f"{m['filters']} filters &mdash; {_esc(m['parts'])}"
                         f"<div class='mode-images'>{pictures}</div></li>")
        blocks.append(f"<div class='tree'><b>{_esc(c['class'])}</b>: {c['modes']} decision "
                      f"modes under the root ({c['images']} training images, depth "
                      f"{c['depth']}); the largest:<ul>{''.join(modes)}</ul></div>")
    paths = []
    for p in t["paths"]:
        steps = "".join(f"<li>{_esc(s)}</li>" for s in p["steps"])
        paths.append(f"<div class='parse'><b>parse path in the {_esc(p['class'])} tree</b> "
                     f"(logit {p['logit']:.2f}):<ol>{steps}</ol></div>")
    return ("<section class='trees'><h3>Decision modes (decision trees, SPEC §9)</h3>"
            "<p class='note'>Which filters, and so which parts, each class's predictions use, "
            "coarse to fine: a tree per class fitted on its training images; a mode's "
            "percentages are each part's share of the score the mode estimates.</p>" + "".join(blocks)
            + ("<h4>Explained predictions' parse paths</h4>" + "".join(paths) if paths else "")
            + "</section>")


def _graph(section):
    """The explanatory graph: its layers drawn, then a picture per layer with a cell per node
    (its top-activating patches)."""
    g = section.get("graph")
    if not g:
        return ""
    s = g["summary"]
    pictures = "".join(
        f"<figure><img alt='nodes of {_esc(l['name'])}' src='{l['picture']}'>"
        f"<figcaption class='note'>{_esc(l['name'])}: {l['filters']} filters x "
        f"{l['nodes_per_filter']} nodes, a node on {100 * l['presence']:.0f}% of the images "
        "on average; a cell per node (node ids in reading order), its 4 top-activating "
        "patches</figcaption></figure>" for l in g["layers"])
    return ("<section class='graph'><h3>Explanatory graph (SPEC §10)</h3>"
            f"<p class='note'>{s['nodes']} nodes (part patterns) and {s['edges']} edges, fitted "
            f"on {s['images']} training images in {s['fit_seconds']:.1f} s without part "
            "annotations: each filter split into nodes, each node linked to the nodes above "
            "that predict where it fires (dot size: how often a node is present; darker "
            f"line: a steadier displacement).</p>{g['svg']}{pictures}</section>")


def write(path, title, rows, columns, sections, notes=()):
    """Write the page: ``rows`` {model: metrics}, ``columns`` (key, header, better) as in
    :data:`keras_icnn.report.COLUMNS`, ``sections`` one dict per model (see
    ``keras_icnn.report.atlas_section``). Returns the path."""
    parts = [f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
             f"<title>{_esc(title)}</title><style>{_STYLE}</style></head><body>",
             f"<h1>{_esc(title)}</h1>", _metrics_table(rows, columns)]
    parts += [f"<p class='note'>{_esc(n)}</p>" for n in notes]
    for s in sections:
        parts.append(f"<h2 id='model-{_esc(s['slug'])}'>{_esc(s['name'])}</h2>")
        if s.get("matrices"):
            parts.append("<div class='matrices'>" + "".join(
                f"<figure><img alt='{_esc(k)}' src='{v}'><figcaption class='note'>{_esc(k)}"
                "</figcaption></figure>" for k, v in s["matrices"].items()) + "</div>")
        parts.append(_predictions(s))
        parts.append(_trees(s))
        parts.append(_graph(s))
        parts.append(_atlas(s))
    parts.append(f"<script>{_SCRIPT}</script></body></html>")
    with open(path, "w", encoding="utf-8") as f:
        f.write("\n".join(parts))
    return path


def summary_json(sections):
    """The atlas without its pictures (for report.json)."""
    return json.loads(json.dumps([
        {k: v for k, v in s.items() if k not in ("matrices", "predictions", "trees", "graph")}
        | ({"graph": {"summary": s["graph"]["summary"],
                      "layers": [{k: v for k, v in l.items() if k != "picture"}
                                 for l in s["graph"]["layers"]]}} if s.get("graph") else {})
        | ({"trees": {"classes": [{k: v for k, v in c.items() if k != "top_modes"}
                                  | {"top_modes": [{k: v for k, v in m.items()
                                                    if k != "examples"}
                                                   for m in c["top_modes"]]}
                                  for c in s["trees"]["classes"]],
                      "paths": s["trees"]["paths"]}} if s.get("trees") else {})
        | {"filters": [{k: v for k, v in c.items() if k not in ("strip", "ascent")}
                       for c in s["filters"]]}
        for s in sections]))
