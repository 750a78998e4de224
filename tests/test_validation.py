"""Argument checks and their messages (validation.py), by hand."""
import numpy as np
import pytest

from keras_icnn import validation


def test_labels_np_accepts_whole_floats_and_columns():
    np.testing.assert_array_equal(validation.labels_np(np.array([[0.0], [2.0]]), 3), [0, 2])
    with pytest.raises(TypeError, match=r"`labels` must be whole numbers .* Received: \[1\.5\]"):
        validation.labels_np([0.0, 1.5], 3)
    with pytest.raises(ValueError, match=r"`labels` must lie in \[0, 3\)\. Received: min=0, max=3"):
        validation.labels_np([0, 3], 3)
    with pytest.raises(ValueError, match=r"one label per example \(3\)\. Received: 2 labels"):
        validation.labels_np([0, 1], 3, count=3)
    with pytest.raises(TypeError, match=r"integer class indices\. Received: dtype=bool"):
        validation.labels_np([True, False], 3)


def test_numbers_and_counts_name_the_argument_and_the_rule():
    assert validation.positive_int(3.0, "steps") == 3
    for bad, error in ((0, ValueError), (True, TypeError), (2.5, TypeError), ("x", TypeError)):
        with pytest.raises(error, match="`steps`"):
            validation.positive_int(bad, "steps")
    assert validation.number_in("0.5", "p", 0, 1) == 0.5
    assert validation.number_in(1, "p", 0, 1) == 1.0  # closed bounds by default
    with pytest.raises(ValueError, match=r"`p` must lie in \(0, 1\)"):
        validation.number_in(1, "p", 0, 1, low_open=True, high_open=True)
    for bad in (float("nan"), float("inf")):
        with pytest.raises(ValueError, match="`p`"):
            validation.number_in(bad, "p")


def test_check_choice_and_writable_directory(tmp_path):
    class Config:
        mode = "fast"

    validation.check_choice(Config, "mode", ("fast", "slow"))
    with pytest.raises(ValueError, match=r"`mode` must be one of .*'slow'.* Received: mode='fast'"):
        validation.check_choice(Config, "mode", ("slow",))
    made = validation.writable_directory(str(tmp_path / "a" / "b"), "output_dir")
    assert (tmp_path / "a" / "b").is_dir() and made.endswith("b")
    (tmp_path / "file").write_text("x")
    with pytest.raises(ValueError, match="output_dir"):
        validation.writable_directory(str(tmp_path / "file"), "output_dir")
