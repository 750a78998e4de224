import inspect

import numpy as np
import pytest

pytest.importorskip("matplotlib")

from keras_icnn import viz  # noqa: E402


def test_functions_draw_into_given_axes_and_return_the_figure(tmp_path):
    import matplotlib.pyplot as plt

    rng = np.random.RandomState(0)
    images = rng.uniform(0, 255, (3, 16, 16, 3))
    maps = rng.uniform(0, 1, (3, 4, 4, 5))
    fig, ax = plt.subplots()
    assert viz.filter_heatmaps(images, maps, [1, 3], ax=ax) is fig
    assert len(ax.images) == 1 and ax.images[0].get_array().shape == (32, 48, 3)
    fig, ax = plt.subplots()
    assert viz.matrix_heatmap(rng.uniform(size=(3, 5)), "filter", "class", "M", ax=ax) is fig
    fig, axes = plt.subplots(1, 2)
    assert viz.part_contributions(images[0], [0.5, -0.1], ["a", "b"], "cat", 2.0, ax=axes) is fig
    plt.close("all")
    # Without ax: a new figure, written only when a path is given.
    path = tmp_path / "m.png"
    fig = viz.matrix_heatmap(np.eye(3), "x", "y", "t", path=str(path))
    assert hasattr(fig, "savefig") and path.read_bytes()[:4] == b"\x89PNG"
    assert viz.to_png(fig)[:4] == b"\x89PNG"


def test_overlay_mosaic_rows_are_filters():
    images = np.zeros((2, 4, 4, 3))
    maps = np.zeros((2, 4, 4, 3))
    maps[1, 0, 0, 2] = 1.0
    mosaic, (h, w) = viz.overlay_mosaic(images, maps, [2, 0])
    assert mosaic.shape == (8, 8, 3) and (h, w) == (4, 4)
    # Filter 2's peak (image 1, unit (0, 0)) is the hottest point of row 0, column 1.
    assert np.unravel_index(mosaic[:4, :, 0].argmax(), (4, 8)) == (0, 4)


def test_never_selects_a_backend():
    assert "matplotlib.use" not in inspect.getsource(viz)
