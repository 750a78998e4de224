"""Pictures of what filters mean (needs the ``viz`` extra: matplotlib).

Every function draws into ``ax=`` when given (a notebook's subplot) or into a
new figure, returns the figure, and writes a PNG only when ``path=`` is given.
Nothing here selects a matplotlib backend: new figures are
``matplotlib.figure.Figure`` objects, which need none (and leave pyplot's
state alone).

Example:
    >>> fig, ax = plt.subplots()
    >>> keras_icnn.viz.matrix_heatmap(gate, "filter", "class", "G", ax=ax)
    >>> keras_icnn.viz.filter_heatmaps(images, maps, [3, 7], path="filters.png")
"""

import numpy as np

from keras_icnn import validation
from keras_icnn.metrics.interpretability import upsample_maps


def available():
    """Whether matplotlib (the ``viz`` extra) is installed."""
    import importlib.util

    return importlib.util.find_spec("matplotlib") is not None


def _figure(ax, figsize, ncols=1, width_ratios=None):
    """``(figure, axes)``: ``ax``'s figure, or a new ``Figure`` with ``ncols`` axes."""
    if ax is not None:
        if hasattr(ax, "figure"):  # one Axes
            return ax.figure, ax
        axes = tuple(np.ravel(ax))  # a list, tuple or array of Axes (plt.subplots' grid)
        return axes[0].figure, axes
    try:
        from matplotlib.figure import Figure
    except ImportError as err:  # pragma: no cover - depends on the extra
        raise ImportError("keras_icnn.viz needs matplotlib: pip install 'keras_icnn[viz]'") from err
    fig = Figure(figsize=figsize)
    if ncols == 1:
        return fig, fig.add_subplot(1, 1, 1)
    axes = fig.subplots(1, ncols, gridspec_kw={"width_ratios": width_ratios})
    return fig, tuple(axes)


def _finish(fig, path, dpi, own):
    if own:
        fig.tight_layout()
    if path:
        fig.savefig(path, dpi=dpi)
    return fig


def overlay_mosaic(images, maps, filters):
    """The filters' maps over the images as one RGB mosaic [rows * H, cols * W, 3] in [0, 1]:
    row ``r`` is filter ``filters[r]``, column ``c`` image ``c``; each row's heat is scaled
    by its own maximum (jet colours, half transparent)."""
    from matplotlib import colormaps

    images = validation.array_of_rank(images, "images", 4, "[N, H, W, 3]").astype(np.float32)
    images = images / 255.0 if images.max() > 1.0 else images
    maps = validation.array_of_rank(maps, "maps", 4, "[N, h, w, F]")
    filters = [int(f) for f in filters]
    if any(not 0 <= f < maps.shape[-1] for f in filters):
        raise ValueError(f"`filters` must be indices in [0, {maps.shape[-1]}) (the maps' "
                         f"filters). Received: filters={filters}")
    n, h, w = images.shape[:3]
    up = upsample_maps(maps[..., filters], (h, w))
    jet = colormaps["jet"]
    rows = []
    for r in range(len(filters)):
        peak = max(float(up[..., r].max()), 1e-12)
        heat = jet(np.clip(up[..., r] / peak, 0, 1))[..., :3]  # [n, h, w, 3]
        rows.append(np.concatenate(list(0.5 * images[..., :3] + 0.5 * heat), axis=1))
    return np.concatenate(rows, axis=0), (h, w)


def filter_heatmaps(images, maps, filters, title=None, filter_labels=None, ax=None, path=None):
    """ICNN Fig. 4: each row one filter, each column one image, its map over the image.

    Args:
        images: [N, H, W, 3] (0-255 or 0-1).
        maps: [N, h, w, F] the layer's maps for those images.
        filters: filter indices to show (rows).
        filter_labels: optional text per row (e.g. "f12: head of cat").
        ax: draw into this axes (default: a new figure).
        path: also write a PNG there.

    Returns:
        The figure.
    """
    mosaic, (h, w) = overlay_mosaic(images, maps, filters)
    own = ax is None
    fig, ax = _figure(ax, (1.3 * len(images) + 1.2, 1.3 * len(filters) + 0.4))
    ax.imshow(mosaic)
    ax.set_xticks([])
    ax.set_yticks([h * (r + 0.5) for r in range(len(filters))])
    ax.set_yticklabels(filter_labels or [f"filter {f}" for f in filters], fontsize=7)
    if title:
        ax.set_title(title, fontsize=10)
    return _finish(fig, path, 100, own)


def matrix_heatmap(matrix, xlabel, ylabel, title, yticklabels=None, vmin=None, vmax=None,
                   ax=None, path=None):
    """A heatmap of a matrix (part association, MI matrix, gate matrix); returns the figure."""
    m = validation.array_of_rank(matrix, "matrix", 2, "[rows, columns]")
    own = ax is None
    fig, ax = _figure(ax, (min(2 + 0.08 * m.shape[1], 14), 1.2 + 0.35 * m.shape[0]))
    im = ax.imshow(m, aspect="auto", cmap="viridis", vmin=vmin, vmax=vmax, interpolation="nearest")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if yticklabels is not None:
        ax.set_yticks(range(len(yticklabels)))
        ax.set_yticklabels(yticklabels, fontsize=8)
    ax.set_title(title, fontsize=10)
    fig.colorbar(im, ax=ax)
    return _finish(fig, path, 100, own)


def part_contributions(image, contributions, part_names, class_name, score, ax=None, path=None):
    """ICNN's "0.4 of the score from the head, 0.2 from the wing": one prediction explained.

    ``ax``: a pair of axes (image, bars), one axes (bars only) or None (a new figure).
    Returns the figure.
    """
    own = ax is None
    fig, axes = _figure(ax, (7, 2.8), ncols=2, width_ratios=[1, 1.6])
    if isinstance(axes, tuple):
        a0, a1 = axes
        shown = np.asarray(image, np.float32)
        a0.imshow(shown / 255.0 if shown.max() > 1.0 else shown)
        a0.set_title(f"predicted: {class_name} ({score:.2f})", fontsize=9)
        a0.axis("off")
    else:
        a1 = axes
        a1.set_title(f"predicted: {class_name} ({score:.2f})", fontsize=9)
    values = np.asarray(contributions, np.float64)
    colors = ["tab:green" if v >= 0 else "tab:red" for v in values]
    a1.barh(range(len(values)), values, color=colors)
    a1.set_yticks(range(len(values)))
    a1.set_yticklabels(part_names, fontsize=8)
    a1.invert_yaxis()
    a1.set_xlabel("share of the class score (gradient x activation)", fontsize=8)
    for i, v in enumerate(values):
        a1.text(v, i, f" {v:.2f}", va="center", fontsize=8)
    return _finish(fig, path, 110, own)


def to_png(fig, dpi=100):
    """The figure as PNG bytes (for inlining into HTML)."""
    import io

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi)
    return buffer.getvalue()


def explanation(image, explained, index=0, class_names=None, ax=None, path=None):
    """One prediction explained (see :func:`keras_icnn.explain.explain`): the image, Grad-CAM
    of the target, and the maps of the filters that contribute most, each with its peak
    marked and its share of the target logit.

    Args:
        image: the explained image [H, W, 3] (0-255 or 0-1).
        explained: an :class:`~keras_icnn.explain.Explanation` with heatmaps.
        index: which of its images ``image`` is.
        class_names: optional names of the classes.
        ax: a sequence of ``2 + k`` axes (k = the heatmaps per image), or None.

    Returns:
        The figure.
    """
    if explained.heatmaps is None:
        raise ValueError("explanation() draws the filters' heatmaps: call explain(..., "
                         "heatmaps='top') (the default)")
    filters = explained.heatmap_filters[index]
    own = ax is None
    fig, axes = _figure(ax, (2.2 * (2 + len(filters)), 2.6), ncols=2 + len(filters),
                        width_ratios=[1] * (2 + len(filters)))
    shown = np.asarray(image, np.float32)
    shown = shown / 255.0 if shown.max() > 1.0 else shown
    target = int(explained.target[index])
    name = class_names[target] if class_names else f"class {target}"
    axes[0].imshow(shown)
    axes[0].set_title(f"target: {name}\nlogit {explained.target_logit[index]:.2f}", fontsize=8)
    axes[1].imshow(shown)
    axes[1].imshow(explained.gradcam[index], cmap="jet", alpha=0.5)
    axes[1].set_title("Grad-CAM", fontsize=8)
    for a, f in zip(axes[2:], filters):
        a.imshow(shown)
        a.imshow(explained.heatmaps[index, list(filters).index(f)], cmap="jet", alpha=0.5)
        x, y = explained.part_locations[index, f]
        a.plot([x], [y], marker="o", markersize=9, markerfacecolor="none",
               markeredgecolor="white", markeredgewidth=2)
        category = int(explained.filter_classes[f])
        label = "" if category < 0 else (
            f", {class_names[category]}" if class_names else f", class {category}")
        a.set_title(f"filter {f}{label}\nshare {explained.contribution_shares[index, f]:+.2f}",
                    fontsize=8)
    for a in axes:
        a.axis("off")
    return _finish(fig, path, 100, own)
