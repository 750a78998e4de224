"""`keras-icnn-train-csg` (keras_icnn/cli/train_csg.py): its documented command lines parse."""
from tests.cli.conftest import check_examples


def test_documented_command_lines_parse():
    assert check_examples("train_csg", "keras-icnn-train-csg") >= 1
