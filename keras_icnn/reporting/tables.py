"""The one table writer: markdown (reports, docs, benchmark tables) and plain text (the
trainers' console summaries), from a header and rows of cells.

Example:
    >>> print(table(["model", "MIS"], [["icnn", 0.41]]))
    | model | MIS |
    |---|---|
    | icnn | 0.41 |
"""
import numpy as np


def format_value(value):
    """A metric as the report tables print it: floats to 4 decimals, counts as integers,
    anything else (a metric the data cannot support) as "n/a"."""
    if isinstance(value, (bool, np.bool_)):
        return "n/a"
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        return f"{float(value):.4f}"
    return "n/a"


def table(header, rows, style="markdown"):
    """``header`` (cell strings) and ``rows`` (lists of cells, already formatted or ``str``-able)
    as a markdown table (``style="markdown"``) or space-aligned text (``style="text"``)."""
    cells = [[str(c) for c in header]] + [[str(c) for c in row] for row in rows]
    if style == "markdown":
        lines = ["| " + " | ".join(row) + " |" for row in cells]
        lines.insert(1, "|" + "---|" * len(header))
        return "\n".join(lines)
    if style != "text":
        raise ValueError(f"`style` must be 'markdown' or 'text'. Received: style={style!r}")
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths)) for row in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def format_table(rows, columns):
    """A plain-text table: ``rows`` is a list of dicts, ``columns`` (key, header) pairs;
    floats with 4 decimals, missing keys as ``-``, None as ``n/a``."""
    def cell(value):
        if isinstance(value, float):
            return f"{value:.4f}"
        return "n/a" if value is None else str(value)

    return table([h for _, h in columns], [[cell(r.get(k, "-")) for k, _ in columns]
                                           for r in rows], style="text")


def metric_columns(rows, columns):
    """The ``(key, header, direction)`` columns some row of ``rows`` (name -> dict) has, with
    the header marked ↑ (higher is better) or ↓."""
    present = [c for c in columns if any(c[0] in r for r in rows.values())]
    return [(k, f"{h} ({'↑' if d == 'higher' else '↓'})") for k, h, d in present]


def metrics_table(rows, columns):
    """Rows = models (name -> dict of metric values), columns = metrics: the papers' table
    shape, as markdown."""
    present = metric_columns(rows, columns)
    return table(["model"] + [h for _, h in present],
                 [[name] + [format_value(r.get(k)) for k, _ in present]
                  for name, r in rows.items()])
