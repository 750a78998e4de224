"""The package's commands: ``keras-icnn-train-icnn``, ``-train-csg``, ``-train-explainer``,
``-evaluate``, ``-detect-adversarial``, ``-export`` and ``-pretrain`` (setup.py's console_scripts, launched
through the top-level ``keras_icnn_cli`` module), also run as ``python trainers/<name>.py``.

Each command module has a docstring (its ``--help`` text), ``define_flags(module_name)``,
``main(argv)`` and ``run()``; the flags are defined when the command runs, not on import,
so importing every command in one process (the tests do) defines nothing twice.

Example:
    >>> from keras_icnn.cli import train_csg
    >>> train_csg.run()          # parses sys.argv: what keras-icnn-train-csg does
"""
import sys

COMMANDS = ("train_icnn", "train_csg", "train_explainer", "evaluate", "detect_adversarial",
            "export", "pretrain")


def run_command(doc, define_flags, main):
    """Run ``main`` as an absl app whose ``--help`` shows ``doc`` and the flags
    ``define_flags(module_name)`` registers for the program being run."""
    from absl import app

    # absl's --help prints the main module's docstring: the command's, whatever launched it.
    sys.modules["__main__"].__doc__ = doc
    define_flags(sys.argv[0])
    app.run(main)
