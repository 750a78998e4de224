"""Helpers shared by the recipes."""


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


def check_choice(config, key, choices):
    """Raise a ValueError naming ``key``, its value and ``choices`` unless the value is one."""
    value = getattr(config, key)
    if value not in choices:
        raise ValueError(f"`{key}` must be one of {choices}. Received: {key}={value!r}")


def config_from_flags(config_cls, flag_values):
    """A config dataclass filled from the absl flags of the same names (lists become tuples)."""
    import dataclasses

    values = {}
    for field in dataclasses.fields(config_cls):
        value = flag_values[field.name].value
        values[field.name] = tuple(value) if isinstance(value, list) else value
    return config_cls(**values)
