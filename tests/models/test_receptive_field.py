import keras
import numpy as np

from keras_icnn import metrics


def test_receptive_field_hand_calculation():
    inputs = keras.Input((16, 18, 3))
    x = keras.layers.Conv2D(4, 3, padding="valid", name="c1")(inputs)
    x = keras.layers.ReLU()(x)
    x = keras.layers.MaxPooling2D(2, name="p1")(x)
    x = keras.layers.Conv2D(4, 3, strides=2, padding="same", name="c2")(x)
    model = keras.Model(inputs, x)
    rf = metrics.receptive_field(model, "c2")
    # rows: 16 -> c1 14 (start 1.5) -> p1 7 (size 4, jump 2, start 2.0) -> c2 same s2 on 7:
    # total pad 2, left 1 -> size 8, jump 4, start 2.0
    assert rf.rows == metrics.AxisField(size=8.0, jump=4.0, start=2.0, length=4)
    # cols: 18 -> 16 (start 1.5) -> 8 (start 2.0) -> same s2 on 8: total pad 1, left 0 ->
    # start 2.0 + 1 * 2 = 4.0
    assert rf.cols == metrics.AxisField(size=8.0, jump=4.0, start=4.0, length=4)
    x_c, y_c = rf.centers(np.array([0, 3]), np.array([1, 2]))
    np.testing.assert_allclose(x_c, [8.0, 12.0])
    np.testing.assert_allclose(y_c, [2.0, 14.0])
    p1 = metrics.receptive_field(model, "p1")
    assert (p1.rows.size, p1.rows.jump, p1.rows.start) == (4.0, 2.0, 2.0)
