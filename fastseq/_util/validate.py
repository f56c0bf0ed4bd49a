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


def nonnegative_int(name: str, value) -> int:
    """Return value as int, or raise if it is not an integer >= 0."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"Expected {name} to be an integer >= 0, got {type(value).__name__} {value!r}.")
    if value < 0:
        raise ValueError(f"Expected {name} to be an integer >= 0, got {value}.")
    return int(value)


def finite_float(name: str, value, low: float = -np.inf, high: float = np.inf) -> float:
    """Return value as float, or raise if it is not a finite real number in [low, high]."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"Expected {name} to be a real number, got {type(value).__name__} {value!r}.")
    value = float(value)
    if not (np.isfinite(value) and low <= value <= high):
        raise ValueError(f"Expected {name} to be a finite number in [{low}, {high}], got {value}.")
    return value


def one_of(name: str, value, choices) -> object:
    """Return value if it is one of ``choices``, else raise naming them."""
    try:
        ok = value in choices
    except TypeError:  # unhashable
        ok = False
    if not ok:
        raise ValueError(f"Expected {name} to be one of {', '.join(map(repr, choices))}, got {value!r}.")
    return value


def real_array(name: str, value, ndim: tuple[int, ...] | None = None, allow_empty: bool = False) -> np.ndarray:
    """``np.asarray(value)`` checked to hold real numbers (bool allowed), with ``ndim`` dims."""
    if hasattr(value, "detach"):  # torch tensor: no autograd, on the CPU
        value = value.detach().cpu().numpy()
    try:
        arr = np.asarray(value)
    except (ValueError, TypeError) as exc:  # ragged nested lists
        raise ValueError(f"Expected {name} to be a numeric array, got {type(value).__name__} ({exc}).") from None
    if arr.dtype != np.bool_ and (not np.issubdtype(arr.dtype, np.number) or np.iscomplexobj(arr)):
        raise TypeError(f"Expected {name} to hold real numbers, got dtype {arr.dtype}.")
    if ndim is not None and arr.ndim not in ndim:
        want = " or ".join(f"{d}-D" for d in ndim)
        raise ValueError(f"Expected {name} to be {want}, got shape {arr.shape}.")
    if not allow_empty and arr.size == 0:
        raise ValueError(f"Expected {name} to be non-empty, got shape {arr.shape}.")
    return arr
