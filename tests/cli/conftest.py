"""What every command's test checks: its documented example command lines parse with its own
flags (a renamed flag or a bad value in a docstring turns CI red), in a fresh FlagValues."""
import importlib
import re
import shlex
from unittest import mock

from absl import flags


def command_flags(command):
    """The flags ``keras_icnn.cli.<command>`` defines, in a fresh ``FlagValues``."""
    module = importlib.import_module(f"keras_icnn.cli.{command}")
    fv = flags.FlagValues()
    with mock.patch.object(flags, "FLAGS", fv):
        module.define_flags("prog")
    return module, fv


def example_lines(doc):
    """The command lines of a docstring's ``Example(s):`` section, continuations joined,
    comments and environment assignments dropped."""
    section = re.split(r"\n\s*Examples?:\n", doc, maxsplit=1)[1]
    text = section.split("\n\n")[0]
    if "keras-icnn-" not in text:  # a second paragraph of examples
        text = section
    joined = re.sub(r"\\\n\s*", "", re.sub(r",\\\n", ",", text))
    lines = []
    for line in joined.splitlines():
        line = line.split("#")[0].strip()
        if line.startswith("keras-icnn-") or re.match(r"^[A-Z_]+=", line):
            words = [w for w in shlex.split(line) if not re.match(r"^[A-Z_]+=", w)]
            if words and words[0].startswith("keras-icnn-"):
                lines.append(words)
    return lines


def check_examples(command, script, doc=None):
    """Each example line of the command's docstring (or ``doc``) names the command's console
    script and parses with the command's flags; returns how many lines were checked."""
    module, _ = command_flags(command)
    lines = example_lines(doc or module.__doc__)
    assert lines, f"{command}: no example command line in its docstring"
    for words in lines:
        assert words[0] == script, f"{command}'s docstring runs {words[0]}, not {script}"
        _, fv = command_flags(command)
        fv(["prog"] + words[1:])  # raises on an unknown flag or a bad value
    return len(lines)
