"""The report's decision trees (``keras-icnn-evaluate --trees``; SPEC §9): per class, a tree
fitted on that class's training images, its coarsest decision modes (the parts each uses, with
their shares, and training images that fall under it), and the parse path of each explained
test image through its predicted class's tree."""
import numpy as np

from keras_icnn.evaluation.atlas import class_name
from keras_icnn.reporting import html as report_html
from keras_icnn.trees import DecisionTree, rationales

MODES_SHOWN = 3
EXAMPLES_PER_MODE = 4


def training_images(source, per_class, batch_size):
    """Up to ``per_class`` training images of each class, in the split's order (one read of
    the train split, stopped once every class has its images)."""
    num_classes = source.num_classes
    counts = np.zeros(num_classes, np.int64)
    images, labels = [], []
    for x, y in source.dataset("train", batch_size, as_supervised=True):
        y = y.numpy()
        onehot = y[:, None] == np.arange(num_classes)
        rank = np.cumsum(onehot, axis=0)[np.arange(len(y)), y] - 1 + counts[y]
        keep = rank < per_class
        images.append(x.numpy()[keep])
        labels.append(y[keep])
        counts += onehot.sum(0)
        if (counts >= per_class).all():
            break
    return np.concatenate(images), np.concatenate(labels)


def mode_of_leaves(tree):
    """[leaves] the depth-1 node (the root's child) above each leaf, climbing all leaves at
    once (one step per level)."""
    leaves = np.flatnonzero(tree.leaf_image >= 0)
    node = leaves.copy()
    while True:
        up = tree.parent[node]
        done = (up == tree.root) | (up < 0)
        if done.all():
            return leaves, node
        node = np.where(done, node, up)


def _shares_text(shares, names, top=3):
    order = np.argsort(-np.abs(shares))[:top]
    return ", ".join(f"{100 * shares[q]:.0f}% {names[q]}" for q in order if abs(shares[q]) > 0)


def tree_sections(model, layer_name, source, config, filter_parts, part_names, explained):
    """``{"classes": [...], "paths": [...]}`` for report.html and report.json: ``explained``
    are the images the report explains (their predicted classes' trees parse them)."""
    class_names = source.class_names
    x, y = training_images(source, config.tree_images, config.batch_size)
    names = list(part_names) + ["no part"] if filter_parts is not None else None
    classes, trees = [], {}
    for c in range(source.num_classes):  # one tree per class
        if not (y == c).any():
            continue
        images = x[y == c]
        r = rationales(model, images, c, layer_name, batch_size=config.batch_size)
        tree = DecisionTree.from_rationales(r, c, layer_name, filter_parts=filter_parts,
                                            part_names=part_names if filter_parts is not None
                                            else None)
        trees[c] = tree
        leaves, tops = mode_of_leaves(tree)
        modes = []
        for v in tree.modes(1)[:MODES_SHOWN]:
            members = tree.leaf_image[leaves[tops == v]]
            filters = np.flatnonzero(tree.alpha[v])
            if names is not None:  # the mode's contributions ω_v ⊙ x̄_I, per part
                contrib = tree.omega[v][None] * r.responses[members]
                onehot = np.eye(len(names))[np.where(filter_parts >= 0, filter_parts,
                                                     len(names) - 1)]
                denom = np.abs(contrib).sum(1, keepdims=True)
                shares = ((contrib @ onehot) / np.where(denom > 0, denom, 1.0)).mean(0)
                what = _shares_text(shares, names)
            else:
                weights = tree.omega[v]
                order = filters[np.argsort(-np.abs(weights[filters]))][:3]
                what = ", ".join(f"filter {d}" for d in order)
            thumbs = [report_html.data_uri(_small(images[i])) for i in
                      members[:EXAMPLES_PER_MODE]]
            modes.append({"node": int(v), "images": int(len(members)),
                          "filters": int(len(filters)), "parts": what, "examples": thumbs})
        classes.append({"class": class_name(class_names, c), "images": int(len(images)),
                        "modes": int(len(tree.modes(1))), "depth": int(tree.tree_depth),
                        "top_modes": modes})
    paths = [None] * len(explained)
    predicted = (np.argmax(model.predict(np.stack(explained), verbose=0), -1)
                 if len(explained) else np.zeros(0, int))
    for c, tree in trees.items():  # each class's tree parses its images at once
        which = np.flatnonzero(predicted == c)
        if not len(which):
            continue
        parse = tree.parse(model, np.stack([explained[i] for i in which]))
        for row, i in enumerate(which):
            paths[i] = {"class": class_name(class_names, c),
                        "logit": float(parse.logits[row]),
                        "steps": _path_steps(tree, parse, row, names)}
    paths = [p for p in paths if p is not None]
    return {"classes": classes, "paths": paths}


def _path_steps(tree, parse, row, names):
    """Text of one image's parse path below the root (the middle shortened to its length)."""
    steps = []
    for depth, v in enumerate(parse.paths[row]):
        if v < 0 or depth == 0:
            continue
        what = (_shares_text(parse.part_shares[row, depth], names) if names is not None
                else f"{int(tree.alpha[v].sum())} filters")
        kind = "leaf" if tree.leaf_image[v] >= 0 else f"{tree.size[v]} images"
        steps.append(f"depth {depth}, node {v} ({kind}): estimate "
                     f"{parse.estimates[row, depth]:.2f}; {what}")
    if len(steps) > 4:
        hidden = len(steps) - 4
        steps = steps[:3] + [f"... {hidden} more node{'s' if hidden > 1 else ''} ..."] \
            + steps[-1:]
    return steps


def _small(image, size=48):
    import tensorflow as tf

    image = np.asarray(image, np.float32)
    image = image / 255.0 if image.max() > 1.0 else image
    return tf.image.resize(image[None, ..., :3], (size, size), method="area").numpy()[0]
