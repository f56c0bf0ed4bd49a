"""Lay clusters of tiles out like words in a paragraph.

Each cluster is a word, one blank cell separates words on a line, a word is never
broken across lines unless it is longer than a line, line breaks minimize the
raggedness (sum of squared free cells over all lines), and every line is centered.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from fastseq._util.validate import positive_int

__all__ = ["MosaicLayout", "paragraph_layout"]


@dataclass(frozen=True)
class MosaicLayout:
    """Where each tile goes on a grid of ``R x C`` cells.

    Attributes:
        cells: ``R x C`` int64, the tile index shown in each cell, -1 for a blank cell.
        clusters: the clusters laid out, each an int64 array of tile indices in order.
    """

    cells: np.ndarray
    clusters: tuple[np.ndarray, ...]

    @property
    def width(self) -> int:
        """C, the number of cells per line."""
        return int(self.cells.shape[1])

    @property
    def lines(self) -> int:
        """R, the number of lines."""
        return int(self.cells.shape[0])


def paragraph_layout(clusters: Sequence[Sequence[int]], width: int) -> MosaicLayout:
    """Place clusters on lines of ``width`` cells like words in a centered paragraph.

    A cluster longer than a line starts on a new line, fills whole lines, and its
    remainder is a word like any other. Line breaks minimize the sum over lines of
    the squared number of free cells (so lines come out balanced), then each line is
    centered (an odd free cell goes to the right).

    Args:
        clusters: sequence of clusters, each a non-empty sequence of tile indices; all
            indices distinct and >= 0 (for example from :func:`fastseq.mosaic.split_clusters`).
        width: cells per line, >= 1.

    Returns:
        A :class:`MosaicLayout` for :func:`fastseq.tile`.

    Example:
        >>> lay = paragraph_layout([[0, 1, 2], [3, 4], [5]], width=6)
        >>> lay.cells.tolist()
        [[-1, 0, 1, 2, -1, -1], [-1, 3, 4, -1, 5, -1]]
    """
    width = positive_int("width", width)
    if not isinstance(clusters, (list, tuple, np.ndarray)):
        raise TypeError(f"Expected clusters to be a sequence of index sequences, got {type(clusters).__name__}.")
    try:
        words = [np.asarray(c).ravel() for c in clusters]
    except (TypeError, ValueError) as exc:
        raise ValueError(f"Expected clusters to hold sequences of tile indices ({exc}).") from None
    for i, w in enumerate(words):
        if w.size and not np.issubdtype(w.dtype, np.integer):
            raise TypeError(f"Expected clusters to hold integer tile indices, got dtype {w.dtype} in clusters[{i}].")
    words = [w.astype(np.int64) for w in words]
    # the widest useful line holds every cluster with a blank after each; far wider lines are
    # blank cells only, and at 2**31 cells would take minutes and gigabytes to build
    widest = max(sum(w.size + 1 for w in words) + 1, 1 << 16)
    if width > widest:
        raise ValueError(f"Expected width <= {widest} (all {len(words)} clusters fit on one line), got {width}.")
    for i, w in enumerate(words):
        if w.size == 0:
            raise ValueError(f"Expected every cluster to be non-empty, got clusters[{i}] empty.")
    ids = np.concatenate(words) if words else np.empty(0, dtype=np.int64)
    if ids.size and ids.min() < 0:
        raise ValueError(f"Expected tile indices >= 0 in clusters, got {ids.min()}.")
    if np.unique(ids).size != ids.size:
        raise ValueError("Expected each tile index at most once in clusters, got repeats.")

    lines: list[list[np.ndarray]] = []
    segment: list[np.ndarray] = []  # words between forced breaks
    for w in words:
        if w.size <= width:
            segment.append(w)
            continue
        lines += _break_lines(segment, width)
        full = (w.size // width) * width
        lines += [[w[i : i + width]] for i in range(0, full, width)]
        segment = [w[full:]] if full < w.size else []
    lines += _break_lines(segment, width)

    cells = np.full((max(1, len(lines)), width), -1, dtype=np.int64)
    for r, line in enumerate(lines):
        used = sum(w.size for w in line) + len(line) - 1
        c = (width - used) // 2
        for w in line:
            cells[r, c : c + w.size] = w
            c += w.size + 1
    return MosaicLayout(cells=cells, clusters=tuple(words))


def _break_lines(words: list[np.ndarray], width: int) -> list[list[np.ndarray]]:
    """Optimal breaks for words no longer than ``width``: minimum sum of squared slack."""
    n = len(words)
    if n == 0:
        return []
    lengths = [w.size for w in words]
    best = [0.0] + [np.inf] * n  # best[j]: cost of laying out words[:j]
    start = [0] * (n + 1)  # start[j]: first word of the last line in that layout
    for j in range(1, n + 1):
        used = -1
        for i in range(j - 1, -1, -1):  # last line holds words[i:j]
            used += lengths[i] + 1
            if used > width:
                break
            cost = best[i] + (width - used) ** 2
            if cost < best[j]:
                best[j], start[j] = cost, i
    out = []
    j = n
    while j > 0:
        out.append(words[start[j] : j])
        j = start[j]
    return out[::-1]
