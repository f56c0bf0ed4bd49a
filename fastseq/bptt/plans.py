"""Packing plans: how a ``K x W`` slot-swap window is cut at its resets into pieces.

A plan depends only on the window's reset and valid masks, so the window loader
computes it in NumPy while it prepares the window, and the engines
(:mod:`fastseq.bptt.engines`) only follow it. ``"packed"`` plans lay the pieces out
for one ``PackedSequence`` call; ``"dense"`` plans sort them by length into a few
dense groups (see :mod:`fastseq.bptt._engines_dense`).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
from torch import Tensor

from fastseq._util.validate import one_of, real_array, torch_device

__all__ = ["SegmentPlan", "DensePlan", "segment_plan", "dense_plan", "window_plan", "default_engine",
           "last_piece_of_slot"]


@dataclass(frozen=True)
class SegmentPlan:
    """How one ``K x W`` window is cut into pieces and packed (all CPU int64 tensors).

    Pieces are sorted by length, longest first, as ``PackedSequence`` requires.

    Attributes:
        batch_sizes: ``T`` pieces alive at each packed time step (``T`` = longest piece).
        source: ``R`` flat window position ``k * W + b`` of each packed row (``R`` real steps).
        target: ``K * W`` packed row of each window position; ``R`` where the slot idles.
        piece_slot: ``P`` slot each piece runs in.
        piece_reset: ``P`` bools, the piece starts a new sequence (seed state).
        final: ``W`` index into ``cat(piece final states, carried states)`` giving each
            slot's state after the window (its last piece, or its carried state if idle).
    """

    batch_sizes: Tensor
    source: Tensor
    target: Tensor
    piece_slot: Tensor
    piece_reset: Tensor
    final: Tensor

    @property
    def pieces(self) -> int:
        return int(self.piece_slot.shape[0])

    def to(self, device: torch.device | str) -> "SegmentPlan":
        """Move the index tensors used on the device (``batch_sizes`` stays on the CPU)."""
        move = lambda t: t.to(device, non_blocking=True)  # noqa: E731
        return SegmentPlan(self.batch_sizes, move(self.source), move(self.target),
                           move(self.piece_slot), move(self.piece_reset), move(self.final))


def _mask(name: str, m, shape=None) -> np.ndarray:
    if isinstance(m, np.ndarray) and m.dtype == np.bool_:  # the loader's masks: nothing to convert
        arr = m
    else:
        arr = real_array(name, m, allow_empty=True)
    if arr.ndim != 2:
        raise ValueError(f"Expected {name} to be a K x W mask, got shape {arr.shape}.")
    if shape is not None and arr.shape != shape:
        raise ValueError(f"Expected {name} to have shape {shape} like reset, got {arr.shape}.")
    if arr.shape[0] == 0:
        raise ValueError(f"Expected {name} to have at least one step, got shape {arr.shape}.")
    return arr.astype(bool, copy=False)


def _pieces(reset, valid):
    """Pieces of a window, numbered slot-major (slot 0's pieces in time order, then slot 1's).

    Returns ``(reset, valid, pid_t, lengths, start_k, piece_slot)``; ``pid_t`` is ``W x K``.
    """
    reset = _mask("reset", reset)
    valid = np.ones_like(reset) if valid is None else _mask("valid", valid, reset.shape)
    k_steps, width = reset.shape
    reset = reset & valid
    prev = np.zeros_like(valid)
    prev[1:] = valid[:-1]
    resumed = valid & ~prev
    resumed[0] = False
    if np.any(resumed & ~reset):
        k, b = np.argwhere(resumed & ~reset)[0]
        raise ValueError(f"Expected a slot that idles (valid False) to resume with a reset, got slot {b} "
                         f"resuming at step {k} without one.")
    starts = reset.copy()
    starts[0] |= valid[0]
    starts_t, valid_t = starts.T, valid.T
    pid_t = np.cumsum(starts_t.ravel()).reshape(width, k_steps) - 1
    n_pieces = int(starts.sum())
    lengths = np.bincount(pid_t[valid_t], minlength=n_pieces).astype(np.int64)
    start_k = np.nonzero(starts_t)[1]
    piece_slot = np.nonzero(starts_t)[0]
    return reset, valid, pid_t, lengths, start_k, piece_slot


def segment_plan(reset, valid=None) -> SegmentPlan:
    """Cut a window into pieces at its reset points and lay them out for packing.

    Args:
        reset: ``K x W`` bool mask; slot ``b`` starts a new sequence at step ``k``.
        valid: ``K x W`` bool mask of real steps (default: all). A slot that idles and
            then resumes must resume with a reset.

    Example:
        >>> plan = segment_plan(np.array([[True, True], [False, True], [False, False]]))
        >>> plan.batch_sizes.tolist(), plan.piece_slot.tolist(), plan.piece_reset.tolist()
        ([3, 2, 1], [0, 1, 1], [True, True, True])
    """
    reset, valid, pid_t, lengths, start_k, piece_slot = _pieces(reset, valid)
    k_steps, width = reset.shape
    valid_t = valid.T
    n_pieces = lengths.shape[0]
    order = np.argsort(-lengths, kind="stable")
    rank = np.empty(n_pieces, np.int64)
    rank[order] = np.arange(n_pieces)
    longest = int(lengths.max()) if n_pieces else 0
    counts = np.bincount(lengths, minlength=longest + 1)
    batch_sizes = n_pieces - np.cumsum(counts)[:longest]
    offsets = np.zeros(longest + 1, np.int64)
    np.cumsum(batch_sizes, out=offsets[1:])
    total = int(offsets[-1])
    target_t = np.full((width, k_steps), total, np.int64)
    b_idx, k_idx = np.nonzero(valid_t)
    pid = pid_t[b_idx, k_idx]
    target_t[b_idx, k_idx] = offsets[k_idx - start_k[pid]] + rank[pid]
    target = np.ascontiguousarray(target_t.T).reshape(-1)
    source = np.empty(total, np.int64)
    source[target_t[b_idx, k_idx]] = k_idx * width + b_idx
    final = np.arange(n_pieces, n_pieces + width, dtype=np.int64)
    if n_pieces:
        last = last_piece_of_slot(piece_slot)
        final[piece_slot[last]] = rank[last]
    t = torch.from_numpy
    return SegmentPlan(t(batch_sizes.astype(np.int64)), t(source), t(target), t(piece_slot[order].copy()),
                       t(reset[start_k, piece_slot][order].copy()), t(final))


def window_plan(reset, valid=None, layout: Literal["packed", "dense"] = "packed") -> SegmentPlan | DensePlan:
    """The plan an engine needs: :func:`segment_plan` for ``"packed"``, dense groups for ``"dense"``."""
    one_of("layout", layout, ("packed", "dense"))
    if layout == "packed":
        return segment_plan(reset, valid)
    return dense_plan(_pieces(reset, valid))


@dataclass(frozen=True)
class DensePlan:
    """Dense groups of one ``K x W`` window (CPU int64 / bool tensors).

    Attributes:
        shapes: ``(L_g, P_g)`` per group: steps and pieces.
        sources: per group, ``L_g * P_g`` flat window positions ``k * W + b`` to read,
            ``K * W`` (a zero row) in the padding.
        piece_slot: slot of each piece, groups concatenated.
        piece_reset: the piece starts a new sequence (seed state).
        target: ``K * W`` row of the concatenated group outputs for each window
            position; the total row count (a zero row) where the slot idles.
        final: ``W`` row of ``cat(group outputs, carried states)`` holding each slot's
            state after the window.
        computed: slot-steps run, padding included.
    """

    shapes: tuple[tuple[int, int], ...]
    sources: tuple[Tensor, ...]
    piece_slot: Tensor
    piece_reset: Tensor
    target: Tensor
    final: Tensor
    computed: int

    def to(self, device) -> "DensePlan":
        move = lambda t: t.to(device, non_blocking=True)  # noqa: E731
        return DensePlan(self.shapes, tuple(move(s) for s in self.sources), move(self.piece_slot),
                         move(self.piece_reset), move(self.target), move(self.final), self.computed)


def last_piece_of_slot(piece_slot: np.ndarray) -> np.ndarray:
    """Mask of the pieces that are the last of their slot (pieces numbered slot-major)."""
    last = np.ones(piece_slot.shape[0], bool)
    last[:-1] = piece_slot[1:] != piece_slot[:-1]
    return last


def _groups(sorted_lengths: np.ndarray, shrink: float, min_pieces: int) -> list[int]:
    """Start index of each group in the longest-first piece list."""
    starts = [0]
    top = sorted_lengths[0] if sorted_lengths.size else 0
    for i in range(1, sorted_lengths.size):
        if sorted_lengths[i] < shrink * top and sorted_lengths.size - i >= min_pieces and i - starts[-1] >= min_pieces:
            starts.append(i)
            top = sorted_lengths[i]
    return starts


def dense_plan(pieces, shrink: float = 0.6, min_pieces: int = 8) -> DensePlan:
    """Lay a window's pieces out in dense groups; ``pieces`` from :func:`_pieces`."""
    reset, valid, pid_t, lengths, start_k, piece_slot = pieces
    k_steps, width = reset.shape
    order = np.argsort(-lengths, kind="stable")
    sorted_len = lengths[order]
    bounds = _groups(sorted_len, shrink, min_pieces) + [order.size]
    shapes, sources = [], []
    piece_off = np.zeros(lengths.size, np.int64)
    piece_cols = np.ones(lengths.size, np.int64)
    piece_col = np.zeros(lengths.size, np.int64)
    offset = 0
    for a, b in zip(bounds[:-1], bounds[1:]):
        if a == b:
            continue
        q = order[a:b]
        steps, cols = int(sorted_len[a]), b - a
        t = np.arange(steps)[:, None]
        src = np.where(t < lengths[q][None, :], (start_k[q][None, :] + t) * width + piece_slot[q][None, :],
                       k_steps * width)
        shapes.append((steps, cols))
        sources.append(torch.from_numpy(src.reshape(-1)))
        piece_off[q], piece_cols[q], piece_col[q] = offset, cols, np.arange(cols)
        offset += steps * cols
    target_t = np.full((width, k_steps), offset, np.int64)
    b_idx, k_idx = np.nonzero(valid.T)
    pid = pid_t[b_idx, k_idx]
    target_t[b_idx, k_idx] = piece_off[pid] + (k_idx - start_k[pid]) * piece_cols[pid] + piece_col[pid]
    final = np.arange(offset, offset + width, dtype=np.int64)
    if lengths.size:
        p = np.nonzero(last_piece_of_slot(piece_slot))[0]
        final[piece_slot[p]] = piece_off[p] + (lengths[p] - 1) * piece_cols[p] + piece_col[p]
    return DensePlan(tuple(shapes), tuple(sources), torch.from_numpy(piece_slot[order].copy()),
                     torch.from_numpy(reset[start_k, piece_slot][order].copy()),
                     torch.from_numpy(np.ascontiguousarray(target_t.T).reshape(-1)),
                     torch.from_numpy(final), offset)


def default_engine(device: torch.device | str, mode: str = "GRU") -> str:
    """The engine that measured fastest on ``device`` for module ``mode`` (see bench/bptt/compare_batching.py).

    CUDA: ``"packed"`` (one cuDNN call per window; the fused engine's steps run there as
    torch ops, several launches per step; bench/bptt/bench_fused.py compares the two on a
    device, not yet measured). CPU: ``"fused"`` for every module type: one
    compiled call per window and whole-window weight gradients, 1.2-1.4 x the plain
    ``nn.GRU`` and 1.4-1.5 x the step engine with resets on the lognormal benchmark.
    :func:`run_window` then picks ``"segments"`` (the plain module between reset steps)
    when at most K/8 steps of the window hold a reset, for ``nn.LSTM`` (PyTorch's
    oneDNN LSTM beats the fused engine on windows without resets, 1.0 vs 0.85) and for
    the modules the fused engine does not run (``nn.LSTM`` with ``proj_size``, which
    otherwise use ``"steps"``).
    """
    del mode  # run_window refines the choice for nn.LSTM
    return "packed" if torch_device("device", device).type == "cuda" else "fused"
