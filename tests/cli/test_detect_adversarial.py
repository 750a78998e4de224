"""`keras-icnn-detect-adversarial` (keras_icnn/cli/detect_adversarial.py): its documented command lines parse."""
import pytest
from absl import flags

from tests.cli.conftest import check_examples


def test_documented_command_lines_parse():
    assert check_examples("detect_adversarial", "keras-icnn-detect-adversarial") >= 1


def test_a_placeholder_value_in_an_example_is_caught():
    doc = "Detect.\n\nExamples:\n    keras-icnn-detect-adversarial --models=a.keras,b.keras --num_test=...\n"
    with pytest.raises(flags.IllegalFlagValueError, match="num_test"):
        check_examples("detect_adversarial", "keras-icnn-detect-adversarial", doc)
