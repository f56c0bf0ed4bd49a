"""SequenceStoreWriter: build a SequenceStore on disk a sequence at a time, resumable after a crash.

Each appended sequence is written straight to the store's data file, then one 16-byte record
(its length and the running CRC-32) to the writer's journal. A process killed at any moment
leaves the journal describing a prefix of the data file; the next writer in mode ``"a"``
truncates the data file to that prefix and continues. Nothing is visible to readers until
:meth:`~SequenceStoreWriter.commit` replaces the manifest.

The rows go through ``write(2)``, not a writable memory map: a full disk is then an
``OSError`` rather than a ``SIGBUS`` that kills the process, and written pages are not
counted in this process's resident memory.
"""
from __future__ import annotations

import contextlib
import os
import struct
import zlib
from array import array
from pathlib import Path

import numpy as np

from fastseq._util.validate import folder_path, lengths_array, one_of
from fastseq.bptt import _store_files as files

__all__ = ["SequenceStoreWriter"]

_RECORD = struct.Struct("<qq")  # length, CRC-32 of all rows up to and including this sequence


class SequenceStoreWriter:
    """Append sequences to the store in the folder ``path``; :meth:`commit` publishes them at once.

    Args:
        path: the store's folder (created if missing).
        mode: ``"w"`` starts a new store that replaces the one at ``path`` on commit
            (until then the old one loads). ``"a"`` continues where the last writer
            stopped: after the committed store's sequences and after those a writer that
            died had written (its journal), so a crashed build resumes.
        dtype: the rows' dtype (default: the first sequence's); sequences are cast to it
            when the cast is safe or within a kind.

    Used as a context manager it commits on a clean exit and leaves the journal (to
    resume) on an exception. One writer per folder at a time (an OS lock).

    Example:
        >>> import tempfile
        >>> from fastseq.bptt.store import SequenceStore
        >>> folder = tempfile.mkdtemp()
        >>> with SequenceStoreWriter(folder, "w") as writer:
        ...     writer.append(np.ones((3, 2)))
        >>> with SequenceStoreWriter(folder, "a") as writer:
        ...     writer.count, writer.append(np.zeros((1, 2)))
        (1, None)
        >>> SequenceStore.load(folder).lengths.tolist()
        [3, 1]
    """

    def __init__(self, path: str | os.PathLike, mode: str = "a", *, dtype=None) -> None:
        one_of("mode", mode, ("w", "a"))
        self.folder = folder_path("path", path)
        self.folder.mkdir(parents=True, exist_ok=True)
        self._stack = contextlib.ExitStack()
        self._stack.enter_context(files.writer_lock(self.folder))
        self.dtype = None if dtype is None else np.dtype(dtype)
        self.feature_shape: tuple[int, ...] | None = None
        self._base_lengths = np.zeros(0, np.int64)
        self._base_name: str | None = None  # the committed lengths file appended to, None for a new store
        self._lengths = array("q")
        self._crc = 0
        self._rows = 0  # rows the data file must hold when opened (and the journal's base_rows); not updated by writes
        self._journal: dict | None = None
        self._data_fh = self._log_fh = None
        self._data_name = f"data-{files.token()}.bin"
        self.closed = False
        try:
            self._open(mode)
        except BaseException:
            self._stack.close()
            raise

    def _open(self, mode: str) -> None:
        manifest_path, journal_path = self.folder / files.MANIFEST, self.folder / files.JOURNAL
        manifest = files.read_json(manifest_path, "manifest") if manifest_path.is_file() else None
        journal = files.read_json(journal_path, "journal") if journal_path.is_file() else None
        if mode == "w":
            with contextlib.suppress(FileNotFoundError):  # a later "a" must not resume the discarded build
                os.unlink(journal_path)
            return
        if journal is not None and self._is_live(journal, manifest):
            self._resume(journal, manifest)
            return
        if manifest is not None and manifest.get("sequences") != 0:  # an empty store fixes no format
            lengths = np.load(self.folder / manifest["lengths"], allow_pickle=False)
            if files.crc32(np.ascontiguousarray(lengths, dtype="<i8")) != manifest["lengths_crc32"]:
                raise ValueError(f"Expected {manifest['lengths']} to match {files.MANIFEST} before appending to it.")
            self._base_lengths, self._base_name = np.asarray(lengths, np.int64), manifest["lengths"]
            self._data_name, self._crc = manifest["data"], int(manifest["data_crc32"])
            self._rows = int(manifest["rows"])
            self._set_format(np.dtype(manifest["dtype"]), tuple(manifest["feature_shape"]))
        elif (self.folder / files.LEGACY[0]).is_file():
            raise ValueError(f"Expected a store with a {files.MANIFEST} at {self.folder} to append to, got an older "
                             f"data.npy + lengths.npy store: SequenceStore.load(path).save(path) converts it.")

    @staticmethod
    def building(path: str | os.PathLike) -> bool:
        """Whether a writer in mode ``"w"`` died at ``path`` with sequences that ``"a"`` would resume."""
        folder = Path(path)
        try:
            journal = files.read_json(folder / files.JOURNAL, "journal")
        except ValueError:
            return False
        manifest_path = folder / files.MANIFEST
        manifest = files.read_json(manifest_path, "manifest") if manifest_path.is_file() else None
        return journal.get("base_lengths") is None and SequenceStoreWriter._is_live(journal, manifest)

    @staticmethod
    def _is_live(journal: dict, manifest: dict | None) -> bool:
        """Whether the journal still waits for its commit (not committed, not superseded)."""
        if journal.get("base_lengths") is None:  # a new store: live until a manifest names its data
            return manifest is None or manifest.get("data") != journal.get("data")
        return manifest is not None and manifest.get("lengths") == journal["base_lengths"]

    def _resume(self, journal: dict, manifest: dict | None) -> None:
        self._journal = journal
        self._data_name = journal["data"]
        self._base_name = journal["base_lengths"]
        if self._base_name is not None:
            self._base_lengths = np.load(self.folder / self._base_name, allow_pickle=False).astype(np.int64)
        self._set_format(np.dtype(journal["dtype"]), tuple(journal["feature_shape"]))
        base_rows, crc = int(journal["base_rows"]), int(journal["base_crc32"])
        width = files.row_bytes(self.dtype, self.feature_shape)
        data_size = os.path.getsize(self.folder / self._data_name)
        log = np.fromfile(self.folder / journal["log"], dtype="<i8")
        records = log[: log.size // 2 * 2].reshape(-1, 2)  # a torn last record is dropped
        rows = base_rows + np.cumsum(records[:, 0])
        keep = int(np.searchsorted(rows * width, data_size, side="right"))  # records whose rows reached the file
        records = records[:keep]
        self._lengths = array("q", records[:, 0].tolist())
        self._rows = base_rows + int(records[:, 0].sum())
        self._crc = int(records[-1, 1]) if keep else crc
        self._open_files(truncate_log=keep * _RECORD.size)

    def _set_format(self, dtype: np.dtype, feature_shape: tuple[int, ...]) -> None:
        if self.dtype is not None and self.dtype != dtype:
            raise ValueError(f"Expected dtype to be the store's {dtype}, got {self.dtype}.")
        self.dtype, self.feature_shape = dtype, tuple(int(f) for f in feature_shape)

    def _open_files(self, truncate_log: int) -> None:
        data_path = self.folder / self._data_name
        self._data_fh = self._stack.enter_context(open(data_path, "r+b" if data_path.exists() else "w+b", buffering=0))
        need = self._rows * files.row_bytes(self.dtype, self.feature_shape)
        size = os.fstat(self._data_fh.fileno()).st_size
        if size < need:
            raise ValueError(f"Expected {self._data_name} to hold the store's {self._rows} rows ({need} bytes), got {size} bytes.")
        self._data_fh.truncate(need)  # drops rows no record vouches for
        self._data_fh.seek(0, os.SEEK_END)
        log_path = self.folder / self._journal["log"]
        self._log_fh = self._stack.enter_context(open(log_path, "r+b" if log_path.exists() else "w+b", buffering=0))
        self._log_fh.truncate(truncate_log)
        self._log_fh.seek(0, os.SEEK_END)

    def _start(self) -> None:
        """Write the journal before the first row, so a crash after it can be resumed."""
        self._journal = {
            "format": files.FORMAT, "version": files.VERSION, "data": self._data_name,
            "log": f"append-{files.token()}.log", "base_lengths": self._base_name, "base_rows": self._rows,
            "base_crc32": self._crc, "dtype": self.dtype.str, "feature_shape": list(self.feature_shape),
        }
        files.write_json(self.folder / files.JOURNAL, self._journal)
        self._open_files(truncate_log=0)

    @property
    def count(self) -> int:
        """Sequences the store will hold if committed now (skip these many when resuming)."""
        return int(self._base_lengths.size) + len(self._lengths)

    def append(self, sequence) -> None:
        """Write one ``T x *F`` sequence (array or tensor, ``T >= 1``) to the data file."""
        self._check_open()
        arr = files.as_numpy(sequence, "sequence")
        if arr.shape[0] == 0:
            raise ValueError(f"Expected sequence to be non-empty, got shape {arr.shape}.")
        arr = self._rows_of(arr, "sequence")
        if self._journal is None:
            self._start()
        files.write_all(self._data_fh, arr)  # rows first, then the record that vouches for them
        self._crc = files.crc32(arr, self._crc)
        files.write_all(self._log_fh, _RECORD.pack(arr.shape[0], self._crc))
        self._lengths.append(arr.shape[0])

    def extend(self, rows, lengths) -> None:
        """Write many sequences at once: ``rows`` (``R x *F``) holds them back to back.

        The same as appending ``rows[o_i:o_i + lengths[i]]`` for each ``i`` in turn (the
        journal vouches for each sequence), with one write for the rows and one for the
        journal records, so many short sequences cost little Python work each.

        >>> import tempfile
        >>> from fastseq.bptt.store import SequenceStore
        >>> folder = tempfile.mkdtemp()
        >>> with SequenceStoreWriter(folder, "w") as writer:
        ...     writer.extend(np.arange(5.0).reshape(5, 1), [2, 3])
        >>> SequenceStore.load(folder)[1].ravel().tolist()
        [2.0, 3.0, 4.0]
        """
        self._check_open()
        arr = self._rows_of(files.as_numpy(rows, "rows"), "rows")
        lengths = lengths_array(lengths)
        if int(lengths.sum()) != arr.shape[0]:
            raise ValueError(f"Expected lengths to sum to the {arr.shape[0]} rows of rows, "
                             f"got sum {int(lengths.sum())}.")
        if not lengths.size:
            return
        if self._journal is None:
            self._start()
        files.write_all(self._data_fh, arr)  # rows first, then the records that vouch for them
        view = memoryview(arr).cast("B")
        ends = np.cumsum(lengths) * files.row_bytes(self.dtype, self.feature_shape)
        records = np.empty((lengths.size, 2), "<i8")
        records[:, 0] = lengths
        crc, start = self._crc, 0
        for i, end in enumerate(ends.tolist()):
            crc = zlib.crc32(view[start:end], crc)
            records[i, 1] = crc
            start = end
        files.write_all(self._log_fh, records)
        self._crc = crc
        self._lengths.extend(lengths.tolist())

    def _check_open(self) -> None:
        if self.closed:
            raise ValueError("Expected an open SequenceStoreWriter, got one already committed or closed.")

    def _rows_of(self, arr: np.ndarray, name: str) -> np.ndarray:
        """``arr`` as C-contiguous rows of the store's dtype and feature shape (which it may fix)."""
        if self.feature_shape is None:
            self._set_format(self.dtype or arr.dtype, arr.shape[1:])
            if self.dtype.hasobject:
                raise TypeError(f"Expected {name} to hold plain numbers, got dtype {self.dtype}.")
        if arr.shape[1:] != self.feature_shape:
            raise ValueError(f"Expected {name} to have feature shape {self.feature_shape}, got {arr.shape[1:]}.")
        if arr.dtype != self.dtype:
            if not np.can_cast(arr.dtype, self.dtype, "same_kind"):
                raise TypeError(f"Expected {name} to be castable to {self.dtype}, got {arr.dtype}.")
            arr = arr.astype(self.dtype)
        return np.ascontiguousarray(arr)

    def flush(self) -> None:
        """Make what was appended survive a power loss too (a killed process loses nothing anyway)."""
        for fh in (self._data_fh, self._log_fh):
            if fh is not None:
                os.fsync(fh.fileno())

    def commit(self) -> None:
        """Publish the store: one atomic manifest replace; the journal is then removed."""
        self._check_open()
        if self._journal is None and self._base_name is not None:
            self.close()  # appended nothing to a committed store: it is already what it should be
            return
        if self.feature_shape is None:  # a new, empty store
            self._set_format(self.dtype or np.dtype(np.float32), ())
        if self._data_fh is None:
            open(self.folder / self._data_name, "wb").close()
        self.flush()
        lengths = np.concatenate([self._base_lengths, np.frombuffer(self._lengths, np.int64)]) \
            if len(self._lengths) else self._base_lengths
        files.commit(self.folder, data=self._data_name, lengths=lengths, dtype=self.dtype,
                     feature_shape=self.feature_shape, data_crc32=self._crc)
        self.close()

    def close(self) -> None:
        """Release the files and the lock without committing (the journal stays, to resume)."""
        self.closed = True
        self._stack.close()

    def __enter__(self) -> "SequenceStoreWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if self.closed:
            return
        if exc_type is None:
            self.commit()
        else:
            self.close()
