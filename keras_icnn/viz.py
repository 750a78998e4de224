"""Pictures of what filters mean (needs the ``viz`` extra: matplotlib).

Every function writes one PNG and returns its path.
"""

import numpy as np

from keras_icnn.metrics.interpretability import upsample_maps


def available():
    """Whether matplotlib (the ``viz`` extra) is installed."""
    import importlib.util

    return importlib.util.find_spec("matplotlib") is not None


def _plt():
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as err:  # pragma: no cover - depends on the extra
        raise ImportError("keras_icnn.viz needs matplotlib: pip install 'keras_icnn[viz]'") from err
    return plt


def filter_heatmaps(path, images, maps, filters, title=None, filter_labels=None):
    """ICNN Fig. 4: each row one filter, each column one image, map over image.

    Args:
        images: [N, H, W, 3] uint8.
        maps: [N, h, w, F] the layer's maps for those images.
        filters: filter indices to show (rows).
        filter_labels: optional text per row (e.g. "f12: head of cat").
    """
    plt = _plt()
    images = np.asarray(images)
    n = len(images)
    up = upsample_maps(np.asarray(maps)[..., list(filters)], images.shape[1:3])
    fig, axes = plt.subplots(len(filters), n, figsize=(1.3 * n, 1.3 * len(filters)), squeeze=False)
    for r, f in enumerate(filters):
        peak = max(float(up[..., r].max()), 1e-12)
        for c in range(n):
            ax = axes[r, c]
            ax.imshow(images[c])
            ax.imshow(up[c, :, :, r], cmap="jet", alpha=0.5, vmin=0, vmax=peak)
            ax.set_xticks([])
            ax.set_yticks([])
        label = filter_labels[r] if filter_labels else f"filter {f}"
        axes[r, 0].set_ylabel(label, fontsize=7)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def matrix_heatmap(path, matrix, xlabel, ylabel, title, yticklabels=None, vmin=None, vmax=None):
    """A heatmap of a matrix (part association, MI matrix, gate matrix)."""
    plt = _plt()
    m = np.asarray(matrix)
    fig, ax = plt.subplots(figsize=(min(2 + 0.08 * m.shape[1], 14), 1.2 + 0.35 * m.shape[0]))
    im = ax.imshow(m, aspect="auto", cmap="viridis", vmin=vmin, vmax=vmax, interpolation="nearest")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if yticklabels is not None:
        ax.set_yticks(range(len(yticklabels)))
        ax.set_yticklabels(yticklabels, fontsize=8)
    ax.set_title(title, fontsize=10)
    fig.colorbar(im, ax=ax)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def part_contributions(path, image, contributions, part_names, class_name, score):
    """ICNN's "0.4 of the score from the head, 0.2 from the wing": one prediction explained."""
    plt = _plt()
    fig, (a0, a1) = plt.subplots(1, 2, figsize=(7, 2.8), gridspec_kw={"width_ratios": [1, 1.6]})
    a0.imshow(np.asarray(image))
    a0.set_title(f"predicted: {class_name} ({score:.2f})", fontsize=9)
    a0.axis("off")
    values = np.asarray(contributions, np.float64)
    colors = ["tab:green" if v >= 0 else "tab:red" for v in values]
    a1.barh(range(len(values)), values, color=colors)
    a1.set_yticks(range(len(values)))
    a1.set_yticklabels(part_names, fontsize=8)
    a1.invert_yaxis()
    a1.set_xlabel("share of the class score (gradient x activation)", fontsize=8)
    for i, v in enumerate(values):
        a1.text(v, i, f" {v:.2f}", va="center", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
