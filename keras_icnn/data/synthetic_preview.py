"""A preview of the synthetic data (``keras-icnn-preview``, ``make preview``): a grid of
examples with their part masks' outlines and landmarks (matplotlib)."""
import argparse
import os
import sys

import numpy as np

from keras_icnn.data.synthetic_parts import (
    CATEGORY_NAMES, PART_NAMES, SPLITS, SYNTHETIC_CONFIGS, make_examples, synthetic_config)


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
