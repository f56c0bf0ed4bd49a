"""One way the benchmark scripts write their results: JSON, replaced atomically."""
from __future__ import annotations

import json
import os

from fastseq._util.atomic import atomic_open


def write_json(path: str | os.PathLike, results) -> None:
    """Write ``results`` to ``path`` through a temporary file, so a killed run leaves the old file."""
    with atomic_open(path, "w", encoding="utf-8") as fh:
        json.dump(results, fh, indent=1)
