"""Atomic file writes: write next to the destination, then rename over it."""
from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import Iterator

# read once at import (reading the umask means setting it), not on every write from any thread
_UMASK = os.umask(0)
os.umask(_UMASK)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[str]:
    """Yield a temporary path in the destination's folder; on success rename it to ``path``.

    Readers never see a half-written file, and a failed write leaves no temp file behind.
    The temporary name keeps the destination's extension, for writers that choose the
    format by it (e.g. ``skimage.io.imsave``).
    """
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix="." + path.name + ".", suffix=".tmp" + path.suffix, dir=path.parent)
    os.close(fd)
    try:
        yield tmp
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600 (some writers recreate it): the mode open() gives
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
