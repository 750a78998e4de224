"""`keras-icnn-train-explainer` (keras_icnn/cli/train_explainer.py): its documented command lines parse."""
from tests.cli.conftest import check_examples


def test_documented_command_lines_parse():
    assert check_examples("train_explainer", "keras-icnn-train-explainer") >= 1
