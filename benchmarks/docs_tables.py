"""Fill the docs' generated tables from the benchmark results (``make docs-tables``).

A table in ``docs/*.md`` between

    <!-- table: benchmarks/results/interpretability.md#1 -->
    ...
    <!-- /table -->

is replaced by the first (``#n``: the n-th) table of that file, which the benchmark that made
the JSON beside it wrote (``bench_interpretability.py`` -> ``interpretability.{json,md}``): each
figure is written once, by the script that measured it.

    python benchmarks/docs_tables.py            # rewrite the docs
    python benchmarks/docs_tables.py --check    # exit 1 when a doc is out of date
"""
import argparse
import glob
import os
import re
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MARKER = re.compile(r"<!-- table: (?P<path>[^#\s]+)(?:#(?P<n>\d+))? -->\n(?P<body>.*?)"
                    r"<!-- /table -->", re.S)


def tables(text):
    """The markdown tables of ``text`` (runs of lines starting with ``|``), in order."""
    out, current = [], []
    for line in text.splitlines():
        if line.startswith("|"):
            current.append(line)
        elif current:
            out.append("\n".join(current))
            current = []
    if current:
        out.append("\n".join(current))
    return out


def fill(text, root=ROOT):
    """``text`` with every marked table replaced by its source's; a missing source or table
    raises a ValueError naming it."""
    def replace(match):
        path, n = match.group("path"), int(match.group("n") or 1)
        source = os.path.join(root, path)
        if not os.path.isfile(source):
            raise ValueError(f"table source not found: {path}")
        with open(source, encoding="utf-8") as f:
            found = tables(f.read())
        if not 1 <= n <= len(found):
            raise ValueError(f"{path} has {len(found)} tables; the marker asks for #{n}")
        suffix = f"#{match.group('n')}" if match.group("n") else ""
        return f"<!-- table: {path}{suffix} -->\n{found[n - 1]}\n<!-- /table -->"

    return MARKER.sub(replace, text)


def main():
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--check", action="store_true", help="report stale docs, change nothing")
    args = p.parse_args()
    stale = []
    for doc in sorted(glob.glob(os.path.join(ROOT, "docs", "*.md"))):
        with open(doc, encoding="utf-8") as f:
            text = f.read()
        new = fill(text)
        if new != text:
            stale.append(os.path.relpath(doc, ROOT))
            if not args.check:
                with open(doc, "w", encoding="utf-8") as f:
                    f.write(new)
    verb = "out of date" if args.check else "updated"
    print(f"{verb}: {', '.join(stale)}" if stale else "docs tables are up to date")
    return 1 if args.check and stale else 0


if __name__ == "__main__":
    sys.exit(main())
