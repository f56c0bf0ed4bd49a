"""SequenceStore: every sequence of a data set in one flat array plus offsets.

The trainer reads a window's rows out of the store with the native gather
(``csrc/gather.cpp``), so a store may be a plain array or a memory map on disk.
A saved store is a folder committed by one manifest (see ``_store_files``), so it
is replaced as a whole; :class:`SequenceStoreWriter` builds one on disk from an
iterator, a sequence at a time, and can resume after a crash.
"""
from __future__ import annotations

import itertools
import math
import mmap as _mmap
import operator
import os
import zlib
from pathlib import Path
from typing import Iterable, Iterator, Sequence

import numpy as np

from fastseq.bptt import _store_files as files
from fastseq.bptt._schedule_cy import buffer_addresses, gather_rows_into, gather_rows_parted_into
from fastseq.bptt.store_writer import SequenceStoreWriter
from fastseq._util.validate import lengths_array, sequence_list

__all__ = ["SequenceStore", "SequenceStoreWriter", "gather_rows", "gather_rows_reference"]

_PAGE = _mmap.PAGESIZE


def _byte_rows(data: np.ndarray) -> np.ndarray:
    """View ``[R, *F]`` as ``[R, row_bytes]`` uint8 without copying when rows are contiguous."""
    flat = data.reshape(data.shape[0], int(np.prod(data.shape[1:], dtype=np.int64)))
    if flat.strides[1] != flat.itemsize:
        flat = np.ascontiguousarray(flat)
    return flat.view(np.uint8)


def gather_rows(data: np.ndarray, rows: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """Return ``data[rows]`` with zero rows where ``rows < 0``, using the native gather.

    Args:
        data: ``R x *F`` array (may be a memory map).
        rows: integer array of any shape ``S`` with values in ``[-1, R)``.
        out: optional C-contiguous buffer of shape ``S x *F`` and data's dtype to fill
            (for example a pinned tensor's numpy view), reused across windows.

    >>> gather_rows(np.arange(6.0).reshape(3, 2), np.array([2, -1, 0])).tolist()
    [[4.0, 5.0], [0.0, 0.0], [0.0, 1.0]]
    """
    # O(1) checks: this runs once per window; the range is checked by the native gather
    if not isinstance(data, np.ndarray):
        data = files.as_numpy(data, "data")
    if data.ndim == 0 or data.dtype.hasobject:
        raise TypeError(f"Expected data to be an R x *F array of numbers, got {data.dtype} of shape {data.shape}.")
    rows, out = _gather_args(rows, out, data.shape[1:], data.dtype)
    index = np.ascontiguousarray(rows.reshape(-1), dtype=np.int64)
    if index.size == 0 or out.size == 0:
        if index.size and (index.max() >= data.shape[0]):
            _refuse_rows(index, data.shape[0])
        return out
    dst = out.reshape(index.shape[0], -1).view(np.uint8)
    try:
        gather_rows_into(_byte_rows(data), index, dst)
    except IndexError:
        _refuse_rows(index, data.shape[0])
    return out


def _gather_args(rows, out: np.ndarray | None, feature: tuple, dtype: np.dtype) -> tuple[np.ndarray, np.ndarray]:
    """``rows`` as an integer array and the ``rows.shape + feature`` buffer to fill (``out``, checked)."""
    if not isinstance(rows, np.ndarray):
        try:
            rows = np.asarray(rows)
        except (ValueError, TypeError) as exc:  # ragged nested lists
            raise ValueError(f"Expected rows to be an array of row ids, got {type(rows).__name__} ({exc}).") from None
    if rows.dtype.kind not in "iu":
        if rows.size:
            raise TypeError(f"Expected rows to hold integer row ids, got dtype {rows.dtype}.")
        rows = np.zeros(rows.shape, np.int64)  # an empty list is float64 to NumPy
    shape = rows.shape + tuple(feature)
    if out is None:
        out = np.empty(shape, dtype=dtype)
    elif out.shape != shape or out.dtype != dtype or not out.flags.c_contiguous:
        raise ValueError(
            f"Expected out to be C-contiguous {dtype} of shape {shape}, "
            f"got {out.dtype} of shape {out.shape} (contiguous={out.flags.c_contiguous})."
        )
    return rows, out


def _refuse_rows(index: np.ndarray, n_rows: int) -> None:
    bad = int(np.argmax(index >= n_rows))
    raise ValueError(f"Expected rows to hold row ids in [-1, {n_rows}) (data has {n_rows} rows; -1 for a zero "
                     f"row), got {index[bad]} at flat position {bad}.")


def gather_rows_reference(data: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Plain NumPy twin of :func:`gather_rows`, for tests."""
    rows = np.asarray(rows)
    out = np.zeros(rows.shape + data.shape[1:], dtype=data.dtype)
    hit = rows >= 0
    out[hit] = data[rows[hit]]
    return out


class SequenceStore:
    """N variable-length sequences stored as one ``R x *F`` array plus offsets.

    Sequence ``i`` is ``data[offsets[i]:offsets[i + 1]]``; ``R`` is the sum of the
    lengths. Build one with :meth:`from_sequences`, or memory-map a saved store
    with :meth:`load`. It reads like a list of arrays: ``len``, iteration, and
    indexing with negative indices, slices and lists of indices (see
    :meth:`__getitem__`); it cannot be assigned to.

    Example:
        >>> store = SequenceStore.from_sequences([np.ones((3, 2)), np.zeros((1, 2))])
        >>> store.lengths.tolist(), store.feature_shape, store[1].shape
        ([3, 1], (2,), (1, 2))
    """

    def __init__(self, data: np.ndarray, lengths: Sequence[int] | np.ndarray) -> None:
        data = files.as_numpy(data, "data")
        self.lengths = lengths_array(lengths)
        total = int(self.lengths.sum())
        if data.shape[0] != total:
            raise ValueError(
                f"Expected data to have sum(lengths) = {total} rows, got {data.shape[0]} rows."
            )
        self.data = data
        self.offsets = np.zeros(self.lengths.shape[0] + 1, dtype=np.int64)
        np.cumsum(self.lengths, out=self.offsets[1:])
        self.resident_limit: int | None = None
        self._map: _mmap.mmap | None = None  # set by load(): the mapping whose pages release() drops
        self._touched = 0

    @classmethod
    def from_sequences(cls, sequences, dtype=None, name: str = "sequences") -> "SequenceStore":
        """Concatenate a list of ``T_i x *F`` arrays or tensors (copied; inputs untouched)."""
        return cls._concatenated(_checked_arrays(sequences, name), dtype)

    @classmethod
    def _concatenated(cls, arrays: list[np.ndarray], dtype=None) -> "SequenceStore":
        if not arrays:
            return cls(np.zeros((0,), dtype=dtype or np.float32), np.zeros(0, np.int64))
        data = np.concatenate(arrays, axis=0)
        if dtype is not None:
            data = data.astype(dtype, copy=False)
        return cls(data, [a.shape[0] for a in arrays])

    @classmethod
    def coerce(cls, data, name: str = "sequences", *, copy: bool = True) -> "SequenceStore":
        """Return ``data`` if it is a store, else a store built from a list of sequences.

        With ``copy=False`` a list of C-contiguous arrays (or CPU tensors) of one dtype is
        not copied: the store keeps the caller's arrays and reads their rows at every
        gather, so an array edited in place is read as edited (its shape must not change
        while the store is in use). Other lists are copied as with ``copy=True``.

        >>> xs = [np.zeros((2, 1)), np.zeros((1, 1))]
        >>> store = SequenceStore.coerce(xs, copy=False)
        >>> xs[0][1] = 5.0
        >>> store.gather(np.array([1, 2])).ravel().tolist()
        [5.0, 0.0]
        """
        if isinstance(data, cls):
            return data
        arrays = _checked_arrays(data, name)
        views = _SequenceViews.over(arrays) if not copy and arrays else None
        return views if views is not None else cls._concatenated(arrays)

    def __len__(self) -> int:
        return self.lengths.shape[0]

    def __getitem__(self, index):
        """Sequence ``index`` as a ``T x *F`` view of the rows, indexed like a list.

        An integer (Python, NumPy or anything with ``__index__``, not a bool) may be
        negative; a slice or a 1-D list or array of integers gives a list of views
        (not a new store: the rows are not copied). An index outside ``[-N, N)`` is an
        IndexError naming it.

        >>> store = SequenceStore.from_sequences([np.full((t, 1), t) for t in (1, 2, 3)])
        >>> store[-1].ravel().tolist(), [s.shape[0] for s in store[::2]], len(store[[2, 0]])
        ([3, 3, 3], [1, 3], 2)
        """
        if isinstance(index, slice):
            return [self._sequence(i) for i in range(*index.indices(len(self)))]
        position = _integer_index(index)
        if position is not None:
            return self._sequence(self._position(position, str(position)))
        many = _index_list(index)
        return [self._sequence(self._position(int(i), f"{int(i)} at position {k} of the index list"))
                for k, i in enumerate(many)]

    def __iter__(self) -> Iterator[np.ndarray]:
        offsets = self.offsets
        for i in range(len(self)):
            yield self.data[offsets[i] : offsets[i + 1]]

    def _position(self, position: int, typed: str) -> int:
        """``position`` in ``[0, N)``, from a list-style index in ``[-N, N)``."""
        n = len(self)
        if not -n <= position < n:
            raise IndexError(f"Expected a sequence index in [-{n}, {n}) (the store holds {n} sequences), "
                             f"got {typed}.")
        return position + n if position < 0 else position

    def _sequence(self, i: int) -> np.ndarray:
        return self.data[self.offsets[i] : self.offsets[i + 1]]

    @property
    def feature_shape(self) -> tuple[int, ...]:
        return tuple(self.data.shape[1:])

    @property
    def dtype(self) -> np.dtype:
        return self.data.dtype

    def gather(self, rows: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """Rows ``rows`` (any shape, -1 for zeros) of the flat data; see :func:`gather_rows`.

        On a memory-mapped store with a ``resident_limit``, the mapping's pages are
        dropped from this process (:meth:`release`) once gathers may have touched
        that many bytes of it, so training from a store larger than memory keeps a
        bounded resident set.
        """
        out = gather_rows(self.data, rows, out)
        if self._map is not None and self.resident_limit is not None:
            self._touched += _touched_bytes(np.asarray(rows), files.row_bytes(self.dtype, self.feature_shape))
            if self._touched > self.resident_limit:
                self.release()
        return out

    def release(self) -> None:
        """Drop the memory map's pages from this process's resident memory (no-op in RAM).

        The pages stay in the OS page cache and fault back in on the next read; the
        mapping is read-only, so nothing is lost.
        """
        self._touched = 0
        if self._map is not None and hasattr(self._map, "madvise") and hasattr(_mmap, "MADV_DONTNEED"):
            self._map.madvise(_mmap.MADV_DONTNEED)

    def save(self, path: str | os.PathLike) -> None:
        """Write the store to the folder ``path``, replacing any store there as a whole.

        The rows and lengths go to files of a new generation; one atomic rename of the
        manifest then switches readers over, so a save interrupted at any moment leaves
        the previous store loadable. No pickle is written.
        """
        data = np.asarray(self.data)
        if data.dtype.hasobject:
            raise TypeError(f"Expected a store of plain numbers, got dtype {data.dtype}.")
        folder = Path(path)
        folder.mkdir(parents=True, exist_ok=True)
        with files.writer_lock(folder):
            name = f"data-{files.token()}.bin"
            flat = np.ascontiguousarray(data).reshape(-1).view(np.uint8)
            crc = 0
            with open(folder / name, "wb", buffering=0) as fh:
                for start in range(0, flat.size, files.CHUNK):
                    chunk = flat[start:start + files.CHUNK]
                    crc = zlib.crc32(chunk, crc)
                    files.write_all(fh, chunk)
                os.fsync(fh.fileno())
            files.commit(folder, data=name, lengths=self.lengths, dtype=data.dtype,
                         feature_shape=data.shape[1:], data_crc32=crc)

    @classmethod
    def load(cls, path: str | os.PathLike, mmap: bool = True, *, verify: bool = False,
             resident_limit: int | None = 1 << 30) -> "SequenceStore":
        """Open a store written by :meth:`save` or :class:`SequenceStoreWriter`.

        Args:
            path: the store's folder.
            mmap: memory-map the rows (default) instead of reading them into memory.
            verify: also check the rows against the manifest's CRC-32 (reads the whole
                file once). The lengths and all sizes are always checked.
            resident_limit: for a memory map, drop its pages from this process after
                gathers may have touched about this many bytes (see :meth:`gather`);
                None keeps them until the OS reclaims them.

        A lengths file that is not the one the manifest committed, or a data file
        shorter than the committed rows, is refused.
        """
        folder = Path(path)
        seen = None
        while True:
            if not (folder / files.MANIFEST).is_file():
                return cls._load_legacy(folder, mmap)
            manifest = files.read_json(folder / files.MANIFEST, "manifest")
            try:
                store = cls._from_manifest(folder, manifest, mmap, verify)
                break
            except FileNotFoundError:
                if manifest == seen:
                    raise
                seen = manifest  # a writer committed a new generation meanwhile: read its manifest
        if store._map is not None:
            store.resident_limit = resident_limit
        return store

    @classmethod
    def _from_manifest(cls, folder: Path, m: dict, mmap: bool, verify: bool) -> "SequenceStore":
        try:
            dtype, feature = np.dtype(m["dtype"]), tuple(int(f) for f in m["feature_shape"])
            rows, count, data_name, lengths_name = int(m["rows"]), int(m["sequences"]), str(m["data"]), str(m["lengths"])
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"Expected {folder / files.MANIFEST} to hold a complete manifest, got an error reading it: {exc!r}.") from None
        if dtype.hasobject:
            raise ValueError(f"Expected {folder / files.MANIFEST} to name a numeric dtype, got {dtype}.")
        if rows < 0 or count < 0 or any(f < 0 for f in feature):
            raise ValueError(f"Expected {folder / files.MANIFEST} to hold counts and a feature shape >= 0, got rows "
                             f"{rows}, sequences {count}, feature_shape {list(feature)}.")
        lengths = np.load(folder / lengths_name, allow_pickle=False)
        crc = files.crc32(np.ascontiguousarray(lengths, dtype="<i8"))
        if crc != m["lengths_crc32"] or lengths.ndim != 1 or lengths.size != count or int(lengths.sum()) != rows:
            raise ValueError(
                f"Expected {lengths_name} to hold the {count} lengths (sum {rows}, CRC-32 {m['lengths_crc32']:#010x}) "
                f"that {files.MANIFEST} committed, got {lengths.size} lengths (sum {int(lengths.sum())}, CRC-32 "
                f"{crc:#010x}); refusing to pair them with {data_name}."
            )
        need = rows * dtype.itemsize * math.prod(feature)  # Python ints: a corrupt shape cannot overflow
        with open(folder / data_name, "rb") as fh:
            size = os.fstat(fh.fileno()).st_size
            if size < need:
                raise ValueError(
                    f"Expected {data_name} to hold the {rows} committed rows ({need} bytes), got {size} bytes."
                )
            if verify and files.crc32_file(fh, need) != m["data_crc32"]:
                raise ValueError(f"Expected {data_name} to match the CRC-32 in {files.MANIFEST}, got different rows.")
            mapping = None
            if need == 0:
                data = np.zeros((rows,) + feature, dtype)
            elif mmap:
                mapping = _mmap.mmap(fh.fileno(), need, access=_mmap.ACCESS_READ)
                data = np.frombuffer(mapping, dtype, rows * int(np.prod(feature, dtype=np.int64))).reshape((rows,) + feature)
            else:
                fh.seek(0)
                data = np.fromfile(fh, dtype, rows * int(np.prod(feature, dtype=np.int64))).reshape((rows,) + feature)
        store = cls(data, lengths)
        store._map = mapping
        return store

    @classmethod
    def _load_legacy(cls, folder: Path, mmap: bool) -> "SequenceStore":
        """A store saved as data.npy + lengths.npy before manifests (only the row count can be checked)."""
        for name in files.LEGACY:
            if not (folder / name).is_file():
                raise FileNotFoundError(f"Expected a saved SequenceStore at {folder}, but {files.MANIFEST} is missing.")
        data = np.load(folder / "data.npy", mmap_mode="r" if mmap else None, allow_pickle=False)
        return cls(data, np.load(folder / "lengths.npy", allow_pickle=False))

    @classmethod
    def from_iterable(cls, sequences: Iterable, path: str | os.PathLike, *, dtype=None,
                      resume: bool = False) -> "SequenceStore":
        """Build a store at ``path`` from an iterable of ``T_i x *F`` arrays, never all in memory.

        Each sequence goes straight to the data file; the store replaces the one at
        ``path`` (if any) when the iterable is exhausted. With ``resume=True`` a build
        that died at ``path`` is continued (otherwise a new one starts): the sequences
        it had written are skipped in ``sequences``, which must yield the same
        sequences in the same order. The result is memory-mapped.

        Example:
            >>> import tempfile
            >>> folder = tempfile.mkdtemp()
            >>> store = SequenceStore.from_iterable((np.full((t, 2), t) for t in (3, 1, 2)), folder)
            >>> store.lengths.tolist(), store[2].tolist()
            ([3, 1, 2], [[2, 2], [2, 2]])
        """
        mode = "a" if resume and SequenceStoreWriter.building(path) else "w"
        with SequenceStoreWriter(path, mode, dtype=dtype) as writer:
            for sequence in itertools.islice(iter(sequences), writer.count, None):
                writer.append(sequence)
        return cls.load(path)

    @classmethod
    def from_arrow(cls, data, column: str | Sequence[str] | None = None, *, id_column: str | None = None,
                   dtype=None, path: str | os.PathLike | None = None) -> "SequenceStore":
        """Build a store from a pyarrow Table, RecordBatch, ChunkedArray or Array (extra ``arrow``).

        Args:
            data: the Arrow data; an Array or ChunkedArray is the one column.
            column: without ``id_column``, the list column with one sequence per row:
                ``list<number>`` gives ``T x 1`` rows, ``list<fixed_size_list<number, F>>`` or
                ``list<list<number>>`` with every inner list of length ``F`` gives ``T x F``.
                With ``id_column``, the value column(s) of one row per step (``F`` scalar
                columns, or one fixed-size list column). Optional when the table has one
                (value) column.
            id_column: the long layout: each sequence is one run of equal ids, in row
                order; a table sorted by id qualifies, an id in two separate runs is refused.
            dtype: cast the rows to this dtype (default: the column's).
            path: also write the store to this folder and return it memory-mapped.

        With ``path=None``, a single chunk (without nulls) of a list column or of one value
        column becomes the store's rows without a copy: a read-only NumPy view of Arrow's
        values buffer, which the store keeps alive. Several chunks, several value columns or
        a ``dtype`` cast copy. Nulls, ragged inner lists, empty sequences, non-numeric
        values, a missing column and an empty table are refused with an error naming them.

        Example:
            >>> import pyarrow as pa
            >>> store = SequenceStore.from_arrow(pa.table({"x": [[1.0, 2.0, 3.0], [4.0]]}), "x")
            >>> store.lengths.tolist(), store.feature_shape, store[1].tolist()
            ([3, 1], (1,), [[4.0]])
        """
        from fastseq.bptt.columnar import store_from_arrow
        return store_from_arrow(cls, data, column, id_column=id_column, dtype=dtype, path=path)

    @classmethod
    def from_parquet(cls, source: str | os.PathLike, column: str | Sequence[str] | None = None, *,
                     id_column: str | None = None, path: str | os.PathLike | None = None, dtype=None,
                     batch_size: int = 65536) -> "SequenceStore":
        """Build a store from a Parquet file, streamed in record batches when ``path`` is given.

        ``column`` and ``id_column`` read as in :meth:`from_arrow`. With ``path``, the file
        is read ``batch_size`` rows at a time and each sequence goes straight to the store
        at ``path`` (as :meth:`from_iterable`), so a file larger than memory builds in
        memory bounded by a batch plus the longest sequence; in the long layout a sequence
        may span batches. The result is memory-mapped. Without ``path`` the whole file is
        read into memory. Needs the ``arrow`` extra.

        Example:
            >>> import tempfile, pyarrow as pa, pyarrow.parquet as pq
            >>> folder = tempfile.mkdtemp()
            >>> pq.write_table(pa.table({"x": [[1.0, 2.0], [3.0]]}), folder + "/x.parquet")
            >>> store = SequenceStore.from_parquet(folder + "/x.parquet", "x", path=folder + "/store", batch_size=1)
            >>> store.lengths.tolist()
            [2, 1]
        """
        from fastseq.bptt.columnar import store_from_parquet
        return store_from_parquet(cls, source, column, id_column=id_column, path=path, dtype=dtype,
                                  batch_size=batch_size)

    @classmethod
    def from_hf(cls, dataset, column: str | Sequence[str] | None = None, *, id_column: str | None = None,
                dtype=None, path: str | os.PathLike | None = None) -> "SequenceStore":
        """Build a store from a Hugging Face ``datasets.Dataset`` through its Arrow table (extra ``hf``).

        ``column``, ``id_column``, ``dtype`` and ``path`` read as in :meth:`from_arrow`;
        the dataset's own table is read (select/shuffle indices applied), nothing is
        downloaded.

        Example:
            >>> import datasets
            >>> ds = datasets.Dataset.from_dict({"x": [[[1.0, 2.0]], [[3.0, 4.0], [5.0, 6.0]]]})
            >>> SequenceStore.from_hf(ds, "x").lengths.tolist()
            [1, 2]
        """
        from fastseq.bptt.columnar import store_from_hf
        return store_from_hf(cls, dataset, column, id_column=id_column, dtype=dtype, path=path)


def _is_bool(value) -> bool:
    """True for a bool, or an array or tensor of bools (a mask is not a list of indices)."""
    dtype = getattr(value, "dtype", None)
    return isinstance(value, (bool, np.bool_)) or getattr(dtype, "kind", None) == "b" or str(dtype) == "torch.bool"


def _integer_index(index) -> int | None:
    """``index`` as an int if it is one integer (anything with ``__index__`` but a bool), else None."""
    if _is_bool(index):
        raise TypeError(f"Expected a sequence index to be an integer, a slice or a list of integers, "
                        f"got the bool {index!r}.")
    if getattr(index, "ndim", 0) != 0:
        return None
    try:
        return operator.index(index)
    except TypeError:
        return None


def _index_list(index) -> np.ndarray:
    """A 1-D list or array of integer indices, refused with a TypeError naming what came instead."""
    want = "Expected a sequence index to be an integer, a slice or a list of integers"
    if isinstance(index, (str, bytes)) or not hasattr(index, "__len__"):
        raise TypeError(f"{want}, got {type(index).__name__} {index!r}.")
    try:
        arr = np.asarray(index)
    except (TypeError, ValueError):  # ragged nested lists
        raise TypeError(f"{want}, got {type(index).__name__} {index!r}.") from None
    if arr.ndim != 1 or (arr.size and (arr.dtype.kind not in "iu" or _is_bool(arr))):
        raise TypeError(f"{want}, got {type(index).__name__} of dtype {arr.dtype} and shape {arr.shape}.")
    return arr


def _touched_bytes(rows: np.ndarray, row_bytes: int) -> int:
    """An upper bound on the bytes of pages a gather of ``rows`` touched.

    Rows that follow each other along the first (time) axis form a run; a run of
    ``n`` rows spans at most ``n * row_bytes`` bytes plus two partly used pages.
    """
    if rows.size == 0:  # numpy cannot infer the -1 below for no rows
        return 0
    r = rows.reshape(rows.shape[0], -1) if rows.ndim >= 2 else rows.reshape(-1, 1)
    valid = r >= 0
    runs = int(valid.sum())
    if r.shape[0] > 1:
        runs -= int((valid[1:] & valid[:-1] & (r[1:] == r[:-1] + 1)).sum())
    return int(valid.sum()) * row_bytes + 2 * _PAGE * runs


def _checked_arrays(sequences, name: str) -> list[np.ndarray]:
    """The items of a list of ``T_i x *F`` sequences as arrays (views where they already are),
    refusing a feature shape that differs from the first item's and empty items."""
    sequence_list(name, sequences)
    # the per-item work runs in C (map, set): with thousands of short sequences Python
    # loops over the items, not the copy, were most of the cost (train_bptt reads a list per call)
    arrays = list(sequences)
    if not arrays:
        return arrays
    if set(map(type, arrays)) != {np.ndarray} or 0 in map(np.ndim, arrays):
        arrays = [s if type(s) is np.ndarray and s.ndim else files.as_numpy(s, f"{name}[{i}]")
                  for i, s in enumerate(arrays)]
    shapes = list(map(operator.attrgetter("shape"), arrays))
    feature = shapes[0][1:]
    if set(map(operator.itemgetter(slice(1, None)), shapes)) != {feature} or 0 in map(operator.itemgetter(0), shapes):
        i = next(i for i, sh in enumerate(shapes) if sh[1:] != feature or not sh[0])
        if shapes[i][1:] != feature:
            raise ValueError(
                f"Expected every item of {name} to have feature shape {feature}, "
                f"got {shapes[i][1:]} at {name}[{i}]."
            )
        raise ValueError(f"Expected every item of {name} to be non-empty, got length 0 at {name}[{i}].")
    return arrays


class _SequenceViews(SequenceStore):
    """A store over the caller's own arrays (see :meth:`SequenceStore.coerce` with ``copy=False``).

    Nothing is copied: a gather reads each row from the array that holds it, through one
    address per sequence (``csrc/gather.cpp``), so what the store serves is what the arrays
    hold at that moment. ``data`` (a checksum, the whole data set moved to a device) is their
    concatenation, made on first use.
    """

    def __init__(self, arrays: list[np.ndarray], bases: np.ndarray) -> None:
        self._arrays = arrays  # held: the addresses in bases point into them
        self._bases = bases
        self._dtype = arrays[0].dtype
        self._feature = tuple(arrays[0].shape[1:])
        self.lengths = np.fromiter(map(len, arrays), np.int64, len(arrays))
        self.offsets = np.zeros(len(arrays) + 1, dtype=np.int64)
        np.cumsum(self.lengths, out=self.offsets[1:])
        self._part = np.repeat(np.arange(len(arrays), dtype=np.int32), self.lengths)
        self._data: np.ndarray | None = None
        self.resident_limit = None
        self._map = None
        self._touched = 0

    @classmethod
    def over(cls, arrays: list[np.ndarray]) -> "_SequenceViews | None":
        """A store over ``arrays`` when they can be served in place: one numeric dtype (a
        concatenation of several would convert them), every array C-contiguous, fewer than
        2**31 of them. None otherwise."""
        dtypes = set(map(operator.attrgetter("dtype"), arrays))
        if len(arrays) >= 2**31 or len(dtypes) != 1 or arrays[0].dtype.hasobject:
            return None
        bases = np.empty(len(arrays), np.int64)
        if buffer_addresses(arrays, bases) >= 0:  # one is not C-contiguous
            return None
        return cls(arrays, bases)

    @property
    def data(self) -> np.ndarray:
        if self._data is None:
            self._data = np.concatenate(self._arrays, axis=0)
        return self._data

    @property
    def feature_shape(self) -> tuple[int, ...]:
        return self._feature

    @property
    def dtype(self) -> np.dtype:
        return self._dtype

    def __iter__(self) -> Iterator[np.ndarray]:
        return iter(self._arrays)

    def _sequence(self, i: int) -> np.ndarray:
        return self._arrays[i]

    def gather(self, rows: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """Rows ``rows`` (any shape, -1 for zeros) as :func:`gather_rows` gathers them from
        the concatenation, read from the caller's arrays."""
        rows, out = _gather_args(rows, out, self._feature, self._dtype)
        index = np.ascontiguousarray(rows.reshape(-1), dtype=np.int64)
        n_rows = int(self.offsets[-1])
        if index.size == 0 or out.size == 0:
            if index.size and index.max() >= n_rows:
                _refuse_rows(index, n_rows)
            return out
        dst = out.reshape(index.shape[0], -1).view(np.uint8)
        try:
            gather_rows_parted_into(self._bases, self.offsets, self._part, dst.shape[1], index, dst)
        except IndexError:
            _refuse_rows(index, n_rows)
        return out
