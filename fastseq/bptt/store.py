"""SequenceStore: every sequence of a data set in one flat array plus offsets.

The trainer reads a window's rows out of the store with the native gather
(``csrc/gather.cpp``), so a store may be a plain array or a memory map on disk.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import numpy as np

from fastseq._util.atomic import atomic_path
from fastseq.bptt._schedule_cy import gather_rows_into
from fastseq._util.validate import lengths_array

__all__ = ["SequenceStore", "gather_rows", "gather_rows_reference"]


def _as_numpy(x, name: str) -> np.ndarray:
    if hasattr(x, "detach") and hasattr(x, "cpu"):  # a torch tensor, without importing torch
        x = x.detach().cpu().numpy()
    arr = np.asanyarray(x)  # keeps a memory map a memory map
    if arr.ndim == 0:
        raise ValueError(f"Expected {name} to have a time axis (at least 1-D), got a scalar.")
    return arr


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
    rows = np.asarray(rows)
    shape = rows.shape + data.shape[1:]
    if out is None:
        out = np.empty(shape, dtype=data.dtype)
    elif out.shape != shape or out.dtype != data.dtype or not out.flags.c_contiguous:
        raise ValueError(
            f"Expected out to be C-contiguous {data.dtype} of shape {shape}, "
            f"got {out.dtype} of shape {out.shape} (contiguous={out.flags.c_contiguous})."
        )
    index = np.ascontiguousarray(rows.reshape(-1), dtype=np.int64)
    if index.size == 0 or out.size == 0:
        if index.size and (index.max() >= data.shape[0]):
            raise IndexError(f"Expected rows in [-1, {data.shape[0]}), got {index.max()}.")
        return out
    dst = out.reshape(index.shape[0], -1).view(np.uint8)
    gather_rows_into(_byte_rows(data), index, dst)
    return out


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
    with :meth:`load`.

    Example:
        >>> store = SequenceStore.from_sequences([np.ones((3, 2)), np.zeros((1, 2))])
        >>> store.lengths.tolist(), store.feature_shape, store[1].shape
        ([3, 1], (2,), (1, 2))
    """

    def __init__(self, data: np.ndarray, lengths: Sequence[int] | np.ndarray) -> None:
        data = _as_numpy(data, "data")
        self.lengths = lengths_array(lengths)
        total = int(self.lengths.sum())
        if data.shape[0] != total:
            raise ValueError(
                f"Expected data to have sum(lengths) = {total} rows, got {data.shape[0]} rows."
            )
        self.data = data
        self.offsets = np.zeros(self.lengths.shape[0] + 1, dtype=np.int64)
        np.cumsum(self.lengths, out=self.offsets[1:])

    @classmethod
    def from_sequences(cls, sequences, dtype=None, name: str = "sequences") -> "SequenceStore":
        """Concatenate a list of ``T_i x *F`` arrays or tensors (copied; inputs untouched)."""
        if isinstance(sequences, (str, bytes)) or not hasattr(sequences, "__len__"):
            raise TypeError(f"Expected {name} to be a list of arrays or tensors, got {type(sequences).__name__}.")
        arrays = [_as_numpy(s, f"{name}[{i}]") for i, s in enumerate(sequences)]
        if not arrays:
            return cls(np.zeros((0,), dtype=dtype or np.float32), np.zeros(0, np.int64))
        feature = arrays[0].shape[1:]
        for i, a in enumerate(arrays):
            if a.shape[1:] != feature:
                raise ValueError(
                    f"Expected every item of {name} to have feature shape {feature}, "
                    f"got {a.shape[1:]} at {name}[{i}]."
                )
            if a.shape[0] == 0:
                raise ValueError(f"Expected every item of {name} to be non-empty, got length 0 at {name}[{i}].")
        data = np.concatenate(arrays, axis=0)
        if dtype is not None:
            data = data.astype(dtype, copy=False)
        return cls(data, [a.shape[0] for a in arrays])

    @classmethod
    def coerce(cls, data, name: str = "sequences") -> "SequenceStore":
        """Return ``data`` if it is a store, else a store built from a list of sequences."""
        return data if isinstance(data, cls) else cls.from_sequences(data, name=name)

    def __len__(self) -> int:
        return self.lengths.shape[0]

    def __getitem__(self, i: int) -> np.ndarray:
        return self.data[self.offsets[i] : self.offsets[i + 1]]

    @property
    def feature_shape(self) -> tuple[int, ...]:
        return tuple(self.data.shape[1:])

    @property
    def dtype(self) -> np.dtype:
        return self.data.dtype

    def gather(self, rows: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """Rows ``rows`` (any shape, -1 for zeros) of the flat data; see :func:`gather_rows`."""
        return gather_rows(self.data, rows, out)

    def save(self, path: str | os.PathLike) -> None:
        """Write ``path/data.npy`` and ``path/lengths.npy`` atomically (no pickle)."""
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        for name, arr in (("data.npy", np.asarray(self.data)), ("lengths.npy", self.lengths)):
            with atomic_path(path / name) as tmp, open(tmp, "wb") as fh:
                np.save(fh, arr, allow_pickle=False)

    @classmethod
    def load(cls, path: str | os.PathLike, mmap: bool = True) -> "SequenceStore":
        """Open a store written by :meth:`save`, memory-mapping the data by default."""
        path = Path(path)
        for name in ("data.npy", "lengths.npy"):
            if not (path / name).is_file():
                raise FileNotFoundError(f"Expected a saved SequenceStore at {path}, but {name} is missing.")
        data = np.load(path / "data.npy", mmap_mode="r" if mmap else None, allow_pickle=False)
        lengths = np.load(path / "lengths.npy", allow_pickle=False)
        return cls(data, lengths)
