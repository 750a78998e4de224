"""A deterministic synthetic dataset of "creatures" with ground-truth parts.

Every category is a body plan of the same part types (``PART_NAMES``: head,
torso, legs, tail) with its own shapes, colours, textures and proportions per
part, so the head of one category differs from the head of another. Each image
places one creature at a random position and scale (object 40-90% of the
image), with a horizontal flip, a small rotation, background clutter (textured
blobs, distractor shapes and isolated parts of *other* categories), pixel noise
and optional occlusion, and returns pixel-exact part masks and landmarks.

Example ``i`` is a pure function of ``(seed, split, i, image_size,
num_classes, negatives, occlusion)`` and the difficulty knobs: generating
examples 0..99 or 0..999 gives the same first hundred.

Difficulty: the default images are easy (every category has its own colours,
textures and shapes for all four parts: a small CNN reaches ~95-99%).
``SYNTHETIC_CONFIGS["hard"]`` (``--synthetic_config=hard``) makes them
CIFAR-like with knobs of :func:`make_examples`: ``similarity`` (sibling
categories 2k, 2k+1 share the look of some parts and most of their
proportions), ``color_jitter`` (a per-image colour cast), ``distractors`` (a
second isolated part, of the sibling category), ``variants`` (colourings per
category) and ``occlusion``.

Conventions: pixel ``(row r, col c)`` covers ``[c, c+1) x [r, r+1)`` in image
coordinates ``(x, y)``; a landmark ``(x, y)`` lies in pixel
``(int(y), int(x))``. ``bbox`` is ``(x_min, y_min, x_max, y_max)`` of the
whole (unoccluded, in-frame) creature, max exclusive, in pixels.

Example:
    >>> from keras_icnn.data import synthetic_parts
    >>> ex = synthetic_parts.make_examples(8, image_size=64, seed=0)
    >>> ex["image"].shape, ex["part_masks"].shape, ex["landmarks"].shape
    ((8, 64, 64, 3), (8, 64, 64, 4), (8, 4, 2))

Preview: ``python -m keras_icnn.data.synthetic_parts --preview out.png``.
"""

import argparse
import os
import sys

import numpy as np

PART_NAMES = ("head", "torso", "legs", "tail")
CATEGORY_NAMES = ("bird", "cat", "cow", "dog", "horse", "sheep",
                  "fox", "frog", "goat", "lion", "mole", "newt")
SPLITS = ("train", "validation", "test")
# multi: classify every category; single: one category against background images.
TASKS = ("multi", "single")
MAX_LEGS = 4
NEGATIVE_LABEL = -1
_CHUNK = 32
_N_UNIFORMS = 64  # random numbers drawn per example (0-52 default look, 53-63 difficulty knobs)

# Named difficulty settings of :func:`make_examples` (``--synthetic_config``). "hard" was
# calibrated with 10 categories (benchmarks/calibrate_synthetic.py, on the validation split,
# STD ResNet-20 only): figures in benchmarks/results/calibration_synthetic.md.
SYNTHETIC_CONFIGS = {
    "default": dict(similarity=0.0, color_jitter=0.0, distractors=1, occlusion=0.2, variants=1),
    "hard": dict(similarity=1.0, color_jitter=0.25, distractors=2, occlusion=0.4, variants=2),
}


def _split_id(split):
    if split not in SPLITS:
        raise ValueError(f"`split` must be one of {SPLITS}. Received: split={split!r}")
    return SPLITS.index(split)


# --------------------------------------------------------------------------
# Category body plans (fixed, derived from the category index only)
# --------------------------------------------------------------------------
_PALETTE = np.array([
    [220, 60, 50], [245, 170, 40], [240, 230, 90], [90, 200, 80], [50, 150, 220],
    [150, 80, 210], [235, 120, 190], [140, 90, 50], [240, 240, 240], [40, 40, 40],
    [60, 200, 200], [190, 200, 110],
], np.float32)


def synthetic_config(name):
    """The difficulty knobs of a named configuration (a copy of ``SYNTHETIC_CONFIGS[name]``)."""
    if name not in SYNTHETIC_CONFIGS:
        raise ValueError(f"`synthetic_config` must be one of {tuple(SYNTHETIC_CONFIGS)}. "
                         f"Received: {name!r}")
    return dict(SYNTHETIC_CONFIGS[name])


def sibling(c, num_classes):
    """The category sharing parts with ``c`` under ``similarity`` (``c`` XOR 1; itself when
    that is out of range)."""
    c = np.asarray(c)
    s = c ^ 1
    return np.where(s < int(num_classes), s, c)


def category_specs(num_classes, similarity=0.0, variants=1):
    """Body-plan parameters of each category, arrays indexed by category.

    Shapes are super-ellipses ``|du/a|^p + |dv/(b*taper)|^p <= 1`` (p=1
    diamond, 2 ellipse, 6 rounded box) with an optional taper (triangle-like);
    textures are stripes, checkers or dots in object coordinates.

    ``similarity`` in [0, 1] makes siblings (categories 2k and 2k+1) alike: the
    odd one copies the even one's colour, shape and texture of
    ``min(floor(4 * similarity), 3)`` parts (a fixed choice per pair; at least
    one part always differs) and its proportions move that fraction of the way
    to its sibling's. Above 0.75 the remaining part's colour moves ``4 *
    similarity - 3`` of the way to the sibling's too: at 1 the siblings differ
    only in that part's shape and texture.

    ``variants`` > 1 gives every category that many colourings ("breeds"):
    ``color_variants`` [C, V, 4, 3], variant v shifting the palette by 7v (the
    sibling sharing applies to each variant); ``color`` is variant 0.
    """
    if not 1 <= int(num_classes) <= len(CATEGORY_NAMES):
        raise ValueError(
            f"`num_classes` must lie in [1, {len(CATEGORY_NAMES)}]. "
            f"Received: num_classes={num_classes}"
        )
    c = np.arange(int(num_classes))
    rng = np.random.default_rng(20180618)  # fixed: the body plans never change
    n = len(CATEGORY_NAMES)
    jitter = rng.random((n, 16))[c]
    exps = np.array([1.0, 2.0, 6.0])
    specs = {
        # colours: every part of every category gets a different palette entry
        "color": np.stack([_PALETTE[(c * 5 + k * 3) % len(_PALETTE)] for k in range(4)], 1),
        # super-ellipse exponent and taper per part
        "exp": np.stack([exps[c % 3], exps[(c + 1) % 3], np.full(len(c), 6.0),
                         exps[(c + 2) % 3]], 1),
        "taper": np.stack([np.where(c % 4 == 3, 0.7, 0.0), np.zeros(len(c)),
                           np.zeros(len(c)), np.where(c % 2 == 0, 0.8, 0.0)], 1),
        # texture: 0 solid, 1 stripes, 2 checker, 3 dots; frequency in cycles/unit
        "texture": np.stack([(c + k) % 4 for k in range(4)], 1),
        "tex_freq": 6.0 + 8.0 * jitter[:, 0:4],
        "tex_angle": np.pi * jitter[:, 4:8],
        # proportions (object units: the creature spans about [-0.5, 0.5])
        "torso_a": 0.22 + 0.08 * jitter[:, 8],
        "torso_b": 0.11 + 0.06 * jitter[:, 9],
        "head_r": 0.10 + 0.05 * jitter[:, 10],
        "head_aspect": 0.7 + 0.6 * jitter[:, 11],
        "head_lift": 0.05 + 0.15 * jitter[:, 12],
        "n_legs": 2 + (c % 3),
        "leg_len": 0.16 + 0.12 * jitter[:, 13],
        "tail_len": 0.12 + 0.10 * jitter[:, 14],
        "tail_angle": -0.2 - 0.9 * jitter[:, 15],  # radians, tail points back and up
        "shared_parts": np.zeros((len(c), 4), bool),  # [C, 4]: copied from the sibling
    }
    variants = int(variants)
    if variants < 1 or variants > 4:
        raise ValueError(f"`variants` must lie in [1, 4]. Received: variants={variants}")
    specs["color_variants"] = np.stack(
        [np.stack([_PALETTE[(c * 5 + k * 3 + 7 * v) % len(_PALETTE)] for k in range(4)], 1)
         for v in range(variants)], 1)  # [C, V, 4, 3]
    similarity = float(similarity)
    if not 0.0 <= similarity <= 1.0:
        raise ValueError(f"`similarity` must lie in [0, 1]. Received: similarity={similarity}")
    if similarity == 0.0:
        return specs
    lead = c & ~1  # the even sibling leads; odd ones (always with a sibling) copy from it
    n_shared = min(int(np.floor(4 * similarity + 1e-9)), 3)
    order = np.stack([np.random.default_rng([20180618, int(p)]).permutation(4) for p in c // 2])
    shared = (np.argsort(order, 1) < n_shared) & (lead != c)[:, None]  # [C, 4]
    for key in ("exp", "taper", "texture", "tex_freq", "tex_angle"):
        specs[key] = np.where(shared, specs[key][lead], specs[key])
    cv = specs["color_variants"]
    cv = np.where(shared[:, None, :, None], cv[lead], cv)
    for key in ("torso_a", "torso_b", "head_r", "head_aspect", "head_lift", "leg_len",
                "tail_len", "tail_angle"):
        specs[key] = (1.0 - similarity) * specs[key] + similarity * specs[key][lead]
    t = float(np.clip(4.0 * similarity - 3.0, 0.0, 1.0))
    if t > 0:
        own = (lead != c)[:, None, None, None]
        cv = np.where(own, (1 - t) * cv + t * cv[lead], cv)
    specs["color_variants"] = cv
    specs["color"] = cv[:, 0]
    specs["n_legs"] = np.where(shared[:, 2], specs["n_legs"][lead], specs["n_legs"])
    specs["shared_parts"] = shared
    return specs


# --------------------------------------------------------------------------
# Vectorised drawing primitives over a chunk of images [n, H, W]
# --------------------------------------------------------------------------
def _power(q, p):
    """``q ** p`` for exponents in {1, 2, 6} (scalar or per image), without ``pow``."""
    if np.isscalar(p):
        return q if p == 1 else (q * q if p == 2 else (q * q) ** 3)
    q2 = q * q
    return np.where(p == 1, q, np.where(p == 2, q2, q2 * q2 * q2))


def _superellipse(du, dv, a, b, p, taper=0.0):
    """Inside test of a (tapered) super-ellipse in part coordinates (p in {1, 2, 6})."""
    a = np.float32(a) if np.isscalar(a) else a.astype(np.float32)
    b = np.float32(b) if np.isscalar(b) else b.astype(np.float32)
    qa = np.abs(du) / a
    if np.isscalar(taper) and taper == 0.0:
        qb = np.abs(dv) / b
    else:
        t = 1.0 - np.asarray(taper, np.float32) * np.clip((du / a + 1.0) * 0.5, 0.0, 1.0)
        qb = np.abs(dv) / (b * np.maximum(t, np.float32(1e-3)))
    return (_power(qa, p) + _power(qb, p)) <= 1.0


def _rotate(du, dv, angle):
    ca, sa = np.cos(angle), np.sin(angle)
    return ca * du + sa * dv, -sa * du + ca * dv


def _texture(u, v, kind, freq, angle):
    """Boolean 'bright' pattern per pixel; ``kind`` 0 solid, 1 stripes, 2 checker, 3 dots.

    Square waves from fractional parts (cheaper than sines, same patterns).
    """
    ca, sa = np.cos(angle).astype(np.float32), np.sin(angle).astype(np.float32)
    f = np.float32(freq) if np.isscalar(freq) else freq.astype(np.float32)
    p1 = f * (u * ca + v * sa)
    p2 = f * (v * ca - u * sa)
    a = (p1 - np.floor(p1)) < 0.5
    b = (p2 - np.floor(p2)) < 0.5
    return np.where(kind == 0, True, np.where(kind == 1, a, np.where(kind == 2, a == b, ~(a & b))))


class _Canvas:
    """Layers painted in order, stored as a colour index and a shade bit per pixel.

    Painting writes one byte per pixel instead of three floats; the colours are
    looked up once at the end.
    """

    def __init__(self, background, max_layers=16):
        n, h, w, _ = background.shape
        self.background = background
        self.palette = np.zeros((n, max_layers, 3), np.float32)
        self.ids = np.zeros((n, h, w), np.int8)  # 0 = background
        self.dark = np.zeros((n, h, w), bool)
        self.count = 1

    def paint(self, inside, color, shade=None):
        """Paint ``color`` ([n, 3]) where ``inside``, darker where ``shade`` is False."""
        k = self.count
        self.count += 1
        self.palette[:, k] = color
        np.copyto(self.ids, np.int8(k), where=inside)
        if shade is None:
            np.copyto(self.dark, False, where=inside)
        else:
            np.copyto(self.dark, ~shade, where=inside)

    def render(self):
        n = self.ids.shape[0]
        colours = self.palette[np.arange(n)[:, None, None], self.ids]
        colours *= np.where(self.dark, np.float32(0.55), np.float32(1.0))[..., None]
        return np.where((self.ids == 0)[..., None], self.background, colours)


class _Creatures:
    """Renders creatures of given categories in object coordinates (u, v)."""

    def __init__(self, specs):
        self.s = specs

    def geometry(self, cat, size_jit):
        """Per-image part geometry (arrays [n]) and part centres (u, v) [n, 4, 2]."""
        s = self.s
        j = 1.0 + 0.1 * (size_jit - 0.5)
        geo = {"ta": s["torso_a"][cat] * j, "tb": s["torso_b"][cat] * j,
               "hr": s["head_r"][cat] * j, "leg_len": s["leg_len"][cat] * j,
               "tail_len": s["tail_len"][cat] * j, "tail_angle": s["tail_angle"][cat],
               "n_legs": s["n_legs"][cat]}
        geo["hu"] = geo["ta"] + 0.7 * geo["hr"]
        geo["hv"] = -s["head_lift"][cat] - 0.3 * geo["tb"]
        frac = np.arange(MAX_LEGS)[None, :] / np.maximum(geo["n_legs"] - 1, 1)[:, None]
        geo["leg_u"] = geo["ta"][:, None] * (0.65 - 1.3 * frac)  # [n, MAX_LEGS]
        geo["leg_v"] = 0.6 * geo["tb"] + geo["leg_len"] / 2.0
        geo["tu"] = -geo["ta"] - 0.8 * geo["tail_len"] * np.cos(geo["tail_angle"])
        geo["tv"] = 0.8 * geo["tail_len"] * np.sin(geo["tail_angle"])
        centres = np.stack([
            np.stack([geo["hu"], geo["hv"]], -1),
            np.zeros((len(cat), 2)),
            np.stack([geo["leg_u"][:, 0], geo["leg_v"]], -1),
            np.stack([geo["tu"], geo["tv"]], -1),
        ], 1)
        geo = {k: np.asarray(val, np.float32) if k != "n_legs" else val for k, val in geo.items()}
        return geo, centres

    def parts(self, u, v, cat, size_jit, subset=(0, 1, 2, 3)):
        """Inside masks [n, H, W] of head, torso, legs, tail (None outside ``subset``)."""
        s = self.s
        geo, centres = self.geometry(cat, size_jit)
        e = lambda key: geo[key][:, None, None]  # noqa: E731
        exp = s["exp"][cat][:, None, None, :]
        taper = s["taper"][cat][:, None, None, :]
        out = [None] * 4
        if 1 in subset:
            out[1] = _superellipse(u, v, e("ta"), e("tb"), exp[..., 1])
        if 0 in subset:
            out[0] = _superellipse(u - e("hu"), v - e("hv"), e("hr"),
                             e("hr") * s["head_aspect"][cat][:, None, None],
                             exp[..., 0], taper[..., 0])
        if 2 in subset:
            out[2] = self._legs(u, v, e)
        if 3 in subset:
            du, dv = _rotate(u - e("tu"), v - e("tv"), -e("tail_angle"))
            out[3] = _superellipse(-du, dv, e("tail_len"), 0.05, exp[..., 3], taper[..., 3])
        return out, centres

    @staticmethod
    def _legs(u, v, e):
        # All legs as one shape: each pixel is tested against its nearest leg slot.
        n_legs = e("n_legs").astype(np.float32)
        slot = np.clip(np.rint((0.65 - u / e("ta")) / 1.3 * (n_legs - 1)), 0, n_legs - 1)
        leg_u = e("ta") * (0.65 - 1.3 * slot / np.maximum(n_legs - 1, 1))
        return _superellipse(u - leg_u, v - e("leg_v"), 0.035, e("leg_len") / 2.0, 6)

    def shades(self, u, v, cat, subset=(0, 1, 2, 3)):
        s = self.s
        return [_texture(u, v, s["texture"][cat, k][:, None, None],
                         s["tex_freq"][cat, k][:, None, None],
                         s["tex_angle"][cat, k][:, None, None]) if k in subset else None
                for k in range(4)]


def _paint_isolated_part(canvas, creatures, specs, other, u, size, X, Y, tint, variant=0):
    """Paint the head or tail of category ``other`` [n] alone (no body), from uniforms
    ``u`` [n, 6]: scale, x, y, size jitter, head-or-tail, shown."""
    n = len(other)
    dscale = ((0.3 + 0.3 * u[:, 0]) * size)[:, None, None]
    dx, dy = u[:, 1][:, None, None] * size, u[:, 2][:, None, None] * size
    du, dv = (X - dx) / dscale, (Y - dy) / dscale
    _, dcent = creatures.geometry(other, u[:, 3])
    which = (u[:, 4] < 0.5)[:, None, None]
    # Centre the chosen part on (dx, dy).
    pick = np.where(which[:, 0, 0], 0, 3)
    cu = dcent[np.arange(n), pick, 0][:, None, None]
    cv = dcent[np.arange(n), pick, 1][:, None, None]
    dparts, _ = creatures.parts(du + cu, dv + cv, other, u[:, 3], subset=(0, 3))
    dshades = creatures.shades(du + cu, dv + cv, other, subset=(0, 3))
    show = (u[:, 5] < 0.7)[:, None, None]
    for k in (0, 3):
        sel = show & np.where(which, k == 0, k == 3)
        canvas.paint(dparts[k] & sel, tint(specs["color_variants"][other, variant, k]),
                     dshades[k])


def _render_chunk(r, noise, image_size, num_classes, specs, labels, occlusion,
                  color_jitter=0.0, distractors=1):
    # Negative examples carry label -1: no creature is drawn for them.
    """Render one chunk from per-example uniforms ``r`` [n, _N_UNIFORMS] and noise [n, H, W, 3]."""
    n = r.shape[0]
    size = float(image_size)
    r = r.astype(np.float32)
    grid = np.arange(image_size, dtype=np.float32) + np.float32(0.5)
    ys, xs = np.meshgrid(grid, grid, indexing="ij")
    X, Y = xs[None], ys[None]
    col = lambda k: r[:, k][:, None, None]  # noqa: E731
    creatures = _Creatures(specs)
    if color_jitter > 0:
        # A colour cast per image (gain per channel) on the creature and the isolated parts.
        gain = 1.0 + np.float32(color_jitter) * (2.0 * r[:, 53:56] - 1.0)
        tint = lambda colour: np.clip(colour * gain, 0.0, 255.0)  # noqa: E731
    else:
        tint = lambda colour: colour  # noqa: E731

    # Background: a muted colour with a linear gradient.
    base = 70 + 110 * r[:, 0:3]
    grad = (col(3) - 0.5) * (X / size - 0.5) + (col(4) - 0.5) * (Y / size - 0.5)
    canvas = _Canvas((base[:, None, None, :] * (1.0 + 0.6 * grad)[..., None]).astype(np.float32))

    # Clutter: textured blobs and distractor shapes of random colours.
    for k in range(5):
        o = 5 + 6 * k
        cx, cy = col(o) * size, col(o + 1) * size
        a = (0.05 + 0.12 * col(o + 2)) * size
        b = a * (0.4 + 0.8 * col(o + 3))
        p = np.array([1.0, 2.0, 6.0])[(r[:, o + 4] * 3).astype(int)][:, None, None]
        du, dv = _rotate(X - cx, Y - cy, col(o + 5) * np.pi)
        inside = _superellipse(du, dv, a, b, p)
        colour = 40 + 200 * np.stack([r[:, (o + 2) % 64], r[:, (o + 9) % 64], r[:, (o + 13) % 64]], -1)
        stripes = _texture(du / size, dv / size, (r[:, o] * 4).astype(int)[:, None, None],
                           10.0, r[:, o + 1][:, None, None] * np.pi)
        canvas.paint(inside, colour, stripes)

    # An isolated part (head or tail) of another category.
    other = (labels + 1 + (r[:, 35] * max(num_classes - 1, 1)).astype(int)) % num_classes
    other = np.where(labels < 0, (r[:, 35] * num_classes).astype(int), other)
    n_variants = specs["color_variants"].shape[1]
    variant = np.minimum((r[:, 62] * n_variants).astype(int), n_variants - 1)  # the creature's
    dvariant = np.minimum((r[:, 63] * n_variants).astype(int), n_variants - 1)  # isolated parts'
    _paint_isolated_part(canvas, creatures, specs, other, r[:, 36:42], size, X, Y, tint,
                         dvariant)
    if distractors >= 2:
        # A second one, of the sibling category (the one most like the creature).
        twin = sibling(np.maximum(labels, 0), num_classes)
        twin = np.where((twin == labels) | (labels < 0), other, twin)
        _paint_isolated_part(canvas, creatures, specs, twin, r[:, 56:62], size, X, Y, tint,
                             dvariant)

    # The creature.
    scale = (0.4 + 0.5 * r[:, 42]) * size  # object extent in pixels
    angle = (r[:, 43] - 0.5) * np.deg2rad(30.0)
    flip = np.where(r[:, 44] < 0.5, -1.0, 1.0)
    margin = 0.35 * scale
    cx = margin + r[:, 45] * np.maximum(size - 2 * margin, 0.0)
    cy = margin + r[:, 46] * np.maximum(size - 2 * margin, 0.0)
    du, dv = _rotate(X - cx[:, None, None], Y - cy[:, None, None], angle[:, None, None])
    u = flip[:, None, None] * du / scale[:, None, None]
    v = dv / scale[:, None, None]
    cat = np.maximum(labels, 0)
    parts, centres = creatures.parts(u, v, cat, r[:, 47])
    shades = creatures.shades(u, v, cat)
    present = (labels >= 0)[:, None, None]
    owner = np.full((n, image_size, image_size), -1, np.int8)
    for k in (3, 2, 1, 0):  # drawing order: tail, legs, torso, head on top
        inside = parts[k] & present
        owner[inside] = k
        canvas.paint(inside, tint(specs["color_variants"][cat, variant, k]), shades[k])
    object_mask = owner >= 0

    # Occlusion: a grey box over part of the creature.
    occ = (r[:, 48] < occlusion) & (labels >= 0)
    ox = cx + (r[:, 49] - 0.5) * scale
    oy = cy + (r[:, 50] - 0.5) * scale
    ow = (0.12 + 0.15 * r[:, 51]) * scale
    occluder = (occ[:, None, None] & (np.abs(X - ox[:, None, None]) <= ow[:, None, None])
                & (np.abs(Y - oy[:, None, None]) <= ow[:, None, None]))
    canvas.paint(occluder, np.full((n, 3), 128.0) * (0.8 + 0.4 * r[:, 52:53]))
    visible_owner = np.where(occluder, -1, owner)
    part_masks = np.stack([visible_owner == k for k in range(4)], -1)

    # Landmarks: part centres in image coordinates, NaN where hidden / out of frame.
    lu = flip[:, None] * centres[..., 0] * scale[:, None]
    lv = centres[..., 1] * scale[:, None]
    ca, sa = np.cos(angle)[:, None], np.sin(angle)[:, None]
    lx = cx[:, None] + ca * lu - sa * lv
    ly = cy[:, None] + sa * lu + ca * lv
    landmarks = np.stack([lx, ly], -1)
    inframe = (lx >= 0) & (lx < size) & (ly >= 0) & (ly < size)
    ri = np.clip(ly.astype(int), 0, image_size - 1)
    ci = np.clip(lx.astype(int), 0, image_size - 1)
    hit = part_masks[np.arange(n)[:, None], ri, ci, np.arange(4)[None, :]]
    landmarks[~(inframe & hit)] = np.nan

    # Noise.
    image = canvas.render() + noise
    image = np.clip(image, 0, 255).astype(np.uint8)

    bbox = np.zeros((n, 4), np.float32)
    rows = object_mask.any(2)
    cols = object_mask.any(1)
    has = rows.any(1)
    bbox[has, 0] = cols[has].argmax(1)
    bbox[has, 1] = rows[has].argmax(1)
    bbox[has, 2] = image_size - cols[has][:, ::-1].argmax(1)
    bbox[has, 3] = image_size - rows[has][:, ::-1].argmax(1)
    return {
        "image": image,
        "label": labels.astype(np.int64),
        "bbox": bbox,
        "part_masks": part_masks,
        "landmarks": landmarks.astype(np.float32),
        "object_mask": object_mask,
    }


def _check_args(n, image_size, num_classes, seed, occlusion, similarity=0.0, color_jitter=0.0,
                distractors=1, variants=1):
    from keras_icnn import validation

    validation.non_negative_int(n, "n")  # 2.5 images: a TypeError, not 2 images
    validation.non_negative_int(seed, "seed")
    if validation.positive_int(image_size, "image_size") < 16:
        raise ValueError(f"`image_size` must be >= 16 pixels. Received: image_size={image_size}")
    if int(seed) < 0:
        raise ValueError(f"`seed` must be a non-negative integer. Received: seed={seed}")
    if not 0.0 <= float(occlusion) <= 1.0:
        raise ValueError(f"`occlusion` must lie in [0, 1]. Received: occlusion={occlusion}")
    if not 0.0 <= float(color_jitter) <= 1.0:
        raise ValueError(f"`color_jitter` must lie in [0, 1]. Received: color_jitter={color_jitter}")
    if int(distractors) not in (1, 2) or float(distractors) != int(distractors):
        raise ValueError(f"`distractors` must be 1 or 2. Received: distractors={distractors}")
    return category_specs(num_classes, similarity, variants)


def category_index(name_or_index, num_classes=6):
    """Category index from a name in ``CATEGORY_NAMES`` or an int."""
    names = CATEGORY_NAMES[:num_classes]
    if isinstance(name_or_index, str) and not name_or_index.isdigit():
        if name_or_index not in names:
            raise ValueError(f"Unknown category {name_or_index!r}; expected one of {names}")
        return names.index(name_or_index)
    idx = int(name_or_index)
    if not 0 <= idx < num_classes:
        raise ValueError(f"Category index must lie in [0, {num_classes}). Received: {idx}")
    return idx


def make_examples(n, image_size=64, num_classes=6, seed=0, split="train", negatives=False,
                  occlusion=0.2, start=0, category=None, similarity=0.0, color_jitter=0.0,
                  distractors=1, variants=1):
    """Generate ``n`` annotated creature images (examples ``start .. start+n-1``).

    Args:
        n: number of examples.
        image_size: side of the square images in pixels (default 64).
        num_classes: number of creature categories (1-12, default 6).
        seed: dataset seed.
        split: ``"train"``, ``"validation"`` or ``"test"`` (disjoint streams).
        negatives: background-and-clutter images without a creature (label -1,
            empty masks, NaN landmarks, zero bbox) for single-category training.
        occlusion: probability that a grey box occludes part of the creature.
        start: index of the first example (example ``i`` is the same whatever
            ``start`` and ``n`` are).
        category: draw every creature from this category (index or name)
            instead of the balanced cycle over categories.
        similarity: how alike sibling categories are, in [0, 1] (see
            :func:`category_specs`; 0: every category its own look).
        color_jitter: amplitude of a per-image colour cast of the creature and
            the isolated parts (per-channel gain in ``1 ± color_jitter``).
        distractors: isolated parts of other categories in the clutter: 1 (a
            head or tail of a random other category, 70% of the images) or 2
            (also one of the sibling category).
        variants: colourings per category (1-4; see :func:`category_specs`),
            one drawn per image: the colour says less about the category.
            ``SYNTHETIC_CONFIGS`` names settings of these knobs.

    Returns:
        dict of numpy arrays: ``image`` uint8 [n,H,W,3], ``label`` int64 [n],
        ``bbox`` float32 [n,4] (x_min, y_min, x_max, y_max), ``part_masks``
        bool [n,H,W,4], ``landmarks`` float32 [n,4,2] (x, y) with NaN where a
        part is hidden or out of frame, ``object_mask`` bool [n,H,W].
        Labels cycle through a fresh permutation of the categories every
        ``num_classes`` examples, so classes are balanced.
    """
    specs = _check_args(n, image_size, num_classes, seed, occlusion, similarity, color_jitter,
                        distractors, variants)
    look = dict(color_jitter=float(color_jitter), distractors=int(distractors))
    split_id = _split_id(split)
    n, image_size, num_classes = int(n), int(image_size), int(num_classes)
    fixed = None if category is None else category_index(category, num_classes)
    key = [int(seed), split_id, int(bool(negatives)), image_size, num_classes]
    uniforms = np.empty((n, _N_UNIFORMS))
    noise = np.empty((n, image_size, image_size, 3), np.float32)
    labels = np.empty((n,), np.int64)
    perms = {}
    for row, i in enumerate(range(int(start), int(start) + n)):
        rng = np.random.default_rng(key + [i])
        uniforms[row] = rng.random(_N_UNIFORMS)
        noise[row] = rng.standard_normal((image_size, image_size, 3), np.float32)
        if negatives:
            labels[row] = NEGATIVE_LABEL
        elif fixed is not None:
            labels[row] = fixed
        else:
            block = i // num_classes
            if block not in perms:
                perms[block] = np.random.default_rng(key + [2**31, block]).permutation(num_classes)
            labels[row] = perms[block][i % num_classes]
    noise *= 6.0
    chunks = [
        _render_chunk(uniforms[a:a + _CHUNK], noise[a:a + _CHUNK], image_size, num_classes,
                      specs, labels[a:a + _CHUNK], float(occlusion), **look)
        for a in range(0, n, _CHUNK)
    ]
    if not chunks:
        return _render_chunk(uniforms, noise, image_size, num_classes, specs, labels,
                             float(occlusion), **look)
    return {k: np.concatenate([c[k] for c in chunks]) for k in chunks[0]}


def make_single_category_examples(category, n, image_size=64, num_classes=6, seed=0,
                                  split="train", occlusion=0.2, start=0, **look):
    """Positives of one category interleaved with negatives: label 1 / 0.

    Even examples are creatures of ``category``, odd ones are background and
    clutter (which includes isolated parts of other categories). ``look``: the
    difficulty knobs of :func:`make_examples`.
    """
    c = category_index(category, num_classes)
    lo, hi = int(start), int(start) + int(n)
    pos_idx = np.arange(lo, hi)[np.arange(lo, hi) % 2 == 0] // 2
    neg_idx = np.arange(lo, hi)[np.arange(lo, hi) % 2 == 1] // 2
    common = dict(image_size=image_size, num_classes=num_classes, seed=seed, split=split,
                  occlusion=occlusion, **look)
    pos = make_examples(len(pos_idx), start=pos_idx[0] if len(pos_idx) else 0,
                        category=c, **common)
    neg = make_examples(len(neg_idx), start=neg_idx[0] if len(neg_idx) else 0,
                        negatives=True, **common)
    pos["label"] = np.ones_like(pos["label"])
    neg["label"] = np.zeros_like(neg["label"])
    order = np.argsort(np.concatenate([pos_idx * 2, neg_idx * 2 + 1]), kind="stable")
    return {k: np.concatenate([pos[k], neg[k]])[order] for k in pos}


# --------------------------------------------------------------------------
# Preview
# --------------------------------------------------------------------------
PART_COLORS = np.array([[1.0, 0.1, 0.1], [0.1, 0.5, 1.0], [0.1, 0.9, 0.2], [1.0, 0.8, 0.0]])


def save_preview(path, examples, columns=8, title=None):
    """Write a grid: each example twice, as rendered and with part masks + landmarks (the
    directory of ``path`` is created; no matplotlib backend is selected: a plain
    ``matplotlib.figure.Figure`` needs none)."""
    try:
        from matplotlib.figure import Figure
        from matplotlib.lines import Line2D
        from matplotlib.patches import Rectangle
    except ImportError as err:  # pragma: no cover - depends on the extra
        raise ImportError("The preview needs matplotlib: pip install 'keras_icnn[viz]'") from err
    n = len(examples["image"])
    rows = int(np.ceil(n / columns))
    fig = Figure(figsize=(1.6 * columns, 3.3 * rows))
    axes = fig.subplots(2 * rows, columns, squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for i in range(n):
        r, c = divmod(i, columns)
        img = examples["image"][i]
        axes[2 * r, c].imshow(img)
        label = int(examples["label"][i])
        axes[2 * r, c].set_title("negative" if label < 0 else CATEGORY_NAMES[label], fontsize=8)
        overlay = img / 255.0 * 0.45
        masks = examples["part_masks"][i]
        for k in range(masks.shape[-1]):
            overlay = np.where(masks[..., k:k + 1], 0.45 * overlay + 0.55 * PART_COLORS[k], overlay)
        ax = axes[2 * r + 1, c]
        ax.imshow(overlay)
        for k, (x, y) in enumerate(examples["landmarks"][i]):
            if np.isfinite(x):
                ax.plot(x - 0.5, y - 0.5, marker="o", markersize=4, markeredgecolor="white",
                        color=PART_COLORS[k], linestyle="none")
        b = examples["bbox"][i]
        if b[2] > b[0]:
            ax.add_patch(Rectangle((b[0] - 0.5, b[1] - 0.5), b[2] - b[0], b[3] - b[1],
                                       fill=False, edgecolor="white", linewidth=0.8))
    handles = [Line2D([], [], marker="s", color=PART_COLORS[k], linestyle="none",
                          label=name) for k, name in enumerate(PART_NAMES)]
    fig.legend(handles=handles, loc="lower center", ncol=4, fontsize=8)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout(rect=(0, 0.03, 1, 0.97))
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path, dpi=110)
    return path


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="python -m keras_icnn.data.synthetic_parts",
        description="Preview the synthetic part dataset: a grid of creatures, each shown as "
                    "rendered and with its part masks (head red, torso blue, legs green, "
                    "tail yellow), landmarks (dots) and box.")
    parser.add_argument("--preview", required=True, metavar="OUT.png", help="PNG file to write")
    parser.add_argument("--n", type=int, default=16, help="number of examples (default 16)")
    parser.add_argument("--image_size", type=int, default=64)
    parser.add_argument("--num_classes", type=int, default=6)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--split", default="train", choices=SPLITS)
    parser.add_argument("--negatives", action="store_true", help="show negative images")
    parser.add_argument("--synthetic_config", default="default", choices=tuple(SYNTHETIC_CONFIGS),
                        help="difficulty (hard: CIFAR-like, calibrated with --num_classes=10)")
    args = parser.parse_args(argv)
    ex = make_examples(args.n, image_size=args.image_size, num_classes=args.num_classes,
                       seed=args.seed, split=args.split, negatives=args.negatives,
                       **synthetic_config(args.synthetic_config))
    save_preview(args.preview, ex, title=f"synthetic_parts {args.image_size}px, seed {args.seed}, "
                                         f"{args.synthetic_config}")
    print(f"wrote {args.preview}")


if __name__ == "__main__":
    sys.exit(main())
