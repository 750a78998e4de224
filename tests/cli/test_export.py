"""`keras-icnn-export` (keras_icnn/cli/export.py): its documented command lines parse."""
from tests.cli.conftest import check_examples


def test_documented_command_lines_parse():
    assert check_examples("export", "keras-icnn-export") >= 1
