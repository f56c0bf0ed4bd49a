"""The on-disk layout of a SequenceStore: files named per generation, one manifest commits them.

A store is a folder::

    store.json              the manifest: names the data and lengths files, dtype, shape, checksums
    data-<token>.bin        the rows, raw C order (may run past the committed rows: an append)
    lengths-<token>.npy     the sequence lengths (int64, no pickle)
    append.json, append-<token>.log   only while a writer appends (its journal)

Writers never touch a file the manifest names except to extend a data file past its committed
rows, and the manifest is replaced by one atomic rename, so a reader sees the old store or the
new one, never a mix, whatever moment the writer dies at. POSIX cannot rename a folder over a
non-empty one (a folder swap needs Linux's renameat2 or a moment with no store at all), and a
single file could not be appended to in place; the manifest is the one commit point instead.
"""
from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import zlib
from pathlib import Path
from typing import Iterator

import numpy as np

from fastseq._util.atomic import atomic_path

try:  # advisory lock against two writers in one folder; absent on Windows
    import fcntl
except ImportError:  # pragma: no cover
    fcntl = None

MANIFEST = "store.json"
JOURNAL = "append.json"
FORMAT = "fastseq.SequenceStore"
VERSION = 1
LEGACY = ("data.npy", "lengths.npy")
# files a writer owns; anything else in the folder is left alone
_OWNED = re.compile(r"^(data-[0-9a-f]+\.bin|lengths-[0-9a-f]+\.npy|append-[0-9a-f]+\.log|append\.json|"
                    r"data\.npy|lengths\.npy|\.(store|append)\.json\..*\.tmp\.json|\.lengths-[0-9a-f]+\.npy\..*)$")
CHUNK = 1 << 24  # bytes per write when copying an array out


def as_numpy(x, name: str) -> np.ndarray:
    """An array view of an array, memory map or tensor (a tensor is moved to the CPU)."""
    if hasattr(x, "detach") and hasattr(x, "cpu"):  # a torch tensor, without importing torch
        x = x.detach().cpu().numpy()
    try:
        arr = np.asanyarray(x)  # keeps a memory map a memory map
    except (ValueError, TypeError) as exc:  # ragged nested lists
        raise ValueError(f"Expected {name} to be an array, got {type(x).__name__} ({exc}).") from None
    if arr.ndim == 0:
        raise ValueError(f"Expected {name} to have a time axis (at least 1-D), got a scalar.")
    return arr


def token() -> str:
    return secrets.token_hex(8)


def crc32(buffer, value: int = 0) -> int:
    """CRC-32 of a buffer, continued from ``value``; chunked so no copy of a large array is made."""
    view = memoryview(buffer).cast("B")
    for start in range(0, len(view), CHUNK):
        value = zlib.crc32(view[start:start + CHUNK], value)
    return value


def row_bytes(dtype: np.dtype, feature_shape: tuple[int, ...]) -> int:
    return int(np.dtype(dtype).itemsize * int(np.prod(feature_shape, dtype=np.int64)))


def fsync_dir(folder: Path) -> None:
    with contextlib.suppress(OSError):  # not every filesystem lets a folder be opened
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def write_all(fh, buffer) -> None:
    """Write a whole buffer to an unbuffered file (raw writes may be short)."""
    view = memoryview(buffer).cast("B")
    while len(view):
        n = fh.write(view[:CHUNK])
        view = view[n:]


def write_json(path: Path, obj: dict) -> None:
    """Replace ``path`` by ``obj`` as JSON atomically and durably."""
    with atomic_path(path) as tmp:
        with open(tmp, "w") as fh:
            json.dump(obj, fh, indent=1)
            fh.flush()
            os.fsync(fh.fileno())
    fsync_dir(path.parent)


def read_json(path: Path, what: str) -> dict:
    try:
        obj = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ValueError(f"Expected {path} to be a SequenceStore {what}, but it cannot be read ({exc}).") from None
    if not isinstance(obj, dict) or obj.get("format") != FORMAT or obj.get("version") != VERSION:
        raise ValueError(f"Expected {path} to be a {FORMAT} {what} of version {VERSION}, got something else.")
    return obj


def write_lengths(folder: Path, lengths: np.ndarray) -> tuple[str, int]:
    """Write a lengths file under a fresh name (durably); return its name and checksum."""
    name = f"lengths-{token()}.npy"
    lengths = np.ascontiguousarray(lengths, dtype="<i8")
    with atomic_path(folder / name) as tmp, open(tmp, "wb") as fh:
        np.save(fh, lengths, allow_pickle=False)
        fh.flush()
        os.fsync(fh.fileno())
    return name, crc32(lengths)


def commit(folder: Path, *, data: str, lengths: np.ndarray, dtype: np.dtype, feature_shape: tuple,
           data_crc32: int) -> None:
    """Write the lengths, then the manifest naming them and ``data`` (the commit), then tidy up."""
    lengths_name, lengths_crc = write_lengths(folder, lengths)
    write_json(folder / MANIFEST, {
        "format": FORMAT, "version": VERSION, "dtype": np.dtype(dtype).str,
        "feature_shape": [int(f) for f in feature_shape], "rows": int(lengths.sum()), "sequences": int(lengths.size),
        "data": data, "lengths": lengths_name, "data_crc32": int(data_crc32), "lengths_crc32": int(lengths_crc),
    })
    remove_stale(folder, keep={data, lengths_name})


def remove_stale(folder: Path, keep: set[str]) -> None:
    """Delete files of earlier generations and of writers that died (only names a writer owns)."""
    for entry in os.scandir(folder):
        if entry.name not in keep and _OWNED.match(entry.name):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(entry.path)


@contextlib.contextmanager
def writer_lock(folder: Path) -> Iterator[None]:
    """Hold the folder's writer lock (released by the OS if the process dies)."""
    if fcntl is None:  # pragma: no cover
        yield
        return
    fd = os.open(folder / ".lock", os.O_RDWR | os.O_CREAT, 0o666)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise RuntimeError(f"Expected no other writer on the SequenceStore at {folder}, but one holds its lock.") from None
        yield
    finally:
        os.close(fd)


def crc32_file(fh, size: int) -> int:
    """CRC-32 of the first ``size`` bytes of an open file, read in chunks (no memory map)."""
    fh.seek(0)
    value, left = 0, size
    buffer = bytearray(min(CHUNK, max(size, 1)))
    while left:
        n = fh.readinto(memoryview(buffer)[:min(left, len(buffer))])
        if not n:
            break
        value = zlib.crc32(memoryview(buffer)[:n], value)
        left -= n
    return value
