"""One way the benchmark scripts write their results: JSON, replaced atomically."""
from __future__ import annotations

import json
import os


def write_json(path: str, results) -> None:
    """Write ``results`` to ``path`` through a temporary file, so a killed run leaves the old file."""
    tmp = path + ".tmp"
    with open(tmp, "w") as fh:
        json.dump(results, fh, indent=1)
    os.replace(tmp, path)
