"""The fastest reasonable NumPy slot-swap scheduler we could write: a peer for benchmarks.

Admission is inherently sequential (the slot that frees first takes the next sequence;
ties go to the lower slot), so it runs once per epoch with a heap over the B slots.
Each window is then built with whole-array operations: one ``searchsorted`` of the
``K x B`` (slot, time) keys into the sequences sorted by (slot, start), no Python loop
over steps or slots. Output equals ``SlotSchedule(..., compact=False)`` window by window.
"""
from __future__ import annotations

import heapq

import numpy as np


def numpy_schedule(lengths: np.ndarray, batch: int, bptt: int, order: np.ndarray | None = None):
    """Yield ``(rows, sequence, reset, valid, end)`` per window, each ``K x B``."""
    lengths = np.asarray(lengths, dtype=np.int64)
    order = np.arange(lengths.size, dtype=np.int64) if order is None else np.asarray(order, dtype=np.int64)
    n = order.size
    if n == 0:
        return
    offsets = np.zeros(lengths.size + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    # admission: heap of (time the slot frees, slot); lower slot first on ties
    slot = np.empty(n, dtype=np.int64)
    start = np.empty(n, dtype=np.int64)
    heap = [(0, j) for j in range(min(batch, n))]
    lens = lengths[order].tolist()
    for i in range(n):
        t, j = heapq.heappop(heap)
        slot[i], start[i] = j, t
        heapq.heappush(heap, (t + lens[i], j))
    seq_len = lengths[order]
    horizon = int((start + seq_len).max())
    key = slot * horizon + start
    by_key = np.argsort(key, kind="stable")
    key, seq_sorted = key[by_key], order[by_key]
    start_sorted, len_sorted, slot_sorted = start[by_key], seq_len[by_key], slot[by_key]
    cols = np.arange(batch, dtype=np.int64)
    for t0 in range(0, horizon, bptt):
        steps = np.arange(t0, min(t0 + bptt, horizon), dtype=np.int64)
        q = cols[None, :] * horizon + steps[:, None]
        i = np.searchsorted(key, q, side="right") - 1
        i0 = np.maximum(i, 0)
        pos = steps[:, None] - start_sorted[i0]
        valid = (i >= 0) & (slot_sorted[i0] == cols[None, :]) & (pos < len_sorted[i0])
        s = seq_sorted[i0]
        rows = np.where(valid, offsets[s] + pos, -1)
        sequence = np.where(valid, s, -1)
        yield rows, sequence, valid & (pos == 0), valid, valid & (pos == len_sorted[i0] - 1)


def numpy_gather_into(data: np.ndarray, rows: np.ndarray, out: np.ndarray, index: np.ndarray,
                      idle: np.ndarray) -> np.ndarray:
    """``data[rows]`` with zero rows where ``rows < 0``, into reused ``out`` (``index`` and
    ``idle`` are reused scratch buffers of rows' shape): the NumPy peer of ``gather_rows``."""
    np.maximum(rows, 0, out=index)
    np.take(data, index, axis=0, out=out)
    np.less(rows, 0, out=idle)
    if idle.any():
        out[idle] = 0
    return out
