"""`keras-icnn-train-icnn` (keras_icnn/cli/train_icnn.py): its documented command lines parse."""
from tests.cli.conftest import check_examples


def test_documented_command_lines_parse():
    assert check_examples("train_icnn", "keras-icnn-train-icnn") == 4  # continuations joined
