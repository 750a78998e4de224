"""`keras-icnn-pretrain` (keras_icnn/cli/pretrain.py): its documented command lines parse (the
command itself runs end to end in tests/test_console_scripts.py)."""
from tests.cli.conftest import check_examples


def test_documented_command_lines_parse():
    assert check_examples("pretrain", "keras-icnn-pretrain") >= 2
