"""A real variable-length corpus that ships with every Python: the standard library's source.

Each sequence is one paragraph (a block between blank lines) of a top-level ``.py``
module of the running interpreter's standard library, as bytes. On CPython 3.11
that is about 18,600 sequences of 2 to 37,000 bytes (median about 150): the
long-tailed length distribution that makes padded batches wasteful.
"""
from __future__ import annotations

import os
import re
import sysconfig
from pathlib import Path

import numpy as np

from fastseq._util.memory import check_fits
from fastseq._util.validate import positive_int, real_array

__all__ = ["stdlib_paragraphs", "one_hot_bytes"]

_BLANK_LINES = re.compile(rb"\n[ \t\r\f\v]*\n")


def stdlib_paragraphs(
    max_sequences: int | None = None,
    min_length: int = 2,
    max_length: int | None = None,
    root: str | Path | None = None,
) -> list[np.ndarray]:
    """Return paragraphs of the standard library's source as ``uint8`` arrays.

    Files are read in sorted order, so the corpus is the same on every run of the
    same Python version.

    Args:
        max_sequences: keep only the first this many paragraphs.
        min_length: drop paragraphs shorter than this many bytes.
        max_length: drop paragraphs longer than this many bytes (None keeps all).
        root: folder of ``.py`` files to read instead of the standard library.

    Example:
        >>> seqs = stdlib_paragraphs(max_sequences=5)
        >>> len(seqs), seqs[0].dtype
        (5, dtype('uint8'))
    """
    if max_sequences is not None:
        max_sequences = positive_int("max_sequences", max_sequences)
    min_length = positive_int("min_length", min_length)
    if max_length is not None:
        max_length = positive_int("max_length", max_length)
    if root is not None and not isinstance(root, (str, os.PathLike)):
        raise TypeError(f"Expected root to be a folder path, got {type(root).__name__} {root!r}.")
    folder = Path(root) if root is not None else Path(sysconfig.get_paths()["stdlib"])
    files = sorted(folder.glob("*.py"))
    if not files:
        raise FileNotFoundError(f"Expected .py files in root {str(folder)!r}, found none.")
    out: list[np.ndarray] = []
    for path in files:
        for block in _BLANK_LINES.split(path.read_bytes()):
            block = block.strip(b"\n")
            if len(block) < min_length or (max_length is not None and len(block) > max_length):
                continue
            out.append(np.frombuffer(block, dtype=np.uint8).copy())
            if max_sequences is not None and len(out) >= max_sequences:
                return out
    return out


def one_hot_bytes(seq: np.ndarray, vocabulary: int = 256, dtype=np.float32) -> np.ndarray:
    """Return a ``T x vocabulary`` one-hot encoding of a byte sequence.

    >>> one_hot_bytes(np.array([1, 0], np.uint8), vocabulary=3).tolist()
    [[0.0, 1.0, 0.0], [1.0, 0.0, 0.0]]
    """
    vocabulary = positive_int("vocabulary", vocabulary)
    seq = real_array("seq", seq, ndim=(1,), allow_empty=True)
    if seq.size and (not np.issubdtype(seq.dtype, np.integer) or seq.min() < 0 or seq.max() >= vocabulary):
        raise ValueError(f"Expected seq to hold integers in [0, vocabulary={vocabulary}), got dtype {seq.dtype} "
                         f"with values in [{seq.min()}, {seq.max()}].")
    check_fits(f"one_hot_bytes(vocabulary={vocabulary})", float(seq.shape[0]) * vocabulary * np.dtype(dtype).itemsize)
    out = np.zeros((seq.shape[0], vocabulary), dtype=dtype)
    out[np.arange(seq.shape[0]), seq.astype(np.int64)] = 1
    return out
