"""A decision tree over an interpretable CNN's filters: which parts a prediction used, and how
much (survey §4.2; Zhang, Yang, Ma, Wu, *Interpreting CNNs via Decision Trees*, CVPR 2019;
SPEC §9).

Each node is a decision mode: a sparse selection of filters ``α_v`` and weights ``ω_v`` on
them, estimating the explained class's logit as ``ŷ_v(I) = ω_v · x̄_I + b_v`` from the
filters' summed responses ``x̄_I``. The leaves are the training images (``ω = ḡ_I``, the
image's own local weights); the nodes above them are learned bottom-up
(:mod:`keras_icnn.trees.learning`); an image is explained by its parse path, root to leaf,
each step to the child whose mode is closest to the image's rationale (cosine).

Example:
    >>> tree = DecisionTree.fit(model, train_images, class_index=0, labels=train_labels)
    >>> parse = tree.parse(model, test_images[:3])
    >>> print(tree.describe(parse, 0))       # the modes image 0 falls under, coarse to fine
    >>> tree.save("/tmp/tree"); DecisionTree.load("/tmp/tree")
"""
import json
import os

import numpy as np

from keras_icnn import validation
from keras_icnn.trees.learning import learn_merges, node_scores, selection, unit_rows
from keras_icnn.trees.rationale import Rationales, rationales

FORMAT = "keras_icnn.DecisionTree/1"


class TreeParse:
    """Parse paths of N images through a tree (:meth:`DecisionTree.parse`).

    Attributes:
        paths: int [N, L] node ids from the root (column 0) to a leaf; -1 pads shorter paths.
        estimates: [N, L] each path node's estimate ``ω_v · x̄_I + b_v`` of the logit (NaN pad).
        contributions: [N, L, D] each path node's per-filter contributions ``ω_v ⊙ x̄_I``.
        part_shares: [N, L, P + 1] the share of each part in a node's explanation (SPEC §9:
            ``Σ_{d∈p} ω_d x̄_d / Σ_d |ω_d x̄_d|``; the last column: filters with no part), or
            None when the tree has no filter parts.
        logits: [N] the model's logit of the explained class; ``rationales``: the inputs.
    """

    def __init__(self, tree, rationales_, paths):
        self.tree, self.rationales, self.paths = tree, rationales_, paths
        x = rationales_.responses
        safe = np.maximum(paths, 0)
        omega = tree.omega[safe]  # [N, L, D]
        self.contributions = np.where((paths >= 0)[..., None], omega * x[:, None, :], 0.0)
        est = self.contributions.sum(-1) + tree.bias[safe]
        self.estimates = np.where(paths >= 0, est, np.nan)
        self.logits = rationales_.logits
        self.part_shares = None
        if tree.filter_parts is not None:
            p = len(tree.part_names)
            onehot = np.eye(p + 1)[np.where(tree.filter_parts >= 0, tree.filter_parts, p)]
            denom = np.abs(self.contributions).sum(-1, keepdims=True)
            shares = (self.contributions @ onehot) / np.where(denom > 0, denom, 1.0)
            self.part_shares = np.where((paths >= 0)[..., None], shares, np.nan)

    @property
    def leaves(self):
        """[N] the leaf each path ends at."""
        last = (self.paths >= 0).sum(1) - 1
        return self.paths[np.arange(len(self.paths)), last]

    def at_depth(self, depth):
        """[N] node ids at ``depth`` on each path (the leaf where a path is shorter)."""
        last = (self.paths >= 0).sum(1) - 1
        return self.paths[np.arange(len(self.paths)), np.minimum(depth, last)]


class DecisionTree:
    """The tree's nodes as arrays (node ids: leaves ``0..N-1``, then one node per merge, the
    root last).

    Attributes:
        parent: int [M] (-1 at the root); ``children(v)``; ``depth``: int [M] (root 0).
        omega: [M, D] each node's weights (zero outside its filters); ``alpha``: bool [M, D]
            its filter selection; ``bias``: [M]; ``size``: int [M] training images under it.
        leaf_image: int [M] the training image of a leaf (-1 for inner nodes).
        objective: the learning objective before each merge and after the last.
        class_index, layer: what was explained; ``filter_parts`` (int [D], -1: none) and
        ``part_names`` name each filter's part when given.
    """

    def __init__(self, parent, omega, alpha, bias, size, leaf_image, objective, class_index,
                 layer, filter_parts=None, part_names=None, settings=None):
        self.parent = np.asarray(parent, np.int64)
        self.omega = np.asarray(omega, np.float64)
        self.alpha = np.asarray(alpha, bool)
        self.bias = np.asarray(bias, np.float64)
        self.size = np.asarray(size, np.int64)
        self.leaf_image = np.asarray(leaf_image, np.int64)
        self.objective = np.asarray(objective, np.float64)
        self.class_index, self.layer = int(class_index), layer
        self.settings = dict(settings or {})
        self.filter_parts = None if filter_parts is None else np.asarray(filter_parts, np.int64)
        self.part_names = None if part_names is None else [str(n) for n in part_names]
        m = len(self.parent)
        self.depth = np.zeros(m, np.int64)
        for v in range(m - 2, -1, -1):  # parents are created after their children
            self.depth[v] = self.depth[self.parent[v]] + 1
        self._children = [[] for _ in range(m)]
        for v, p in enumerate(self.parent):
            if p >= 0:
                self._children[p].append(v)

    # ---- structure --------------------------------------------------------------------------
    @property
    def root(self):
        return len(self.parent) - 1

    @property
    def nodes(self):
        """Every node as a dict: id, depth, size, filters (indices of α), weights on them,
        bias, parent, children, leaf image (-1 for inner nodes)."""
        return [self.node(v) for v in range(len(self.parent))]

    def node(self, v):
        filters = np.flatnonzero(self.alpha[v])
        return {"id": int(v), "depth": int(self.depth[v]), "size": int(self.size[v]),
                "filters": filters.tolist(), "weights": self.omega[v, filters].tolist(),
                "bias": float(self.bias[v]), "parent": int(self.parent[v]),
                "children": list(self._children[v]), "leaf_image": int(self.leaf_image[v])}

    def children(self, v):
        return list(self._children[v])

    @property
    def tree_depth(self):
        """The longest root-to-leaf path's number of edges."""
        return int(self.depth.max())

    def modes(self, depth=1):
        """Node ids at ``depth`` (1: the root's children, the coarsest decision modes),
        largest first."""
        ids = np.flatnonzero(self.depth == depth)
        return ids[np.argsort(-self.size[ids], kind="stable")].tolist()

    # ---- learning ---------------------------------------------------------------------------
    @classmethod
    def fit(cls, model, images, class_index, layer=None, labels=None, prior=0.3, sparsity=0.01,
            filter_parts=None, part_names=None, batch_size=64, logits_layer=None, verbose=0):
        """Learn the tree of ``class_index`` from the images of that class.

        Args:
            model: any Keras classifier :func:`keras_icnn.explain.explain` reads (nested bases,
                softmax heads).
            images: array [N, H, W, C] (with ``labels``), or a batched ``tf.data.Dataset`` of
                images, ``(images, labels)`` or feature dicts; streamed. With labels, only the
                images labelled ``class_index`` become leaves (the paper's positive images).
            class_index: the class whose logit the tree explains.
            layer: the conv layer (default: the model's top conv layer).
            prior: λ, the objective's gain per node removed (larger: fewer, coarser modes).
                0.3: the smallest of {0.1, 0.3, 0.6, 1.0} giving at most 20 modes per class
                on the demo's VGGs (a rule on the training fit alone; bench_decision_tree.py).
            sparsity: γ, the penalty per selected filter and image (larger: fewer filters per
                mode).
            filter_parts: int [D] each filter's part index (-1: none), e.g. the evaluation's
                best part per filter; ``part_names``: the parts' names.
        """
        r = rationales(model, images, class_index, layer, labels, batch_size, logits_layer)
        if (r.labels >= 0).any():
            r = r.select(r.labels == class_index)
            if not len(r.logits):
                raise ValueError(f"no image is labelled class_index={class_index}")
        from keras_icnn.explain import explainable_for

        name = explainable_for(model, layer, logits_layer).layer
        return cls.from_rationales(r, class_index, name, prior, sparsity, filter_parts,
                                   part_names, verbose)

    @classmethod
    def from_rationales(cls, r, class_index, layer=None, prior=0.3, sparsity=0.01,
                        filter_parts=None, part_names=None, verbose=0):
        """The tree of :class:`~keras_icnn.trees.rationale.Rationales` already computed."""
        prior = validation.number_in(prior, "prior", 0)
        sparsity = validation.number_in(sparsity, "sparsity", 0)
        g, x = r.weights, r.responses
        n, d = g.shape
        if filter_parts is not None:
            filter_parts = np.asarray(filter_parts)
            if filter_parts.shape != (d,):
                raise ValueError(f"`filter_parts` must be [{d}] (one part index per filter, "
                                 f"-1 for none). Received shape: {filter_parts.shape}")
            if part_names is None:
                part_names = [f"part {p}" for p in range(int(filter_parts.max()) + 1)]
            if filter_parts.max() >= len(part_names) or filter_parts.min() < -1:
                raise ValueError(f"`filter_parts` must lie in [-1, {len(part_names)}) "
                                 f"(len(part_names)). Received: {filter_parts.tolist()}")
        progress = None
        if verbose:
            import keras

            bar = keras.utils.Progbar(max(n - 1, 1), unit_name="merge")
            progress = bar.update
        merges, objective = learn_merges(g, prior, sparsity, progress)
        k = len(merges)
        m = n + k
        members = np.zeros((m + 1, n), bool)  # + a root above the last second level
        members[np.arange(n), np.arange(n)] = True
        parent = np.full(m + 1, -1, np.int64)
        for t, (a, b) in enumerate(merges):  # one step per merge
            members[n + t] = members[a] | members[b]
            parent[[a, b]] = n + t
        tops = np.flatnonzero(parent[:m] < 0)
        if len(tops) == 1:  # the merges reached one node: it is the root
            members, parent = members[:m], parent[:m]
        else:
            members[m] = True
            parent[tops] = m
        units = unit_rows(g)
        sums = members.astype(np.float64) @ units
        size = members.sum(1)
        _, keep = node_scores(sums, size, sparsity)
        alpha = selection(sums, keep)
        alpha[:n] = g != 0  # a leaf is its image's own rationale
        direction = unit_rows(np.where(alpha, sums, 0.0))
        # ω_v = c_v ω̂_v with c_v the mean of ḡ_I · ω̂_v over the node's images; b_v the mean
        # residual y_I − ω_v · x̄_I (a leaf: ω = ḡ_I, b = b_I exactly).
        scale = (members * (g @ direction.T).T).sum(1) / size
        omega = scale[:, None] * direction
        omega[:n] = g
        bias = (members * (r.logits[None, :] - omega @ x.T)).sum(1) / size
        leaf_image = np.full(len(parent), -1, np.int64)
        leaf_image[:n] = np.arange(n)
        return cls(parent, omega, alpha, bias, size, leaf_image, objective, class_index, layer,
                   filter_parts, part_names, {"prior": prior, "sparsity": sparsity})

    # ---- explaining ---------------------------------------------------------------------------
    def parse(self, model_or_rationales, images=None, batch_size=64, logits_layer=None):
        """Each image's path from the root, choosing at every node the child whose mode is
        closest (cosine) to the image's rationale ḡ_I: ``tree.parse(model, images)`` or
        ``tree.parse(rationales)``. Returns a :class:`TreeParse`."""
        if isinstance(model_or_rationales, Rationales):
            r = model_or_rationales
        else:
            if images is None:
                raise ValueError("parse(model, images): `images` is required with a model")
            r = rationales(model_or_rationales, images, self.class_index, self.layer,
                           batch_size=batch_size, logits_layer=logits_layer)
        if r.responses.shape[1] != self.omega.shape[1]:
            raise ValueError(f"the tree has {self.omega.shape[1]} filters; the rationales "
                             f"have {r.responses.shape[1]}")
        cos = unit_rows(r.weights) @ unit_rows(self.omega).T  # [N, M]
        m = len(self.parent)
        child_of = np.zeros((m, m), bool)
        has = self.parent >= 0
        child_of[self.parent[has], np.flatnonzero(has)] = True
        current = np.full(len(cos), self.root)
        path = [current]
        for _ in range(self.tree_depth):  # one step per level, all images at once
            options = child_of[np.maximum(current, 0)] & (current >= 0)[:, None]
            inner = options.any(1)
            if not inner.any():
                break
            current = np.where(inner, np.argmax(np.where(options, cos, -np.inf), axis=1), -1)
            path.append(current)
        return TreeParse(self, r, np.stack(path, axis=1))

    def describe(self, parse, i, top=3):
        """Text: image ``i``'s path, each node with its estimate and (when the tree has filter
        parts) its largest part shares, else its largest filter contributions."""
        lines = [f"class {self.class_index}, logit {parse.logits[i]:.3f}"]
        for step, v in enumerate(parse.paths[i]):
            if v < 0:
                break
            what = ""
            if parse.part_shares is not None:
                shares = parse.part_shares[i, step]
                names = self.part_names + ["no part"]
                order = np.argsort(-np.abs(shares))[:top]
                what = ", ".join(f"{100 * shares[p]:.0f}% {names[p]}" for p in order)
            else:
                c = parse.contributions[i, step]
                order = np.argsort(-np.abs(c))[:top]
                what = ", ".join(f"filter {d} {c[d]:+.3f}" for d in order)
            lines.append(f"{'  ' * step}node {v} (depth {step}, {self.size[v]} images, "
                         f"{int(self.alpha[v].sum())} filters): estimate "
                         f"{parse.estimates[i, step]:.3f} — {what}")
        return "\n".join(lines)

    # ---- files ------------------------------------------------------------------------------
    def save(self, path):
        """``path/tree.json`` (settings, structure) and ``path/arrays.npz`` (weights): no
        pickle."""
        os.makedirs(path, exist_ok=True)
        meta = {"format": FORMAT, "class_index": self.class_index, "layer": self.layer,
                "part_names": self.part_names, "settings": self.settings,
                "parent": self.parent.tolist(), "leaf_image": self.leaf_image.tolist()}
        with open(os.path.join(path, "tree.json"), "w") as f:
            json.dump(meta, f, indent=1)
        arrays = {"omega": self.omega, "alpha": self.alpha, "bias": self.bias, "size": self.size,
                  "objective": self.objective}
        if self.filter_parts is not None:
            arrays["filter_parts"] = self.filter_parts
        np.savez(os.path.join(path, "arrays.npz"), **arrays)
        return path

    @classmethod
    def load(cls, path):
        """A tree written by :meth:`save`."""
        meta_path = os.path.join(path, "tree.json")
        if not os.path.isfile(meta_path):
            raise ValueError(f"not a saved DecisionTree: {meta_path} does not exist")
        with open(meta_path) as f:
            meta = json.load(f)
        if meta.get("format") != FORMAT:
            raise ValueError(f"not a saved DecisionTree ({FORMAT}): {meta_path} says "
                             f"format={meta.get('format')!r}")
        with np.load(os.path.join(path, "arrays.npz"), allow_pickle=False) as a:
            arrays = {k: a[k] for k in a.files}
        return cls(meta["parent"], arrays["omega"], arrays["alpha"], arrays["bias"],
                   arrays["size"], meta["leaf_image"], arrays["objective"], meta["class_index"],
                   meta["layer"], arrays.get("filter_parts"), meta["part_names"],
                   meta["settings"])
