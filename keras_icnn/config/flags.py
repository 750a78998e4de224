"""Command-line flags generated from the config dataclasses: a field declared with
:func:`option` (default, help, choices and deprecated aliases written once) becomes one absl flag
(:func:`define_flags`), and :func:`config_from_flags` fills the dataclass back from them.
Every command's flags come from here, the export command's included.
"""

import dataclasses

def option(default, help, choices=None, aliases=(), kind=None, required=False):  # noqa: A002
    """A config field with its flag's help text and, optionally, its allowed values, the
    deprecated flag names that still set it (each prints a one-line notice), its type when
    the default (None) does not say it (``kind=bool``: a tri-state flag), and whether the
    command needs it (``required``: no default)."""
    return dataclasses.field(default=default, metadata={
        "help": help, "choices": choices, "aliases": tuple(aliases), "kind": kind,
        "required": bool(required)})


def define_alias(old, new, flag_values=None, module_name=None):
    """Define ``--old`` as a deprecated alias of the already defined ``--new``: same parser
    (and repeatable when ``--new`` is), default None; :func:`resolve_aliases` copies it."""
    from absl import flags

    fv = flags.FLAGS if flag_values is None else flag_values
    target = fv[new]
    text = f"Deprecated alias of --{new}."
    if isinstance(target, flags.BooleanFlag):
        flags.DEFINE_flag(flags.BooleanFlag(old, None, text), fv, module_name=module_name)
    elif isinstance(target, flags.MultiFlag):
        flags.DEFINE_multi(target.parser, target.serializer, old, None, text, flag_values=fv,
                           module_name=module_name)
    else:
        flags.DEFINE(target.parser, old, None, text, flag_values=fv,
                     serializer=target.serializer, module_name=module_name)
    fv[old].deprecated_alias_of = new


def resolve_aliases(flag_values=None, stream=None):
    """For every deprecated alias given on the command line, print a one-line notice and
    set its flag (marked as given); both names at once is a usage error."""
    import sys

    from absl import app, flags

    fv = flags.FLAGS if flag_values is None else flag_values
    for name in list(fv):
        flag = fv[name]
        new = getattr(flag, "deprecated_alias_of", None)
        if new is None or not flag.present or name != flag.name:
            continue
        if fv[new].present:
            raise app.UsageError(f"--{name} is the deprecated name of --{new}: give only "
                                 f"--{new}.")
        print(f"keras_icnn: --{name} is deprecated; use --{new}.", file=stream or sys.stderr)
        fv[new].value, fv[new].present = flag.value, 1



def define_flags(config_cls, flag_values=None, module_name=None):
    """Define one absl flag per field of ``config_cls`` (name, default, help, choices).

    bool/int/float/str fields become ``DEFINE_bool/integer/float/string``
    (``DEFINE_enum`` with choices; a None default takes the field's ``kind``, a string by
    default; ``required`` fields are marked required); tuple fields ``DEFINE_multi_enum``
    with choices, else ``DEFINE_list``.

    Example:
        >>> define_flags(ICNNConfig)              # in trainers/train_icnn.py
        >>> config = config_from_flags(ICNNConfig, flags.FLAGS)
    """
    import inspect
    import sys

    from absl import flags

    fv = flags.FLAGS if flag_values is None else flag_values
    # Register the flags to the calling module (the trainer) or ``module_name`` (a command's
    # main program), so its --help lists them.
    module = module_name or inspect.stack()[1].frame.f_globals.get("__name__", "__main__")
    if module == "__main__":
        module = sys.argv[0]
    for field in dataclasses.fields(config_cls):
        default, meta = field.default, field.metadata
        text, choices = meta.get("help", field.name), meta.get("choices")
        kwargs = dict(flag_values=fv, module_name=module)
        if default is None and meta.get("kind") is bool:
            flags.DEFINE_bool(field.name, None, text, **kwargs)
        elif default is None and meta.get("kind") is int:
            flags.DEFINE_integer(field.name, None, text, **kwargs)
        elif isinstance(default, bool):
            flags.DEFINE_bool(field.name, default, text, **kwargs)
        elif isinstance(default, int):
            flags.DEFINE_integer(field.name, default, text, **kwargs)
        elif isinstance(default, float):
            flags.DEFINE_float(field.name, default, text, **kwargs)
        elif isinstance(default, tuple):
            if choices:
                flags.DEFINE_multi_enum(field.name, list(default), list(choices), text, **kwargs)
            else:
                flags.DEFINE_list(field.name, list(default), text, **kwargs)
        elif choices:
            flags.DEFINE_enum(field.name, default, list(choices), text, **kwargs)
        else:
            flags.DEFINE_string(field.name, default, text, **kwargs)
        for alias in meta.get("aliases", ()):
            define_alias(alias, field.name, fv, module)
        if meta.get("required"):
            flags.mark_flag_as_required(field.name, flag_values=fv)
    # TensorFlow's logger prints a line per collective under tf.distribute at INFO; the
    # trainers show its warnings and errors only.
    import logging

    logging.getLogger("tensorflow").setLevel(logging.WARNING)


def config_from_flags(config_cls, flag_values):
    """A config dataclass filled from the absl flags of the same names (lists become tuples),
    checked with its ``validate()``; a bad value stops the trainer with a usage error that
    names the flag."""
    from absl import app

    import inspect

    resolve_aliases(flag_values)
    values = {}
    for field in dataclasses.fields(config_cls):
        value = flag_values[field.name].value
        values[field.name] = tuple(value) if isinstance(value, list) else value
    try:
        if "explicit" in inspect.signature(config_cls).parameters:
            # A preset (--recipe) leaves the flags given on the command line alone.
            values["explicit"] = tuple(f.name for f in dataclasses.fields(config_cls)
                                       if flag_values[f.name].present)
        config = config_cls(**values)
        return config.validate()
    except (ValueError, TypeError, FileNotFoundError) as err:
        raise app.UsageError(f"bad flag value: {err}") from err


# ----------------------------------------------------------------------------- options
