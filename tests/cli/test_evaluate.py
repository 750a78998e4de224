"""`keras-icnn-evaluate` (keras_icnn/cli/evaluate.py): its documented command lines parse."""
from tests.cli.conftest import check_examples


def test_documented_command_lines_parse():
    assert check_examples("evaluate", "keras-icnn-evaluate") >= 1
