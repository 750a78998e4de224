"""The report's node pictures: patches cut where the nodes are, laid out by node id."""
import numpy as np

from keras_icnn.evaluation.graph_section import layer_picture, node_patches
from keras_icnn.graphs import GraphInference
from keras_icnn.models.receptive_field import AxisField, ReceptiveField


def test_patches_are_cut_around_each_nodes_best_positions():
    images = np.zeros((3, 32, 32, 3), np.float32)
    images[0, 4:8, 4:8] = 1.0  # a white square around (6, 6) on image 0
    images[2, 20:24, 24:28] = [1.0, 0.0, 0.0]  # a red one around (26, 22) on image 2
    positions = np.zeros((3, 2, 2))
    positions[0, 0], positions[2, 1] = [6.0, 6.0], [26.0, 22.0]
    scores = np.array([[2.0, 0.0], [1.0, 0.5], [0.0, 3.0]])
    present = np.array([[True, False], [True, True], [False, True]])
    field = AxisField(8.0, 1.0, 0.5, 32)  # receptive field 8 px: a 4 x 4 window
    inf = GraphInference(positions, scores, np.zeros_like(scores), present)
    patches = node_patches(images, inf, [0], [2], [ReceptiveField(field, field)], (32, 32),
                           count=3, side=4)
    assert patches.shape == (2, 3, 4, 4, 3)
    # node 0: image 0 first (score 2), then image 1 (black), then blank (absent from image 2)
    assert patches[0, 0].min() == 255 and patches[0, 1].max() == 0 and patches[0, 2].min() == 255
    # node 1: image 2 first (its red square), then image 1; not present on image 0: blank
    np.testing.assert_array_equal(patches[1, 0].reshape(-1, 3), [[255, 0, 0]] * 16)
    assert patches[1, 1].max() == 0 and patches[1, 2].min() == 255


def test_layer_picture_puts_node_k_at_row_k_div_columns():
    patches = np.zeros((5, 4, 3, 3, 3), np.uint8)
    patches[3] = 7  # node 3's four patches
    picture = layer_picture(patches, columns=2)
    assert picture.shape == (3 * 8, 2 * 8, 3)  # cells of 2 x 3 pixels + 2-pixel gaps
    cell = picture[8:16, 8:16]  # row 1, column 1: node 3
    np.testing.assert_array_equal(cell[:6, :6], 7)
    assert (cell[6:] == 255).all() and (picture[16:, 8:] == 255).all()  # gap; no node 5
