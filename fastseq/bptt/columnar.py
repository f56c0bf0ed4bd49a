"""Build a SequenceStore from columnar data: Arrow tables, Parquet files, Hugging Face datasets.

Arrow keeps a list column as offsets plus one flat values buffer, the layout of a store, so
the rows are read from the buffers, never through Python lists. Two layouts are understood:

- *wide*: one row per sequence, a ``list<number>`` column (``T x 1`` rows) or a
  ``list<fixed_size_list<number, F>>`` / ``list<list<number>>`` column whose inner lists all
  have length ``F`` (``T x F`` rows);
- *long*: one row per step, an ``id_column`` and one or more numeric value columns (a scalar
  column each gives one feature, or one ``fixed_size_list`` column gives ``F``); each
  sequence's steps are contiguous rows (sorted by id is one such order), in row order.

pyarrow (extra ``arrow``) and datasets (extra ``hf``) are imported only when called.
"""
from __future__ import annotations

import os
from typing import Iterator, Sequence, TypeVar

import numpy as np

from fastseq.bptt.store_writer import SequenceStoreWriter

Store = TypeVar("Store")  # SequenceStore, passed in as cls: store.py imports this module, not the reverse

__all__ = ["store_from_arrow", "store_from_parquet", "store_from_hf"]


def _pyarrow():
    try:
        import pyarrow
    except ImportError:
        raise ImportError("Expected pyarrow to be installed to read Arrow or Parquet data, got an ImportError: "
                          "pip install 'fastseq[arrow]'.") from None
    return pyarrow


def _columns(column: str | Sequence[str] | None, names: list[str], layout: str) -> list[str]:
    """The value columns asked for, checked against the table's ``names``."""
    if column is None:
        if len(names) != 1:
            raise ValueError(f"Expected column to name the {layout} column(s) of a table with several, got None "
                             f"(the table has {names}).")
        column = names[0]
    wanted = [column] if isinstance(column, str) else list(column)
    if not wanted:
        raise ValueError("Expected column to name at least one column, got an empty list.")
    for name in wanted:
        if name not in names:
            raise KeyError(f"Expected column {name!r} in the table, got columns {names}.")
    return wanted


def _numeric(pa, dtype, what: str) -> None:
    if not (pa.types.is_integer(dtype) or pa.types.is_floating(dtype)):
        raise TypeError(f"Expected {what} to hold numbers (integer or floating), got Arrow type {dtype}.")


def _no_nulls(array, what: str) -> None:
    if array.null_count:
        first = int(np.flatnonzero(np.asarray(array.is_null()))[0])
        raise ValueError(f"Expected {what} to hold no nulls, got {array.null_count} (the first at row {first}).")


def _values(pa, array, what: str) -> np.ndarray:
    """A primitive numeric array as NumPy, a view of its buffer (it has no nulls)."""
    _numeric(pa, array.type, what)
    _no_nulls(array, what)
    return array.to_numpy(zero_copy_only=True)


def _wide_chunk(pa, chunk, what: str, row0: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``(rows R x F, lengths)`` of one list array; ``rows`` is a view of Arrow's buffer."""
    t = chunk.type
    if not (pa.types.is_list(t) or pa.types.is_large_list(t)):
        raise TypeError(f"Expected {what} to be a list column (one sequence per row), got Arrow type {t}; "
                        f"pass id_column for one row per step.")
    _no_nulls(chunk, what)
    lengths = np.diff(chunk.offsets.to_numpy()).astype(np.int64)
    if lengths.size and lengths.min() < 1:
        bad = int(np.argmin(lengths))
        raise ValueError(f"Expected every sequence of {what} to be non-empty, got an empty list at row {row0 + bad}.")
    inner = chunk.flatten()  # the rows this slice covers, zero-copy
    inner_t = inner.type
    if pa.types.is_fixed_size_list(inner_t) or pa.types.is_list(inner_t) or pa.types.is_large_list(inner_t):
        _no_nulls(inner, f"the steps of {what}")
        if pa.types.is_fixed_size_list(inner_t):
            width = inner_t.list_size
        else:
            sizes = np.diff(inner.offsets.to_numpy())
            width = int(sizes[0]) if sizes.size else 0
            if sizes.size and (sizes != width).any():
                step = int(np.flatnonzero(sizes != width)[0])
                seq = row0 + int(np.searchsorted(np.cumsum(lengths), step, side="right"))
                raise ValueError(f"Expected every step of {what} to have the same number of features {width}, "
                                 f"got {int(sizes[step])} in the sequence at row {seq}.")
        flat = _values(pa, inner.flatten(), f"the values of {what}")
        return flat.reshape(len(inner), width), lengths  # not -1: an empty column has width 0
    return _values(pa, inner, f"the values of {what}").reshape(-1, 1), lengths


def _long_chunk(pa, table, names: list[str]) -> np.ndarray:
    """The ``R x F`` rows of the value columns of a long table (a view when it can be)."""
    parts = []
    for name in names:
        col = table.column(name)
        arr = col.combine_chunks() if col.num_chunks != 1 else col.chunk(0)
        if pa.types.is_fixed_size_list(arr.type):
            _no_nulls(arr, f"column {name!r}")
            parts.append(_values(pa, arr.flatten(), f"column {name!r}").reshape(-1, arr.type.list_size))
        else:
            parts.append(_values(pa, arr, f"column {name!r}").reshape(-1, 1))
    return parts[0] if len(parts) == 1 else np.concatenate(parts, axis=1)


def _runs(ids: np.ndarray) -> np.ndarray:
    """Start positions of the runs of equal ids (plus the end)."""
    change = np.flatnonzero(ids[1:] != ids[:-1]) + 1
    return np.concatenate([[0], change, [ids.size]]).astype(np.int64)


def _id_array(table, id_column: str) -> np.ndarray:
    if id_column not in table.column_names:
        raise KeyError(f"Expected id_column {id_column!r} in the table, got columns {table.column_names}.")
    col = table.column(id_column)
    _no_nulls(col.combine_chunks() if col.num_chunks != 1 else col.chunk(0), f"id_column {id_column!r}")
    return col.to_numpy()


def _check_contiguous(starts_ids: np.ndarray, id_column: str) -> None:
    uniq, counts = np.unique(starts_ids, return_counts=True)
    if (counts > 1).any():
        raise ValueError(f"Expected the rows of each sequence to be contiguous in id_column {id_column!r} "
                         f"(sort the table by it), got id {uniq[np.argmax(counts > 1)].tolist()!r} in "
                         f"{int(counts.max())} separate runs.")


def _as_table(pa, data, column):
    """A Table from a Table, RecordBatch, ChunkedArray or Array (one column named by ``column``)."""
    if isinstance(data, pa.Table):
        return data
    if isinstance(data, pa.RecordBatch):
        return pa.Table.from_batches([data])
    if isinstance(data, (pa.Array, pa.ChunkedArray)):
        if column is None or isinstance(column, str):
            return pa.table({column or "values": data})
        names = list(column)
        if len(names) != 1:
            raise ValueError(f"Expected column to name the one column of a bare {type(data).__name__}, got {names}.")
        return pa.table({names[0]: data})
    raise TypeError(f"Expected data to be a pyarrow Table, RecordBatch, ChunkedArray or Array, "
                    f"got {type(data).__name__}.")


def _finish(cls: type[Store], rows: np.ndarray, lengths: np.ndarray, dtype, path) -> Store:
    if lengths.size == 0:
        raise ValueError("Expected data to hold at least one sequence, got an empty table.")
    if dtype is not None:
        rows = rows.astype(dtype, copy=False)
    store = cls(rows, lengths)
    if path is None:
        return store
    with SequenceStoreWriter(path, "w", dtype=dtype) as writer:
        writer.extend(store.data, store.lengths)
    return cls.load(path)


def store_from_arrow(cls: type[Store], data, column: str | Sequence[str] | None = None, *,
                     id_column: str | None = None, dtype=None, path: str | os.PathLike | None = None) -> Store:
    """See :meth:`SequenceStore.from_arrow`."""
    pa = _pyarrow()
    table = _as_table(pa, data, column)
    if id_column is None:
        name = _columns(column, table.column_names, "list")
        if len(name) != 1:
            raise ValueError(f"Expected column to name one list column, got {name}; several value columns "
                             f"need id_column (one row per step).")
        col = table.column(name[0])
        if col.num_chunks == 0:
            raise ValueError("Expected data to hold at least one sequence, got an empty table.")
        arr = col.chunk(0) if col.num_chunks == 1 else col.combine_chunks()  # one chunk stays a view
        rows, lengths = _wide_chunk(pa, arr, f"column {name[0]!r}")
        return _finish(cls, rows, lengths, dtype, path)
    names = _columns(column, [n for n in table.column_names if n != id_column], "value")
    ids = _id_array(table, id_column)
    rows = _long_chunk(pa, table, names)
    starts = _runs(ids)
    if ids.size:
        _check_contiguous(ids[starts[:-1]], id_column)
    return _finish(cls, rows, np.diff(starts) if ids.size else np.zeros(0, np.int64), dtype, path)


def _parquet_blocks(pa, batches: Iterator, names: list[str],
                    id_column: str | None) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """``(rows, lengths)`` blocks of whole sequences from record batches (long layout: may span batches)."""
    row0 = 0
    if id_column is None:
        for batch in batches:
            yield _wide_chunk(pa, batch.column(0), f"column {names[0]!r}", row0)
            row0 += batch.num_rows
        return
    for sequence in _long_sequences(pa, batches, names, id_column):
        yield sequence, np.array([sequence.shape[0]])


def _long_sequences(pa, batches: Iterator, names: list[str], id_column: str) -> Iterator[np.ndarray]:
    """One sequence at a time from the long layout's batches, joined across batch boundaries."""
    row0 = 0
    seen: set = set()
    carry_id, carry = None, []
    for batch in batches:
        table = pa.Table.from_batches([batch])
        ids = _id_array(table, id_column)
        if not ids.size:
            continue
        rows = _long_chunk(pa, table, names)
        starts = _runs(ids)
        for k in range(starts.size - 1):
            key = ids[starts[k]:starts[k] + 1].tolist()[0]  # a plain Python value, hashable
            part = rows[starts[k]:starts[k + 1]]
            if carry and key == carry_id:
                carry.append(part)
                continue
            if carry:
                yield np.concatenate(carry) if len(carry) > 1 else carry[0]
            if key in seen:
                raise ValueError(f"Expected the rows of each sequence to be contiguous in id_column {id_column!r} "
                                 f"(sort the file by it), got id {key!r} again at row {row0 + int(starts[k])}.")
            seen.add(key)
            carry_id, carry = key, [part.copy()]  # the batch's buffer is released after this one
        row0 += batch.num_rows
    if carry:
        yield np.concatenate(carry) if len(carry) > 1 else carry[0]


def store_from_parquet(cls: type[Store], source: str | os.PathLike, column: str | Sequence[str] | None = None,
                       *, id_column: str | None = None, path: str | os.PathLike | None = None, dtype=None,
                       batch_size: int = 65536) -> Store:
    """See :meth:`SequenceStore.from_parquet`."""
    pa = _pyarrow()
    import pyarrow.parquet as pq

    if not isinstance(batch_size, (int, np.integer)) or isinstance(batch_size, bool) or batch_size < 1:
        raise ValueError(f"Expected batch_size to be a positive integer, got {batch_size!r}.")
    parquet = pq.ParquetFile(source)
    all_names = parquet.schema_arrow.names
    if path is None:
        return store_from_arrow(cls, parquet.read(), column, id_column=id_column, dtype=dtype)
    if id_column is None:
        names = _columns(column, all_names, "list")
        if len(names) != 1:
            raise ValueError(f"Expected column to name one list column, got {names}; several value columns "
                             f"need id_column (one row per step).")
        read = names
    else:
        if id_column not in all_names:
            raise KeyError(f"Expected id_column {id_column!r} in the table, got columns {all_names}.")
        names = _columns(column, [n for n in all_names if n != id_column], "value")
        read = [id_column] + names
    batches = parquet.iter_batches(batch_size=int(batch_size), columns=read)
    with SequenceStoreWriter(path, "w", dtype=dtype) as writer:
        for rows, lengths in _parquet_blocks(pa, batches, names, id_column):
            writer.extend(rows, lengths)
        if writer.count == 0:
            writer.close()
            raise ValueError(f"Expected source {os.fspath(source)!r} to hold at least one sequence, "
                             f"got an empty table.")
    return cls.load(path)


def store_from_hf(cls: type[Store], dataset, column: str | Sequence[str] | None = None, *, id_column: str | None = None,
                  dtype=None, path: str | os.PathLike | None = None) -> Store:
    """See :meth:`SequenceStore.from_hf`."""
    try:
        import datasets
    except ImportError:
        raise ImportError("Expected the datasets package to be installed to read a Hugging Face dataset, got an "
                          "ImportError: pip install 'fastseq[hf]'.") from None
    if not isinstance(dataset, datasets.Dataset):
        raise TypeError(f"Expected dataset to be a datasets.Dataset (pick a split of a DatasetDict), "
                        f"got {type(dataset).__name__}.")
    # the Arrow table behind the dataset, with any select/shuffle indices applied
    table = dataset.with_format("arrow")[:]
    return store_from_arrow(cls, table, column, id_column=id_column, dtype=dtype, path=path)
