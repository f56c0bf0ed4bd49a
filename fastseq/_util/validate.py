"""Argument checks shared by the public API; messages name argument, expectation, value."""
from __future__ import annotations

import numbers

import numpy as np


def positive_int(name: str, value) -> int:
    """Return value as int, or raise if it is not an integer >= 1."""
    return bounded_int(name, value, low=1)


def lengths_array(lengths, name: str = "lengths") -> np.ndarray:
    """Return a fresh C-contiguous int64 copy of 1-D lengths, all >= 1."""
    arr = real_array(name, lengths, allow_empty=True)
    if arr.ndim != 1:
        raise ValueError(f"Expected {name} to be 1-D, got shape {arr.shape}.")
    if arr.size and not np.issubdtype(arr.dtype, np.integer):
        if not np.all(np.isfinite(arr)) or not np.all(arr == np.floor(arr)):
            raise TypeError(f"Expected {name} to hold integers, got dtype {arr.dtype}.")
    if arr.size and arr.dtype.kind in "fu" and arr.max() >= 2**63:  # the cast to int64 would wrap
        raise ValueError(f"Expected every entry of {name} to be below 2**63, got {arr.max()}.")
    if arr.size and arr.min() < 1:  # before the cast to int64, which would wrap huge negatives
        bad = int(np.argmin(arr))
        raise ValueError(
            f"Expected every entry of {name} to be >= 1 (empty sequences cannot be trained), "
            f"got {name}[{bad}] = {arr[bad]}."
        )
    return np.ascontiguousarray(arr, dtype=np.int64).copy()


def order_array(order, n: int, name: str = "order", of: str | None = None) -> np.ndarray:
    """Return a fresh int64 copy of a 1-D array of distinct sequence ids in [0, n).

    ``of`` names the argument that ``n`` counts (``"lengths"``), so a mismatch names both.
    """
    arr = real_array(name, order, allow_empty=True)
    if arr.ndim != 1:
        raise ValueError(f"Expected {name} to be 1-D, got shape {arr.shape}.")
    if arr.size and not np.issubdtype(arr.dtype, np.integer):
        raise TypeError(f"Expected {name} to hold integer sequence ids, got dtype {arr.dtype}.")
    arr = np.ascontiguousarray(arr, dtype=np.int64).copy()
    if arr.size:
        if arr.min() < 0 or arr.max() >= n:
            counted = "" if of is None else f" (one per entry of {of})"
            raise ValueError(f"Expected {name} to hold ids in [0, {n}){counted}, got values in "
                             f"[{arr.min()}, {arr.max()}].")
        if np.unique(arr).size != arr.size:
            raise ValueError(f"Expected {name} to hold distinct sequence ids, got repeats.")
    return arr


def nonnegative_int(name: str, value) -> int:
    """Return value as int, or raise if it is not an integer >= 0."""
    return bounded_int(name, value, low=0)


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
    # identity or equality of the same type: an array or a look-alike never matches by broadcasting
    ok = any(value is c or (type(value) is type(c) and value == c) for c in choices)
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


def finite_array(name: str, value, allow_empty: bool = False) -> np.ndarray:
    """:func:`real_array` as float64 (a copy), refused if it holds NaN or infinity."""
    arr = real_array(name, value, allow_empty=allow_empty).astype(np.float64)
    if not np.isfinite(arr).all():
        raise ValueError(f"Expected {name} to hold finite numbers, got NaN or infinity.")
    return arr


def float32_array(name: str, value, allow_empty: bool = False) -> np.ndarray:
    """:func:`real_array` as float32 (no copy when it already is), refused if it holds NaN or
    infinity or a value float32 cannot hold (which the cast would turn into infinity).

    >>> float32_array("x", [1.0, 1e300])
    Traceback (most recent call last):
    ...
    ValueError: Expected x to fit in float32 (magnitudes up to 3.4e+38), got 1e+300 at index [1].
    """
    arr = real_array(name, value, allow_empty=allow_empty)
    refuse_non_finite(name, arr)
    top = float(np.finfo(np.float32).max)
    if arr.dtype.kind == "f" and arr.dtype.itemsize > 4 and arr.size and max(arr.max(), -arr.min()) > top:
        big = np.abs(arr) > top  # only on the way to the error: no copy of a good array
        if big.any():
            where = np.unravel_index(int(np.argmax(big)), arr.shape)
            raise ValueError(f"Expected {name} to fit in float32 (magnitudes up to 3.4e+38), got {arr[where]:.3g} "
                             f"at index [{', '.join(map(str, where))}].")
    return arr.astype(np.float32, copy=False)


def refuse_non_finite(name: str, arr: np.ndarray) -> None:
    """Raise a ValueError naming the first NaN or infinity of ``arr`` and how many there are.

    >>> refuse_non_finite("x", np.array([[1.0, 2.0], [np.inf, np.nan]]))
    Traceback (most recent call last):
    ...
    ValueError: Expected x to hold finite numbers, got inf at index [1, 0] (2 of its 4 values are NaN or infinite).
    """
    if arr.dtype.kind not in "fc":  # integers and bools are always finite
        return
    bad = ~np.isfinite(arr)
    if bad.any():
        where = np.unravel_index(int(np.argmax(bad)), arr.shape)
        raise ValueError(f"Expected {name} to hold finite numbers, got {arr[where]} at index "
                         f"[{', '.join(map(str, where))}] ({int(bad.sum())} of its {arr.size} values are NaN "
                         "or infinite).")


def bounded_int(name: str, value, low: int = 1, high: int | None = None) -> int:
    """Return value as int, or raise if it is not an integer in [low, high]."""
    want = f"an integer >= {low}" if high is None else f"an integer in [{low}, {high}]"
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"Expected {name} to be {want}, got {type(value).__name__} {value!r}.")
    if value < low or (high is not None and value > high):
        raise ValueError(f"Expected {name} to be {want}, got {value}.")
    return int(value)


def seed_arg(name: str, value) -> int | None:
    """A seed for ``np.random.default_rng``: None or an integer >= 0."""
    if value is None:
        return None
    return bounded_int(name, value, low=0)


def flag(name: str, value) -> bool:
    """A yes/no option: a bool (or NumPy bool), nothing else."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"Expected {name} to be True or False, got {type(value).__name__} {value!r}.")
    return bool(value)


def path_arg(name: str, value, what: str = "a path"):
    """A path (str or os.PathLike, not empty) as a ``pathlib.Path``."""
    import os
    from pathlib import Path

    if not isinstance(value, (str, os.PathLike)) or (isinstance(value, str) and not value):
        raise TypeError(f"Expected {name} to be {what} (str or os.PathLike), got {type(value).__name__} "
                        f"{value!r}.")
    return Path(value)


def file_path(name: str, value):
    """A file path (str or os.PathLike, not empty, not a folder) as a ``pathlib.Path``."""
    path = path_arg(name, value, "a file path")
    if path.is_dir():
        raise IsADirectoryError(f"Expected {name} to be a file, got the folder {str(path)!r}.")
    return path


def folder_path(name: str, value):
    """A folder path (str or os.PathLike, not empty) as a ``pathlib.Path``; existence is the caller's check."""
    return path_arg(name, value, "a folder path")


def instance_of(name: str, value, cls: type, what: str | None = None):
    """``value`` if it is a ``cls``, else a TypeError naming the argument."""
    if not isinstance(value, cls):
        raise TypeError(f"Expected {name} to be {what or 'a ' + cls.__name__}, got {type(value).__name__}.")
    return value


def sequence_list(name: str, value) -> None:
    """Refuse what cannot be a list of sequences: text, non-sized objects and 0-D arrays."""
    if isinstance(value, (str, bytes)) or not hasattr(value, "__len__") or getattr(value, "ndim", 1) == 0:
        raise TypeError(f"Expected {name} to be a list of arrays or tensors, got {type(value).__name__}"
                        f"{' (0-D)' if getattr(value, 'ndim', 1) == 0 else ''}.")


def torch_device(name: str, value):
    """A ``torch.device`` from a device, its name (``"cpu"``, ``"cuda:0"``) or a CUDA index."""
    import torch

    if isinstance(value, torch.device):
        return value
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (str, numbers.Integral)):
        raise TypeError(f"Expected {name} to be a torch.device, a device name or an index, "
                        f"got {type(value).__name__} {value!r}.")
    try:
        return torch.device(value if isinstance(value, str) else int(value))
    except (RuntimeError, ValueError, TypeError, OverflowError):
        raise ValueError(f"Expected {name} to be a device such as 'cpu' or 'cuda:0', got {value!r}.") from None
