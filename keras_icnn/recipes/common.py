"""Helpers shared by the recipes."""

from keras_icnn.validation import check_choice, check_fields  # noqa: F401 (re-exported)


def format_table(rows, columns):
    """A plain-text table: ``rows`` is a list of dicts, ``columns`` (key, header) pairs."""
    cells = [[h for _, h in columns]] + [
        [f"{r[k]:.4f}" if isinstance(r.get(k), float) else str(r.get(k, "-")) for k, _ in columns]
        for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(columns))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths)) for row in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


EVAL_SPLITS = ("validation", "test")
LR_SCHEDULES = ("constant", "cosine")


def config_from_flags(config_cls, flag_values):
    """A config dataclass filled from the absl flags of the same names (lists become tuples),
    checked with its ``validate()``; a bad value stops the trainer with a usage error that
    names the flag."""
    import dataclasses

    from absl import app

    values = {}
    for field in dataclasses.fields(config_cls):
        value = flag_values[field.name].value
        values[field.name] = tuple(value) if isinstance(value, list) else value
    config = config_cls(**values)
    try:
        return config.validate()
    except (ValueError, TypeError, FileNotFoundError) as err:
        raise app.UsageError(f"bad flag value: {err}") from err
