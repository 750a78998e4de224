"""The one table writer (reporting/tables.py): markdown and text layouts written by hand."""
import numpy as np
import pytest

from keras_icnn.reporting import tables


def test_markdown_and_text_tables_by_hand():
    header, rows = ["model", "MIS"], [["icnn", 0.41], ["std", "n/a"]]
    assert tables.table(header, rows) == (
        "| model | MIS |\n|---|---|\n| icnn | 0.41 |\n| std | n/a |")
    assert tables.table(header, rows, style="text") == (
        "model  MIS \n-----  ----\nicnn   0.41\nstd    n/a ")
    with pytest.raises(ValueError, match=r"`style` must be 'markdown' or 'text'\. "
                                         r"Received: style='html'"):
        tables.table(header, rows, style="html")


def test_cells_format_once():
    assert [tables.format_value(v) for v in (0.123456, np.float32(2), 3, np.int64(4), True,
                                             None, "x")] == \
        ["0.1235", "2.0000", "3", "4", "n/a", "n/a", "n/a"]
    text = tables.format_table([{"a": 1.5, "b": None}, {"a": "x"}], [("a", "A"), ("b", "B")])
    assert text == "A       B  \n------  ---\n1.5000  n/a\nx       -  "


def test_metrics_table_keeps_only_present_columns_with_their_direction():
    columns = [("acc", "accuracy", "higher"), ("li", "location instability", "lower"),
               ("pi", "part interpretability", "higher")]
    rows = {"ordinary": {"acc": 0.9, "li": 0.2}, "interpretable": {"acc": 0.85, "li": None}}
    assert tables.metrics_table(rows, columns) == (
        "| model | accuracy (↑) | location instability (↓) |\n|---|---|---|\n"
        "| ordinary | 0.9000 | 0.2000 |\n| interpretable | 0.8500 | n/a |")
