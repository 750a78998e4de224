"""The explanatory graph of a trained CNN (survey §4.3; Zhang, Cao, Shi, Wu, Zhu, *Interpreting
CNN Knowledge via an Explanatory Graph*, AAAI 2018; SPEC §10).

Every filter of a few conv layers is split into nodes (part patterns); each node of a layer is
linked to the nodes of the layer above that predict where it fires (a displacement and its
variance). Learned top-down, layer by layer, EM-style on unannotated images
(:mod:`keras_icnn.graphs.em` has the maths); any Keras CNN works (nested bases included).

Example:
    >>> g = ExplanatoryGraph.fit(model, train_images, layers=["top_conv", "block3_relu2"])
    >>> inf = g.infer(test_images)          # per node: position, score, presence
    >>> inf.positions.shape                  # (N, nodes, 2) image-plane (x, y)
    >>> g.save("/tmp/graph"); g = ExplanatoryGraph.load("/tmp/graph", model)
"""
import dataclasses
import json
import math
import os
import time

import numpy as np
import tensorflow as tf

from keras_icnn import validation
from keras_icnn.graphs import em
from keras_icnn.graphs.peaks import LayerPeaks, default_graph_layers

FORMAT = "keras_icnn.ExplanatoryGraph/1"
_ARRAYS = ("parents", "delta", "var", "log_prior", "scale")
ANCHORS = ("centroid", "image")


@dataclasses.dataclass
class GraphInference:
    """The graph's nodes on N images (node ids: layer by layer, top first; within a layer
    filter-major, ``id = offset[l] + filter * nodes_per_filter + node``).

    Attributes:
        positions: [N, K, 2] image-plane (x, y) of each node (its filter's chosen peak).
        scores: [N, K] the filter's activation at that peak (0: the filter has no peak).
        log_likelihood: [N, K] the spatial term ℓ of that peak under the node.
        present: [N, K] bool, the node is on the image (a real peak, more likely under the
            node's parents than anywhere).
    """

    positions: np.ndarray
    scores: np.ndarray
    log_likelihood: np.ndarray
    present: np.ndarray


@dataclasses.dataclass
class _Layer:
    parents: np.ndarray  # [D, N, M] int32 candidate ids (the layer above's nodes, then image)
    delta: np.ndarray  # [D, N, M, 2]
    var: np.ndarray  # [D, N, M]
    log_prior: np.ndarray  # [D, N + 1]
    scale: np.ndarray  # [D] activation of a typical strongest peak


def _chunks(n, size):
    return [(a, min(a + size, n)) for a in range(0, n, size)]


class ExplanatoryGraph:
    """Nodes and edges of an explanatory graph (build it with :meth:`fit` or :meth:`load`).

    Attributes:
        layers: graph layers' conv layers (flat-graph names), top first.
        filters: filters per layer; ``nodes_per_filter``: nodes of each filter, per layer;
        parents_per_node: parents of each node in the layer above;
        image_size: (H, W); ``fields``: the layers' receptive fields (for pictures);
        num_nodes: all nodes; ``offsets``: first node id of each layer.
        info: how it was fitted (images, iterations, seconds).
    """

    def __init__(self, layers, filters, image_size, nodes_per_filter, parents_per_node,
                 peaks_per_filter, params, info=None, model=None, probe=None):
        self.layers, self.filters = list(layers), [int(d) for d in filters]
        self.image_size = tuple(int(s) for s in image_size)
        self.nodes_per_filter = _per_layer(nodes_per_filter, len(self.layers))
        self.parents_per_node = int(parents_per_node)
        self.peaks_per_filter = int(peaks_per_filter)
        self.params = params
        self.info = dict(info or {})
        self.min_activation = float(self.info.get("min_activation", 0.0))
        self.anchor = self.info.get("anchor", "centroid")
        sizes = [d * n for d, n in zip(self.filters, self.nodes_per_filter)]
        self.offsets = [int(o) for o in np.cumsum([0] + sizes)[:-1]]
        self.num_nodes = int(sum(sizes))
        self._model, self._probe = model, probe

    # ---- structure ---------------------------------------------------------------------
    @property
    def model(self):
        """The CNN the graph reads (``None`` for a graph loaded without one)."""
        return self._model

    def node_layer(self):
        """[K] graph layer of each node."""
        return np.repeat(np.arange(len(self.layers)), [d * n for d, n in zip(
            self.filters, self.nodes_per_filter)])

    def node_filter(self):
        """[K] filter (within its layer) of each node."""
        return np.concatenate([np.repeat(np.arange(d), n)
                               for d, n in zip(self.filters, self.nodes_per_filter)])

    def edges(self):
        """``(child, parent, displacement [E, 2], std [E])`` over all edges between nodes
        (edges to the image pseudo-node left out), node ids as in :class:`GraphInference`."""
        child, parent, disp, std = [], [], [], []
        for l in range(1, len(self.layers)):
            p = self.params[l]
            ids = self.offsets[l] + np.arange(p.parents[..., 0].size).reshape(p.parents.shape[:2])
            real = p.parents < self.filters[l - 1] * self.nodes_per_filter[l - 1]
            child.append(np.broadcast_to(ids[..., None], p.parents.shape)[real])
            parent.append(self.offsets[l - 1] + p.parents[real])
            disp.append(p.delta[real])
            std.append(np.sqrt(p.var[real]))
        if not child:
            return (np.zeros(0, int), np.zeros(0, int), np.zeros((0, 2)), np.zeros(0))
        return tuple(np.concatenate(v) for v in (child, parent, disp, std))

    # ---- learning ----------------------------------------------------------------------
    @classmethod
    def fit(cls, model, images, layers=None, nodes_per_filter=3, parents_per_node=3,
            peaks_per_filter=None, iterations=8, init_iterations=4, min_activation=0.0,
            anchor="centroid", batch_size=64, seed=0, verbose=1):
        """Learn the graph of ``model`` on unannotated ``images``.

        Args:
            model: a trained Keras CNN (nested ``keras.applications`` bases included).
            images: [N, H, W, C] array, or a dataset of images, ``(images, labels)`` or
                feature dicts with ``"image"``; read once, streamed in batches.
            layers: conv layers (names or paths), top first; default
                :func:`~keras_icnn.graphs.peaks.default_graph_layers` (three map sizes).
            nodes_per_filter: nodes (part patterns) each filter is split into: one number, or
                one per layer (top first).
            parents_per_node: parents of each node in the layer above.
            peaks_per_filter: peaks of each map kept (default twice the most nodes per filter).
            iterations: EM iterations per layer with parents; ``init_iterations`` before
                them, each node on its own (k-means++ seeds, then absolute positions).
            min_activation: a node is present only where its peak's activation exceeds this
                fraction of its filter's typical strongest peak (its mean over the images).
            anchor: the pseudo-node the top layer's nodes (and any node without a better
                parent) hang from: ``"centroid"`` of the top layer's activations (moves with
                the object) or the ``"image"`` centre.
            seed: seeds the node initialisation.
            verbose: progress bars and one line per layer.

        Returns:
            :class:`ExplanatoryGraph`.
        """
        layers = list(layers) if layers else default_graph_layers(model)
        per_layer = _per_layer(nodes_per_filter, len(layers))
        parents = validation.positive_int(parents_per_node, "parents_per_node")
        iterations = validation.positive_int(iterations, "iterations")
        init_iterations = validation.positive_int(init_iterations, "init_iterations")
        min_activation = validation.number_in(min_activation, "min_activation", low=0.0)
        anchor_kind = validation.one_of(anchor, "anchor", ANCHORS)
        count = validation.positive_int(peaks_per_filter or 2 * max(per_layer),
                                        "peaks_per_filter")
        t0 = time.perf_counter()
        probe = LayerPeaks(model, layers, count, caller="ExplanatoryGraph.fit")
        peaks = probe.collect(images, batch_size, verbose)
        read = time.perf_counter() - t0
        h, w = probe.image_size
        centre = np.array([w / 2.0, h / 2.0], np.float32)
        log_area = math.log(h * w)
        rng = np.random.default_rng(validation.non_negative_int(seed, "seed"))
        anchor = _anchor(peaks[0], centre, anchor_kind)
        params, above = [], (np.zeros((len(anchor), 0, 2), np.float32),
                             np.zeros((len(anchor), 0), np.float32), anchor)
        for l, (pos, act) in enumerate(peaks):
            nodes = per_layer[l]
            pos = pos - centre
            top = act[..., 0]  # each map's strongest peak [N, D]
            fired = (top > 0).sum(0)
            scale = np.where(fired > 0, top.sum(0) / np.maximum(fired, 1), 1.0).astype(np.float32)
            act = act / scale[None, :, None]
            jump = min(probe.fields[l].rows.jump, probe.fields[l].cols.jump)
            layer = _fit_layer(pos, act, above, nodes, parents, iterations, init_iterations,
                               (jump / 2.0) ** 2, log_area, rng, batch_size)
            layer.scale = scale
            params.append(layer)
            inf = _infer_layer(pos, act, above, layer, log_area, batch_size, min_activation)
            above = (inf[0].reshape(len(pos), -1, 2), inf[4].reshape(len(pos), -1), anchor)
            if verbose:
                present = inf[3].reshape(len(pos), -1).mean(0)
                print(f"ExplanatoryGraph: layer {probe.layers[l]} ({probe.filters[l]} filters x "
                      f"{nodes} nodes): a node is on {present.mean():.0%} of the images")
        info = {"images": int(len(peaks[0][0])), "iterations": iterations,
                "init_iterations": init_iterations, "seed": int(seed),
                "min_activation": float(min_activation), "anchor": anchor_kind,
                "seconds": round(time.perf_counter() - t0, 2), "read_seconds": round(read, 2)}
        return cls(probe.layers, probe.filters, probe.image_size, per_layer, parents, count, params,
                   info, model=model, probe=probe)

    # ---- inference ---------------------------------------------------------------------
    def _probe_for(self, model):
        if model is None:
            if self._model is None:
                raise ValueError("This graph was loaded without its model: pass `model=` "
                                 "(the CNN it was fitted on) to infer, or load it with one.")
            model = self._model
        if self._probe is None or model is not self._model:
            probe = LayerPeaks(model, self.layers, self.peaks_per_filter,
                               caller="ExplanatoryGraph.infer")
            if probe.filters != self.filters or probe.image_size != self.image_size:
                raise ValueError(
                    f"The model's layers {self.layers} have {probe.filters} filters on "
                    f"{probe.image_size} images; the graph was fitted on {self.filters} filters "
                    f"on {self.image_size} images. Pass the model the graph was fitted on.")
            self._model, self._probe = model, probe
        return self._probe

    def receptive_fields(self, model=None):
        """The graph layers' receptive fields in ``model`` (default: the graph's model)."""
        return self._probe_for(model).fields

    def infer(self, images, model=None, batch_size=64, verbose=0):
        """Each node's position, score and presence on ``images`` (array or dataset, as in
        :meth:`fit`), streamed. Returns :class:`GraphInference`."""
        probe = self._probe_for(model)
        h, w = self.image_size
        centre = np.array([w / 2.0, h / 2.0], np.float32)
        log_area = math.log(h * w)
        out = {k: [] for k in ("positions", "scores", "log_likelihood", "present")}
        for batch in probe.batches(images, batch_size, verbose):
            n = len(batch[0][0])
            anchor = _anchor(batch[0], centre, self.anchor)
            above = (np.zeros((n, 0, 2), np.float32), np.zeros((n, 0), np.float32), anchor)
            parts = {k: [] for k in out}
            for layer, (pos, act) in zip(self.params, batch):
                n = len(pos)
                pos, act = pos - centre, act / layer.scale[None, :, None]
                p, a, ll, present, weight = _infer_layer(pos, act, above, layer, log_area,
                                                         batch_size, self.min_activation)
                above = (p.reshape(n, -1, 2), weight.reshape(n, -1), anchor)
                parts["positions"].append(p.reshape(n, -1, 2) + centre)
                parts["scores"].append((a * layer.scale[None, :, None]).reshape(n, -1))
                parts["log_likelihood"].append(ll.reshape(n, -1))
                parts["present"].append(present.reshape(n, -1))
            for k in out:
                out[k].append(np.concatenate(parts[k], axis=1))
        if not out["positions"]:
            raise ValueError("`images` holds no image")
        return GraphInference(*(np.concatenate(out[k]) for k in
                                ("positions", "scores", "log_likelihood", "present")))

    # ---- files -------------------------------------------------------------------------
    def save(self, path):
        """Write ``path/graph.json`` (structure, settings) and ``path/graph.npz`` (arrays)."""
        os.makedirs(path, exist_ok=True)
        meta = {"format": FORMAT, "layers": self.layers, "filters": self.filters,
                "image_size": list(self.image_size), "nodes_per_filter": self.nodes_per_filter,
                "parents_per_node": self.parents_per_node,
                "peaks_per_filter": self.peaks_per_filter, "info": self.info}
        arrays = {f"{k}_{l}": getattr(p, k) for l, p in enumerate(self.params) for k in _ARRAYS}
        np.savez(os.path.join(path, "graph.npz"), **arrays)
        with open(os.path.join(path, "graph.json"), "w") as f:
            json.dump(meta, f, indent=1)
        return path

    @classmethod
    def load(cls, path, model=None):
        """A graph written by :meth:`save` (``model``: the CNN it describes, for :meth:`infer`)."""
        meta_path = os.path.join(path, "graph.json")
        if not os.path.isfile(meta_path):
            raise FileNotFoundError(f"No explanatory graph at {path!r} (expected graph.json "
                                    "and graph.npz written by ExplanatoryGraph.save)")
        with open(meta_path) as f:
            meta = json.load(f)
        if meta.get("format") != FORMAT:
            raise ValueError(f"{meta_path} is not a {FORMAT} file. Received format: "
                             f"{meta.get('format')!r}")
        with np.load(os.path.join(path, "graph.npz"), allow_pickle=False) as z:
            params = [_Layer(*(z[f"{k}_{l}"] for k in _ARRAYS)) for l in range(len(meta["layers"]))]
        return cls(meta["layers"], meta["filters"], meta["image_size"], meta["nodes_per_filter"],
                   meta["parents_per_node"], meta["peaks_per_filter"], params, meta["info"],
                   model=model)


def _per_layer(nodes_per_filter, count):
    """Nodes per filter as a list, one per layer (validated)."""
    values = list(nodes_per_filter) if isinstance(nodes_per_filter, (list, tuple)) else \
        [nodes_per_filter] * count
    if len(values) != count:
        raise ValueError(f"`nodes_per_filter` must be one number or one per layer ({count}). "
                         f"Received: nodes_per_filter={nodes_per_filter!r}")
    return [validation.positive_int(v, "nodes_per_filter") for v in values]


def _anchor(top_peaks, centre, kind):
    """[n, 2] the pseudo-node every layer may hang from (centred coordinates): the image
    centre (``"image"``), or the activation-weighted centroid of the top layer's peaks
    (``"centroid"``: where the object is; the centre on an image where nothing fires)."""
    pos, act = top_peaks
    n = len(pos)
    if kind == "image":
        return np.zeros((n, 2), np.float32)
    w = act.reshape(n, -1).astype(np.float64)
    total = w.sum(1, keepdims=True)
    mean = (w[..., None] * (pos.reshape(n, -1, 2) - centre)).sum(1) / np.maximum(total, 1e-12)
    return np.where(total > 0, mean, 0.0).astype(np.float32)


def _candidates(above, start, stop):
    """The candidate parents' positions and weights for images ``start:stop``: the layer
    above's nodes, then the anchor pseudo-node (always present)."""
    return (np.concatenate([above[0][start:stop], above[2][start:stop, None]], 1),
            np.concatenate([above[1][start:stop], np.ones((stop - start, 1), np.float32)], 1))


@tf.function(autograph=False, reduce_retracing=True)
def _statistics(pos, act, cand_pos, cand_w, parents, delta, var, log_prior, log_area):
    spatial = em.spatial_log_likelihood(pos, cand_pos, cand_w, parents, delta, var, log_area)
    mass = em.shares(act, spatial, log_prior, log_area)
    return em.pair_statistics(mass, pos, cand_pos, cand_w)


@tf.function(autograph=False, reduce_retracing=True)
def _inference(pos, act, cand_pos, cand_w, parents, delta, var, log_prior, log_area,
               min_activation):
    spatial = em.spatial_log_likelihood(pos, cand_pos, cand_w, parents, delta, var, log_area)
    return em.infer_nodes(pos, act, spatial, log_prior, log_area, min_activation)


def _f32(*arrays):
    return [tf.constant(np.asarray(a, np.float32)) for a in arrays]


def _fit_layer(pos, act, above, nodes, parents, iterations, init_iterations, floor2, log_area,
               rng, batch_size):
    n, d = pos.shape[:2]
    centres, var = em.seed_centres(pos, act, nodes, rng)
    pseudo = above[0].shape[1]
    layer = _Layer(np.full((d, nodes, 1), pseudo, np.int32), centres[:, :, None],
                   np.maximum(var, floor2)[:, :, None],
                   np.log(np.concatenate([np.full((d, nodes), 0.9 / nodes),
                                          np.full((d, 1), 0.1)], 1)), None)
    chunk = max(batch_size, 256)
    parents = min(parents, pseudo + 1)
    for it in range(init_iterations + iterations):
        relative = pseudo > 0 and it >= init_iterations
        sums = None
        for a, b in _chunks(n, chunk):
            cand_pos, cand_w = _candidates(above, a, b)
            if not relative:  # on its own: the image pseudo-node is the only candidate
                cand_pos, cand_w = cand_pos[:, -1:], cand_w[:, -1:]
            out = _statistics(*_f32(pos[a:b], act[a:b], cand_pos, cand_w),
                              tf.constant(layer.parents if relative else
                                          np.zeros_like(layer.parents)),
                              *_f32(layer.delta, layer.var, layer.log_prior), log_area)
            out = [o.numpy().astype(np.float64) for o in out]
            sums = out if sums is None else [s + o for s, o in zip(sums, out)]
        chosen, delta, var, log_prior = em.m_step(*sums, parents if relative else 1, floor2,
                                                  log_area)
        if not relative and pseudo > 0:
            chosen = np.full_like(chosen, pseudo)
        layer = _Layer(chosen, delta, var, log_prior, None)
    return layer


def _infer_layer(pos, act, above, layer, log_area, batch_size, min_activation):
    """Node positions etc. (numpy [n, D, N, ...]) of one layer on ``n`` images."""
    n = len(pos)
    parts = []
    for a, b in _chunks(n, max(batch_size, 256)):
        cand_pos, cand_w = _candidates(above, a, b)
        out = _inference(*_f32(pos[a:b], act[a:b], cand_pos, cand_w),
                         tf.constant(layer.parents),
                         *_f32(layer.delta, layer.var, layer.log_prior), log_area,
                         float(min_activation))
        parts.append([o.numpy() for o in out])
    return [np.concatenate(v) for v in zip(*parts)]
