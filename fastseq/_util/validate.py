"""Argument checks shared by the public API; messages name argument, expectation, value."""
from __future__ import annotations

import numbers

import numpy as np


def positive_int(name: str, value) -> int:
    """Return value as int, or raise if it is not an integer >= 1."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"Expected {name} to be an integer >= 1, got {type(value).__name__} {value!r}.")
    if value < 1:
        raise ValueError(f"Expected {name} to be an integer >= 1, got {value}.")
    return int(value)


def lengths_array(lengths, name: str = "lengths") -> np.ndarray:
    """Return a fresh C-contiguous int64 copy of 1-D lengths, all >= 1."""
    arr = np.asarray(lengths)
    if arr.ndim != 1:
        raise ValueError(f"Expected {name} to be 1-D, got shape {arr.shape}.")
    if arr.size and not np.issubdtype(arr.dtype, np.integer):
        if not np.all(np.isfinite(arr)) or not np.all(arr == np.floor(arr)):
            raise TypeError(f"Expected {name} to hold integers, got dtype {arr.dtype}.")
    arr = np.ascontiguousarray(arr, dtype=np.int64).copy()
    if arr.size and arr.min() < 1:
        bad = int(np.argmin(arr))
        raise ValueError(
            f"Expected every entry of {name} to be >= 1 (empty sequences cannot be trained), "
            f"got {name}[{bad}] = {arr[bad]}."
        )
    return arr


def order_array(order, n: int, name: str = "order") -> np.ndarray:
    """Return a fresh int64 copy of a 1-D array of distinct sequence ids in [0, n)."""
    arr = np.asarray(order)
    if arr.ndim != 1:
        raise ValueError(f"Expected {name} to be 1-D, got shape {arr.shape}.")
    if arr.size and not np.issubdtype(arr.dtype, np.integer):
        raise TypeError(f"Expected {name} to hold integer sequence ids, got dtype {arr.dtype}.")
    arr = np.ascontiguousarray(arr, dtype=np.int64).copy()
    if arr.size:
        if arr.min() < 0 or arr.max() >= n:
            raise ValueError(f"Expected {name} to hold ids in [0, {n}), got values in [{arr.min()}, {arr.max()}].")
        if np.unique(arr).size != arr.size:
            raise ValueError(f"Expected {name} to hold distinct sequence ids, got repeats.")
    return arr
