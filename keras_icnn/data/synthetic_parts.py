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

import numpy as np

from keras_icnn.data.synthetic_render import N_UNIFORMS, render_chunk

PART_NAMES = ("head", "torso", "legs", "tail")
CATEGORY_NAMES = ("bird", "cat", "cow", "dog", "horse", "sheep",
                  "fox", "frog", "goat", "lion", "mole", "newt")
# A pretraining corpus's categories (``categories="pretraining"``): other body plans than every
# evaluation category's, drawn from their own fixed key (tests/data checks they differ).
PRETRAINING_CATEGORY_NAMES = tuple(f"pretraining_{k + 1:02d}" for k in range(30))
CATEGORY_SETS = ("evaluation", "pretraining")
SPLITS = ("train", "validation", "test")
# multi: classify every category; single: one category against background images.
TASKS = ("multi", "single")
NEGATIVE_LABEL = -1
_CHUNK = 32

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


def category_names(categories="evaluation"):
    """The category names of a category set: ``"evaluation"`` (``CATEGORY_NAMES``, the
    categories every evaluation uses) or ``"pretraining"`` (``PRETRAINING_CATEGORY_NAMES``:
    other body plans, for a pretraining corpus)."""
    if categories not in CATEGORY_SETS:
        raise ValueError(f"`categories` must be one of {CATEGORY_SETS}. "
                         f"Received: categories={categories!r}")
    return CATEGORY_NAMES if categories == "evaluation" else PRETRAINING_CATEGORY_NAMES


def _pretraining_looks(c, variants_max=4):
    """Colours, shapes and textures of the pretraining categories ``c``: drawn from their own
    fixed key (not the evaluation palette), so no body plan is an evaluation category's."""
    n = len(PRETRAINING_CATEGORY_NAMES)
    rng = np.random.default_rng(20180619)
    exps = np.array([1.0, 2.0, 6.0])
    colour = rng.uniform(20.0, 245.0, (n, variants_max, 4, 3)).astype(np.float32)
    part_exp = exps[rng.integers(0, 3, (n, 4))]
    part_exp[:, 2] = 6.0  # legs are boxes, as in every category
    taper = np.stack([np.where(rng.random(n) < 0.3, 0.7, 0.0), np.zeros(n), np.zeros(n),
                      np.where(rng.random(n) < 0.5, 0.8, 0.0)], 1)
    return dict(jitter=rng.random((n, 16))[c], color_variants=colour[c], exp=part_exp[c],
                taper=taper[c], texture=rng.integers(0, 4, (n, 4))[c],
                n_legs=2 + rng.integers(0, 3, n)[c])


def category_specs(num_classes, similarity=0.0, variants=1, categories="evaluation"):
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

    ``categories="pretraining"``: the body plans of ``PRETRAINING_CATEGORY_NAMES`` (up to
    30; colours, shapes, textures and proportions from their own key) instead of the
    evaluation categories'.
    """
    names = category_names(categories)
    if not 1 <= int(num_classes) <= len(names):
        raise ValueError(
            f"`num_classes` must lie in [1, {len(names)}] ({categories} categories). "
            f"Received: num_classes={num_classes}"
        )
    c = np.arange(int(num_classes))
    rng = np.random.default_rng(20180618)  # fixed: the body plans never change
    n = len(CATEGORY_NAMES)
    jitter = rng.random((n, 16))[c % n]  # (pretraining categories replace it below)
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
    if categories == "pretraining":
        own = _pretraining_looks(c)
        specs["color_variants"] = own["color_variants"][:, :variants]
        specs["color"] = specs["color_variants"][:, 0]
        for key in ("exp", "taper", "texture", "n_legs"):
            specs[key] = own[key]
        jitter = own["jitter"]
        specs.update(
            tex_freq=6.0 + 8.0 * jitter[:, 0:4], tex_angle=np.pi * jitter[:, 4:8],
            torso_a=0.22 + 0.08 * jitter[:, 8], torso_b=0.11 + 0.06 * jitter[:, 9],
            head_r=0.10 + 0.05 * jitter[:, 10], head_aspect=0.7 + 0.6 * jitter[:, 11],
            head_lift=0.05 + 0.15 * jitter[:, 12], leg_len=0.16 + 0.12 * jitter[:, 13],
            tail_len=0.12 + 0.10 * jitter[:, 14], tail_angle=-0.2 - 0.9 * jitter[:, 15])
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
def _check_args(n, image_size, num_classes, seed, occlusion, similarity=0.0, color_jitter=0.0,
                distractors=1, variants=1, categories="evaluation"):
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
    return category_specs(num_classes, similarity, variants, categories)


def category_index(name_or_index, num_classes=6, categories="evaluation"):
    """Category index from a name in ``CATEGORY_NAMES`` (or the ``categories`` set's) or an
    int."""
    names = category_names(categories)[:num_classes]
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
                  distractors=1, variants=1, categories="evaluation"):
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
        categories: ``"evaluation"`` (the categories of ``CATEGORY_NAMES``) or
            ``"pretraining"`` (other body plans, ``PRETRAINING_CATEGORY_NAMES``, up to 30:
            a pretraining corpus disjoint from every evaluation).

    Returns:
        dict of numpy arrays: ``image`` uint8 [n,H,W,3], ``label`` int64 [n],
        ``bbox`` float32 [n,4] (x_min, y_min, x_max, y_max), ``part_masks``
        bool [n,H,W,4], ``landmarks`` float32 [n,4,2] (x, y) with NaN where a
        part is hidden or out of frame, ``object_mask`` bool [n,H,W].
        Labels cycle through a fresh permutation of the categories every
        ``num_classes`` examples, so classes are balanced.
    """
    specs = _check_args(n, image_size, num_classes, seed, occlusion, similarity, color_jitter,
                        distractors, variants, categories)
    look = dict(color_jitter=float(color_jitter), distractors=int(distractors))
    split_id = _split_id(split)
    n, image_size, num_classes = int(n), int(image_size), int(num_classes)
    fixed = None if category is None else category_index(category, num_classes, categories)
    key = [int(seed), split_id, int(bool(negatives)), image_size, num_classes]
    if categories == "pretraining":  # another image stream than the evaluation data's
        key.append(1)
    uniforms = np.empty((n, N_UNIFORMS))
    noise = np.empty((n, image_size, image_size, 3), np.float32)
    labels = np.empty((n,), np.int64)
    perms = {}
    for row, i in enumerate(range(int(start), int(start) + n)):
        rng = np.random.default_rng(key + [i])
        uniforms[row] = rng.random(N_UNIFORMS)
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
        render_chunk(uniforms[a:a + _CHUNK], noise[a:a + _CHUNK], image_size, num_classes,
                      specs, labels[a:a + _CHUNK], float(occlusion), **look)
        for a in range(0, n, _CHUNK)
    ]
    if not chunks:
        return render_chunk(uniforms, noise, image_size, num_classes, specs, labels,
                             float(occlusion), **look)
    return {k: np.concatenate([c[k] for c in chunks]) for k in chunks[0]}


def make_single_category_examples(category, n, image_size=64, num_classes=6, seed=0,
                                  split="train", occlusion=0.2, start=0, **look):
    """Positives of one category interleaved with negatives: label 1 / 0.

    Even examples are creatures of ``category``, odd ones are background and
    clutter (which includes isolated parts of other categories). ``look``: the
    difficulty knobs of :func:`make_examples`.
    """
    c = category_index(category, num_classes, look.get("categories", "evaluation"))
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
