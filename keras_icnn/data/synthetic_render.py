"""Drawing the synthetic part data: shapes (superellipses), textures, the creatures' parts
and one chunk of images with their part masks and landmarks, vectorised over the chunk.
:func:`keras_icnn.data.synthetic_parts.make_examples` calls :func:`render_chunk`."""
import numpy as np

MAX_LEGS = 4
N_UNIFORMS = 64  # random numbers drawn per example (0-52 default look, 53-63 difficulty knobs)


def sibling(c, num_classes):
    """The category sharing parts with ``c`` under ``similarity`` (``c`` XOR 1; itself when
    that is out of range)."""
    c = np.asarray(c)
    s = c ^ 1
    return np.where(s < int(num_classes), s, c)


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


def render_chunk(r, noise, image_size, num_classes, specs, labels, occlusion,
                  color_jitter=0.0, distractors=1):
    # Negative examples carry label -1: no creature is drawn for them.
    """Render one chunk from per-example uniforms ``r`` [n, N_UNIFORMS] and noise [n, H, W, 3]."""
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
