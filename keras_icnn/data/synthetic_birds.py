"""A second evaluation set: procedurally drawn birds written as a CUB-200-2011 directory.

The synthetic bench (:mod:`keras_icnn.data.synthetic_parts`) is what the defaults were
first tuned on; a default that only works there is tuned to the bench. This generator
differs from it in layout and look on purpose:

- **layout**: a CUB directory (``images/``, boxes, 15 part locations, the official
  train/test split) read through ``--dataset=cub`` like the real dataset, so images are
  cropped to loose, non-square bird boxes and part masks are CUB's landmark disks;
- **body plan**: one bird anatomy (body, head, beak, eye, crown with an optional crest,
  breast patch, wing, tail, legs) rather than four interchangeable part types;
  species differ in some parts only: pairs ``2k, 2k+1`` share body and wing colours and
  differ in crown colour, beak length, tail shape and wing bars, so the class is in the
  parts;
- **poses and part counts**: perched birds show one wing, one eye and two legs; flying
  birds (30%) spread both wings and tuck their legs away; a leaf hides part of the bird in
  25% of the images (the hidden parts are marked invisible, as CUB's annotators do);
- **look**: sky, foliage or bark backgrounds with a branch, other colours, objects of
  20-70% of the image, rotations of ±30°.

Every image is a pure function of ``(seed, index)``; species looks are fixed (they do
not change with the seed). Rendering is vectorised over chunks of images.

Example:
    >>> from keras_icnn.data import synthetic_birds
    >>> root = synthetic_birds.write_cub_birds("/tmp/birds", num_species=6, per_species=400)
    >>> # python trainers/train_icnn.py --dataset=cub --data_dir=/tmp/birds
    >>> scenes = synthetic_birds.make_bird_scenes(8, num_species=6)
    >>> scenes["image"].shape, scenes["points"].shape
    ((8, 128, 128, 3), (8, 15, 2))

Command line: ``python -m keras_icnn.data.synthetic_birds --output_dir=/tmp/birds``.
"""

import argparse
import sys

import numpy as np

from keras_icnn.data.layouts import CUB_PART_LIST, write_cub_files

MAX_SPECIES = 12
_CHUNK = 32
_LOOK_KEY = 20261202  # species looks: fixed, independent of the data seed
# Species sets: "evaluation" (every evaluation directory: at most MAX_SPECIES species) and
# "pretraining" (a pretraining corpus: other species, drawn from another fixed key, at most
# MAX_PRETRAINING_SPECIES; no evaluation species is among them, tests/data checks the margin).
SPECIES_SETS = {"evaluation": (_LOOK_KEY, MAX_SPECIES),
                "pretraining": (_LOOK_KEY + 1, 60)}
MAX_PRETRAINING_SPECIES = SPECIES_SETS["pretraining"][1]
_PART = {name: k for k, name in enumerate(CUB_PART_LIST)}


def species_specs(num_species, species_set="evaluation"):
    """Per-species look: colours [S, 3] in [0, 1] and shape numbers [S] (a dict of arrays).

    Pairs ``2k, 2k+1`` share the body and wing colours and the body's aspect; they
    differ in crown colour, beak length, tail length and shape, wing bars and crest.
    ``species_set``: ``"evaluation"`` (the species of every evaluation directory) or
    ``"pretraining"`` (other species, for a pretraining corpus disjoint from them).
    """
    if species_set not in SPECIES_SETS:
        raise ValueError(f"`species_set` must be one of {tuple(SPECIES_SETS)}. "
                         f"Received: species_set={species_set!r}")
    key, most = SPECIES_SETS[species_set]
    if isinstance(num_species, bool) or not 2 <= int(num_species) <= most:
        raise ValueError(f"`num_species` must be in [2, {most}] for the {species_set} "
                         f"species. Received: num_species={num_species!r}")
    s = int(num_species)
    rng = np.random.default_rng(key)
    pairs = (s + 1) // 2
    hue = (np.arange(pairs) / pairs + rng.uniform(0, 0.5 / pairs)) % 1.0

    def hsv(h, sat, val):
        k = (np.asarray(h)[..., None] * 6 + np.array([5.0, 3.0, 1.0])) % 6
        return val[..., None] * (1 - sat[..., None] * np.clip(np.minimum(k, 4 - k), 0, 1))

    body = hsv(hue, rng.uniform(0.35, 0.65, pairs), rng.uniform(0.45, 0.75, pairs))
    wing = hsv((hue + 0.05) % 1, rng.uniform(0.3, 0.7, pairs), rng.uniform(0.25, 0.5, pairs))
    pair = np.arange(s) // 2
    member = np.arange(s) % 2
    spec = {
        "body": body[pair], "wing": wing[pair],
        "crown": hsv(rng.uniform(0, 1, s), rng.uniform(0.7, 1.0, s), rng.uniform(0.6, 1.0, s)),
        "breast": hsv(rng.uniform(0, 1, s), rng.uniform(0.2, 0.6, s), rng.uniform(0.75, 1.0, s)),
        "beak": hsv(rng.uniform(0.05, 0.15, s), rng.uniform(0.3, 0.9, s), rng.uniform(0.2, 0.9, s)),
        "aspect": rng.uniform(0.5, 0.62, pairs)[pair],  # body height / length
        "head": rng.uniform(0.36, 0.46, s),  # head radius / body half-length
        # pair members differ in these: one long, one short (beak, tail), bars or not
        "beak_length": np.where(member == 0, rng.uniform(0.25, 0.4, s), rng.uniform(0.6, 0.85, s)),
        "tail_length": np.where(member == 0, rng.uniform(0.5, 0.7, s), rng.uniform(0.95, 1.3, s)),
        "tail_fan": np.where(member == 0, 0.9, 0.15) + rng.uniform(-0.1, 0.1, s),
        "bars": (member == 1).astype(float),
        "crest": (rng.uniform(0, 1, s) < 0.5).astype(float),
    }
    return spec


def _species_labels(start, n, num_species, seed):
    """Balanced labels: a fresh permutation of the species every ``num_species`` images."""
    labels = np.empty(n, np.int64)
    perms = {}
    for row, i in enumerate(range(start, start + n)):
        block = i // num_species
        if block not in perms:
            perms[block] = np.random.default_rng([seed, 2**31, block]).permutation(num_species)
        labels[row] = perms[block][i % num_species]
    return labels


def _ellipse(u, v, cu, cv, a, b, angle=0.0):
    c, s = np.cos(angle), np.sin(angle)
    du, dv = u - cu, v - cv
    return ((du * c + dv * s) / a) ** 2 + ((-du * s + dv * c) / b) ** 2 <= 1.0


def _render(uniforms, noise, labels, spec, size):
    """One chunk: images [n, S, S, 3] uint8, points [n, 15, 2], visible [n, 15], boxes [n, 4]."""
    n = len(labels)
    q = lambda k: uniforms[:, k][:, None, None]  # noqa: E731  a per-image number, broadcast
    sp = {k: v[labels] for k, v in spec.items()}
    b = lambda k: sp[k][:, None, None]  # noqa: E731
    grid = np.arange(size, dtype=np.float32) + 0.5
    Y, X = grid[None, :, None], grid[None, None, :]

    # pose: body half-length a (pixels), centre, rotation, facing, flying
    a = size * (0.13 + 0.09 * q(0))
    cx = size * (0.32 + 0.36 * q(1))
    cy = size * (0.3 + 0.35 * q(2))
    angle = np.deg2rad(-30 + 60 * q(3))
    face = np.where(q(4) < 0.5, -1.0, 1.0)
    flying = q(5) < 0.3
    cos, sin = np.cos(angle), np.sin(angle)

    def local(x, y):
        return (((x - cx) * cos + (y - cy) * sin) * face / a,
                (-(x - cx) * sin + (y - cy) * cos) / a)

    def canvas_xy(u, v):  # inverse of local, for landmarks
        x = cx + a * (u * face * cos - v * sin)
        y = cy + a * (u * face * sin + v * cos)
        return x, y

    u, v = local(X, Y)
    e = b("aspect")
    rh = b("head")
    hu, hv = 0.95, -0.55 * e
    # background: sky gradient, foliage blobs or bark stripes, then a branch
    kind = (q(6) * 3).astype(int)
    z = np.zeros((n, size, size), np.float32)
    sky = np.stack([0.45 + 0.2 * q(7) + z, 0.6 + 0.2 * q(8) + z, 0.85 - 0.25 * Y / size + z], -1)
    blobs = 0.5 + 0.5 * np.sin(X / size * (6 + 8 * q(9)) + 3 * np.sin(Y / size * (5 + 6 * q(10))))
    foliage = np.stack([0.15 + 0.25 * blobs, 0.45 + 0.35 * blobs * q(11), 0.1 + 0.1 * blobs], -1)
    stripes = 0.5 + 0.5 * np.sin(X / size * (20 + 30 * q(12)) + 2 * np.sin(Y / size * 4))
    bark = np.stack([0.35 + 0.2 * stripes, 0.25 + 0.15 * stripes, 0.15 + 0.1 * stripes], -1)
    image = np.where((kind == 0)[..., None], sky, np.where((kind == 1)[..., None], foliage, bark))
    image = image.astype(np.float32)
    bird = np.zeros((n, size, size), bool)

    def paint(mask, color, part_of_bird=True, shade=True):
        nonlocal image, bird
        col = np.broadcast_to(np.asarray(color, np.float32)[:, None, None, :], image.shape)
        if shade:  # light from above
            col = col * (1.1 - 0.25 * np.clip(v, -1.5, 1.5)[..., None] / 1.5)
        image = np.where(mask[..., None], col, image)
        if part_of_bird:
            bird |= mask

    leg_len = 0.55 * e + 0.25
    foot_v = e * 0.9 + leg_len
    # the branch under a perched bird's feet (horizontal in the canvas)
    _, branch_y = canvas_xy(0.0 * q(0), foot_v)
    branch = (~flying) & (np.abs(Y - branch_y) < 0.05 * a + 1.5) & (z == 0)
    paint(branch, np.tile([[0.35, 0.22, 0.12]], (n, 1)), part_of_bird=False, shade=False)
    # tail: a wedge behind the body, wide at the end for fan tails
    tl = b("tail_length")
    t = (-0.75 - u) / tl  # 0 at the body, 1 at the tip
    tail_width = e * (0.25 + b("tail_fan") * 0.55 * np.clip(t, 0, 1))
    tail = (t >= 0) & (t <= 1) & (np.abs(v + 0.15 * e - 0.25 * t * e) <= tail_width)
    paint(tail, sp["wing"] * 0.9)
    # far wing (flying birds), legs (perched birds), body, breast, near wing
    far_wing = flying & _ellipse(u, v, -0.05, -1.05 * e, 0.55, 0.28, 0.5)
    paint(far_wing, sp["wing"] * 0.7)
    legs = np.zeros_like(bird)
    for lu in (-0.05, 0.2):  # two legs (a fixed, tiny loop over a bird's two legs)
        legs |= (np.abs(u - lu) < 0.05) & (v > 0.8 * e) & (v < foot_v)
    legs &= ~flying
    paint(legs, np.tile([[0.25, 0.2, 0.15]], (n, 1)), shade=False)
    body = _ellipse(u, v, 0.0, 0.0, 1.0, e)
    paint(body, sp["body"])
    breast = body & (u > 0.15) & (v > -0.2 * e)
    paint(breast, sp["breast"])
    wing_angle = np.where(flying, 0.9, -0.12)
    wing_v = np.where(flying, -1.0 * e, -0.1 * e)
    wing = _ellipse(u, v, -0.15, wing_v, 0.7, 0.36 * e + 0.05, wing_angle)
    paint(wing, sp["wing"])
    bars = wing & (b("bars") > 0) & (np.sin(u * 18.0) > 0.4)
    paint(bars, np.clip(sp["wing"] + 0.45, 0, 1))
    # head, crown (+ crest), beak, eye
    head = (u - hu) ** 2 + (v - hv) ** 2 <= rh ** 2
    paint(head, sp["body"] * 1.05)
    crown = head & (v < hv - 0.3 * rh)
    crest = (b("crest") > 0) & (v < hv - 0.6 * rh) & (v > hv - rh * 1.6) \
        & (np.abs(u - (hu - 0.2 * rh) + 0.5 * (v - hv + rh)) < 0.25 * rh)
    paint(crown | crest, sp["crown"])
    bl = b("beak_length")
    s_beak = (u - (hu + 0.8 * rh)) / bl
    beak = (s_beak >= 0) & (s_beak <= 1) & (np.abs(v - (hv + 0.1 * rh)) <= 0.16 * (1 - s_beak) + 0.01)
    paint(beak, sp["beak"], shade=False)
    eye_u, eye_v = hu + 0.4 * rh, hv - 0.1 * rh
    eye = (u - eye_u) ** 2 + (v - eye_v) ** 2 <= (0.13 * rh) ** 2
    paint(eye, np.tile([[0.05, 0.05, 0.05]], (n, 1)), shade=False)

    # landmarks in local coordinates [n, 15, 2]; visibility by pose
    pts = np.zeros((n, len(CUB_PART_LIST), 2), np.float32)
    vis = np.ones((n, len(CUB_PART_LIST)), bool)
    def flat(z):  # a per-image number [n] from a scalar or [n, 1, 1]
        return np.broadcast_to(np.asarray(z, np.float32), (n, 1, 1))[:, 0, 0]

    fl = flying[:, 0, 0]
    local_pts = {  # (u, v) of each part, scalars or [n, 1, 1]
        "back": (-0.2, -0.85 * e), "beak": (hu + 0.8 * rh + bl, hv + 0.1 * rh),
        "belly": (-0.15, 0.8 * e), "breast": (0.6, 0.35 * e), "crown": (hu, hv - 0.8 * rh),
        "forehead": (hu + 0.6 * rh, hv - 0.6 * rh), "nape": (hu - 0.75 * rh, hv - 0.2 * rh),
        "throat": (hu + 0.35 * rh, hv + 0.8 * rh),
        "left eye": (eye_u, eye_v), "right eye": (eye_u, eye_v),
        "left leg": (-0.05, foot_v), "right leg": (0.2, foot_v),
        "left wing": (-0.15, wing_v), "right wing": (-0.05, -1.05 * e),
        "tail": (-0.75 - 0.7 * tl, 0.025 * e),
    }
    for name, (pu, pv) in local_pts.items():  # 15 named parts, each vectorised over images
        x, y = canvas_xy(flat(pu)[:, None, None], flat(pv)[:, None, None])
        pts[:, _PART[name]] = np.stack([flat(x), flat(y)], -1)
    facing_right = face[:, 0, 0] > 0
    vis[:, _PART["left eye"]] = ~facing_right
    vis[:, _PART["right eye"]] = facing_right
    vis[:, _PART["left leg"]] = vis[:, _PART["right leg"]] = ~fl
    vis[:, _PART["right wing"]] = fl

    # a leaf over part of the bird (25%), then clip to the frame
    leaf_x, leaf_y = canvas_xy(-0.6 + 1.6 * q(13), (-0.6 + 1.2 * q(14)) * e)
    leaf = (q(15) < 0.25) & _ellipse(X, Y, leaf_x, leaf_y, a * (0.45 + 0.25 * q(16)), a * 0.3,
                                     np.pi * q(17))
    paint(leaf, np.tile([[0.2, 0.55, 0.15]], (n, 1)), part_of_bird=False, shade=False)
    bird &= ~leaf
    px, py = pts[..., 0], pts[..., 1]
    iy = np.clip(py.astype(int), 0, size - 1)
    ix = np.clip(px.astype(int), 0, size - 1)
    under_leaf = leaf[np.arange(n)[:, None], iy, ix]
    vis &= (px >= 0) & (px < size) & (py >= 0) & (py < size) & ~under_leaf

    image = np.clip(image * 255 + noise, 0, 255).astype(np.uint8)
    # loose, non-square box around the visible bird (CUB's boxes are not tight)
    rows, cols = bird.any(2), bird.any(1)
    y0, y1 = rows.argmax(1), size - rows[:, ::-1].argmax(1)
    x0, x1 = cols.argmax(1), size - cols[:, ::-1].argmax(1)
    m = uniforms[:, 18:22] * 0.12 * np.stack([x1 - x0, y1 - y0, x1 - x0, y1 - y0], -1)
    bx0, by0 = np.maximum(x0 - m[:, 0], 0), np.maximum(y0 - m[:, 1], 0)
    bx1, by1 = np.minimum(x1 + m[:, 2], size), np.minimum(y1 + m[:, 3], size)
    boxes = np.stack([bx0, by0, bx1 - bx0, by1 - by0], -1).astype(np.float32)
    return {"image": image, "points": pts, "visible": vis, "box": boxes}


def make_bird_scenes(n, num_species=6, size=128, seed=0, start=0, species_set="evaluation"):
    """``n`` bird scenes (images ``start .. start+n-1``), each a pure function of (seed, index).

    ``species_set``: ``"evaluation"`` or ``"pretraining"`` (:func:`species_specs`).

    Returns:
        dict: ``image`` uint8 [n, size, size, 3], ``label`` int64 [n], ``box`` float32
        [n, 4] (x, y, width, height), ``points`` float32 [n, 15, 2] (x, y) and ``visible``
        bool [n, 15] of the CUB parts (``layouts.CUB_PART_LIST`` order).
    """
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
        raise ValueError(f"`n` must be an integer >= 0. Received: n={n!r}")
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < 32:
        raise ValueError(f"`size` must be an integer >= 32 (pixels). Received: size={size!r}")
    spec = species_specs(num_species, species_set)
    labels = _species_labels(int(start), int(n), int(num_species), int(seed))
    uniforms = np.empty((n, 24))
    noise = np.empty((n, size, size, 3), np.float32)
    for row, i in enumerate(range(int(start), int(start) + int(n))):  # per-image random stream
        rng = np.random.default_rng([int(seed), 7, i])
        uniforms[row] = rng.random(24)
        noise[row] = rng.standard_normal((size, size, 3), np.float32) * 5.0
    chunks = [_render(uniforms[a:a + _CHUNK], noise[a:a + _CHUNK], labels[a:a + _CHUNK], spec,
                      int(size)) for a in range(0, int(n), _CHUNK)]
    if not chunks:
        return {"image": np.zeros((0, size, size, 3), np.uint8), "label": labels,
                "box": np.zeros((0, 4), np.float32),
                "points": np.zeros((0, len(CUB_PART_LIST), 2), np.float32),
                "visible": np.zeros((0, len(CUB_PART_LIST)), bool)}
    out = {k: np.concatenate([c[k] for c in chunks]) for k in chunks[0]}
    out["label"] = labels
    return out


def write_cub_birds(root, num_species=6, per_species=400, size=128, seed=0,
                    train_fraction=0.6, verbose=0, species_set="evaluation"):
    """Write ``num_species * per_species`` bird scenes as a CUB-200-2011 directory.

    ``species_set="pretraining"`` draws other species than every evaluation directory's
    (up to ``MAX_PRETRAINING_SPECIES``): a corpus for ``keras-icnn-pretrain``, e.g.
    ``write_cub_birds("/tmp/pre", num_species=30, per_species=400, species_set="pretraining")``.

    The first ``train_fraction`` of each species' images are CUB training images
    (``--num_val`` carves the validation split from them); the rest are the test split.
    Returns ``root``; read it with ``--dataset=cub --data_dir=root``.
    """
    species_specs(num_species, species_set)  # checks both before any rendering
    n = int(num_species) * int(per_species)
    if per_species < 2:
        raise ValueError(f"`per_species` must be >= 2. Received: per_species={per_species!r}")
    if not 0 < train_fraction < 1:
        raise ValueError("`train_fraction` must be in (0, 1). "
                         f"Received: train_fraction={train_fraction!r}")
    scenes = {k: [] for k in ("image", "label", "box", "points", "visible")}
    for a in range(0, n, 256):  # bounded memory: 256 scenes at a time
        part = make_bird_scenes(min(256, n - a), num_species, size, seed, start=a,
                                species_set=species_set)
        for k in scenes:
            scenes[k].append(part[k])
        if verbose:
            print(f"rendered {a + len(part['label'])}/{n} bird scenes", flush=True)
    scenes = {k: np.concatenate(v) for k, v in scenes.items()}
    if species_set == "evaluation":
        names = [f"{c + 1:03d}.species_{chr(ord('A') + c)}" for c in range(int(num_species))]
    else:
        names = [f"{c + 1:03d}.pretraining_species_{c + 1:02d}" for c in range(int(num_species))]
    return write_cub_files(root, scenes["image"], scenes["label"], scenes["box"],
                           scenes["points"], scenes["visible"], class_names=names,
                           train_fraction=train_fraction, num_classes=int(num_species))


def main(argv=None):
    p = argparse.ArgumentParser(
        description="Write the bird scenes (the second evaluation set) as a CUB-200-2011 "
                    "directory, or a preview of them.")
    p.add_argument("--output_dir", required=True, help="directory to write")
    p.add_argument("--num_species", type=int, default=6)
    p.add_argument("--per_species", type=int, default=400)
    p.add_argument("--size", type=int, default=128, help="side of the scenes in pixels")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--train_fraction", type=float, default=0.6)
    p.add_argument("--species_set", choices=tuple(SPECIES_SETS), default="evaluation",
                   help="evaluation: the species of the evaluation directories; pretraining: "
                        f"other species (up to {MAX_PRETRAINING_SPECIES}) for a pretraining "
                        "corpus (keras-icnn-pretrain)")
    args = p.parse_args(argv)
    write_cub_birds(args.output_dir, args.num_species, args.per_species, args.size, args.seed,
                    args.train_fraction, verbose=1, species_set=args.species_set)
    print(args.output_dir)


if __name__ == "__main__":
    sys.exit(main())
