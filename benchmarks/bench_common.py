"""What every benchmark writes next to its rows."""
import json
import os
import platform
import time


def machine():
    return f"{platform.machine()}, {os.cpu_count()} CPU cores, no GPU"


def write_rows(path, rows, **extra):
    """Write ``{"machine", "date", "rows", **extra}`` as JSON to ``path`` and say so."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        json.dump({"machine": machine(), "date": time.strftime("%Y-%m-%d"), "rows": rows, **extra},
                  f, indent=2)
    print(f"wrote {path}")
