"""Atomic file writes: write next to the destination, flush to disk, then rename over it.

Every writer in fastseq goes through here: :func:`atomic_path` for writers that want a
path (``safetensors.save_file``, ``skimage.io.imsave``), :func:`atomic_open` for writers
that want an open file (``np.savez``, IDX files). Readers see the old file or the new
one, never half of one; an interrupted write (an exception, Ctrl-C) removes its
temporary file, and even a killed process leaves the destination untouched (only a
hidden ``.NAME.*.tmp*`` file next to it).
"""
from __future__ import annotations

import contextlib
import errno
import os
import secrets
from pathlib import Path
from typing import IO, Iterator

# read once at import (reading the umask means setting it), not on every write from any thread
_UMASK = os.umask(0)
os.umask(_UMASK)


def _fsync(path: str) -> None:
    """Flush a finished file to disk, so a crash after the rename cannot leave it empty."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[str]:
    """Yield a temporary path in the destination's folder; on success rename it to ``path``.

    The temporary name keeps the destination's extension, for writers that choose the
    format by it.

    Example:
        >>> import os, tempfile
        >>> p = os.path.join(tempfile.mkdtemp(), "a.txt")
        >>> with atomic_path(p) as tmp:
        ...     _ = open(tmp, "w").write("new")
        >>> open(p).read(), os.listdir(os.path.dirname(p))
        ('new', ['a.txt'])
    """
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(f"Expected a file to write, got the folder {str(path)!r}.")
    tmp = ""
    try:
        # named before it is made, inside the try: Ctrl-C at any moment after the file exists
        # (even between its creation and the next statement) still finds it to remove
        for _ in range(100):
            tmp = os.path.join(path.parent, f".{path.name}.{secrets.token_hex(4)}.tmp{path.suffix}")
            try:
                os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
                break
            except FileExistsError:
                continue
        else:
            raise FileExistsError(errno.EEXIST, "no unused temporary name", tmp)
        yield tmp
        os.chmod(tmp, 0o666 & ~_UMASK)  # made 0600 above (some writers recreate it): the mode open() gives
        _fsync(tmp)
        os.replace(tmp, path)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)  # FileNotFoundError where it was never made
        if isinstance(exc, OSError) and tmp in (exc.filename, exc.filename2):
            raise _naming(exc, path) from None
        raise


def _naming(exc: OSError, path: Path) -> OSError:
    """``exc`` about the destination the caller named, not the hidden temporary file."""
    return type(exc)(exc.errno, exc.strerror, str(path)) if exc.errno is not None else exc


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike, mode: str = "wb", **kwargs) -> Iterator[IO]:
    """Open a temporary file for writing; on success it replaces ``path`` (see atomic_path).

    Args:
        path: the destination.
        mode: ``"wb"`` or ``"w"`` (text; ``kwargs`` such as ``encoding`` go to ``open``).

    Example:
        >>> import os, tempfile
        >>> p = os.path.join(tempfile.mkdtemp(), "a.bin")
        >>> with atomic_open(p) as fh:
        ...     _ = fh.write(b"123")
        >>> open(p, "rb").read()
        b'123'
    """
    if mode not in ("w", "wb"):
        raise ValueError(f"Expected mode 'w' or 'wb', got {mode!r}.")
    with atomic_path(path) as tmp, open(tmp, mode, **kwargs) as fh:
        yield fh
