"""The ``"dense"`` sequence-mode engine: pieces in a few dense groups, fused module calls.

On the CPU, PyTorch runs a plain (unpacked) ``nn.GRU`` / ``nn.RNN`` as one C++ loop
whose backward is cheap, while a ``PackedSequence`` backward zero-fills the whole
packed input once per step (quadratic in the window). This engine keeps the fast
path: the window's pieces (see :mod:`fastseq.sequence_mode`) are sorted by length
and laid out left-aligned in a few dense ``L_g x P_g`` groups, a group being cut
where the length drops below ``shrink`` times the group's longest piece, so the
padding stays small. Each layer is one fused call per group; each slot's state
after the window is read from its last piece's output at that piece's last step,
which is why only modules whose state is their output (GRU, RNN) use this engine.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

__all__ = ["DensePlan", "dense_plan", "run_dense", "last_piece_of_slot"]


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
    """Lay a window's pieces out in dense groups; ``pieces`` from ``sequence_mode._pieces``."""
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


_CALLS = {"GRU": torch._VF.gru, "RNN_TANH": torch._VF.rnn_tanh, "RNN_RELU": torch._VF.rnn_relu}


def run_dense(rnn, x: Tensor, plan: DensePlan, carried: Tensor, seeds: Tensor, mode: str):
    """Run GRU/RNN ``rnn`` over window ``x`` (``K x W x F``) laid out by ``plan``.

    ``carried`` is ``L x W x H``, ``seeds`` ``L x 1 x H``. Returns ``(K x W x H, L x W x H)``.
    """
    call = _CALLS[mode]
    k_steps, width = x.shape[:2]
    flat = torch.cat([x.reshape(k_steps * width, -1), x.new_zeros(1, x[0, 0].numel())])
    inputs = [flat.index_select(0, src).view(s, c, -1) for src, (s, c) in zip(plan.sources, plan.shapes)]
    start = plan.piece_reset.view(-1, 1)
    finals = []
    for layer in range(rnn.num_layers):
        sfx = f"_l{layer}"
        params = [getattr(rnn, "weight_ih" + sfx), getattr(rnn, "weight_hh" + sfx)]
        if rnn.bias:
            params += [getattr(rnn, "bias_ih" + sfx), getattr(rnn, "bias_hh" + sfx)]
        h0 = torch.where(start, seeds[layer], carried[layer].index_select(0, plan.piece_slot))
        outs, col = [], 0
        for inp, (_, c) in zip(inputs, plan.shapes):
            if layer and rnn.dropout and rnn.training:
                inp = torch.nn.functional.dropout(inp, rnn.dropout, True)
            out, _ = call(inp, h0[col:col + c].unsqueeze(0), params, rnn.bias, 1, 0.0, rnn.training, False, False)
            outs.append(out)
            col += c
        inputs = outs
        rows = torch.cat([o.reshape(-1, o.shape[-1]) for o in outs])
        finals.append(torch.cat([rows, carried[layer]]).index_select(0, plan.final))
    rows = torch.cat([rows, rows.new_zeros(1, rows.shape[1])])
    return rows.index_select(0, plan.target).view(k_steps, width, -1), torch.stack(finals)
