"""Sequence mode: run a standard ``nn.RNN`` / ``nn.GRU`` / ``nn.LSTM`` over a slot-swap window.

A window is ``K x W`` (steps x slots). Slot ``b`` may start a new sequence at any
step (``reset[k, b]``): its state is then restored to the seed. Four engines give
the same numbers, with no Python loop over slots in any (``"auto"`` picks by device,
as measured by bench/compare_batching.py):

- ``"packed"``: the window is cut at reset points into pieces, one per
  (slot, sequence) run; all pieces go through the module at once as one
  ``PackedSequence``, each starting from the carried state or the seed. On CUDA
  this is a single cuDNN call per window.
- ``"steps"`` (CPU default): a loop over the K steps calling the fused cell
  (``gru_cell``, ``lstm_cell``, ...) with the module's own weights; the reset is a
  ``torch.where``.
- ``"segments"``: the plain module on the runs of steps between reset steps
  (chosen on the CPU when few steps hold a reset, e.g. equal lengths).
- ``"dense"`` (GRU/RNN): pieces in a few dense groups, see ``_sequence_dense``.

The packing plans (index arrays) depend only on the masks, so the window loader
computes them in NumPy while preparing the window (:func:`window_plan`).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Union

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils.rnn import PackedSequence

from fastseq._sequence_dense import DensePlan, dense_plan, last_piece_of_slot, run_dense

__all__ = ["SegmentPlan", "DensePlan", "segment_plan", "window_plan", "default_engine", "run_window",
           "carry_state", "masked_mean"]

State = Union[Tensor, tuple[Tensor, Tensor]]
Engine = Literal["auto", "packed", "dense", "steps", "segments"]


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
    arr = m.detach().cpu().numpy() if isinstance(m, Tensor) else np.asarray(m)
    if arr.ndim != 2:
        raise ValueError(f"Expected {name} to be a K x W mask, got shape {arr.shape}.")
    if shape is not None and arr.shape != shape:
        raise ValueError(f"Expected {name} to have shape {shape} like reset, got {arr.shape}.")
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
        raise ValueError(f"Expected a slot that idles to resume with a reset, got slot {b} resuming at step {k}.")
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
    if layout == "packed":
        return segment_plan(reset, valid)
    if layout == "dense":
        return dense_plan(_pieces(reset, valid))
    raise ValueError(f"Expected layout to be 'packed' or 'dense', got {layout!r}.")


def _states(state: State) -> tuple[Tensor, ...]:
    return state if isinstance(state, tuple) else (state,)


def _pack(parts: tuple[Tensor, ...]) -> State:
    return parts if len(parts) > 1 else parts[0]


def carry_state(state: State | None, slot_map=None, detach: bool = True) -> State | None:
    """Detach a window's final state and narrow it to the next window's slots.

    Args:
        state: ``L x W_prev x H`` (or an LSTM ``(h, c)`` tuple), or None.
        slot_map: ``W`` slot of the previous window each slot continues (None: identity).
    """
    if state is None:
        return None
    parts = _states(state)
    if detach:
        parts = tuple(p.detach() for p in parts)
    if slot_map is not None:
        idx = torch.as_tensor(slot_map, dtype=torch.long, device=parts[0].device)
        if idx.shape[0] != parts[0].shape[1] or not torch.equal(idx, torch.arange(idx.shape[0], device=idx.device)):
            parts = tuple(p.index_select(1, idx) for p in parts)
    return _pack(parts)


def _check_module(rnn: nn.Module) -> str:
    if not isinstance(rnn, (nn.RNN, nn.GRU, nn.LSTM)):
        raise TypeError(f"Expected rnn to be an nn.RNN, nn.GRU or nn.LSTM, got {type(rnn).__name__}.")
    if rnn.bidirectional:
        raise ValueError("Expected rnn to be unidirectional (state is carried forward), got bidirectional=True.")
    if rnn.batch_first:
        raise ValueError("Expected rnn to have batch_first=False (windows are K x W x F), got batch_first=True.")
    return rnn.mode


def _state_sizes(rnn: nn.Module) -> list[int]:
    proj = getattr(rnn, "proj_size", 0) or 0
    if isinstance(rnn, nn.LSTM):
        return [proj or rnn.hidden_size, rnn.hidden_size]
    return [rnn.hidden_size]


def _seed_parts(rnn, seed, like: Tensor) -> tuple[Tensor, ...]:
    """Seeds as ``L x 1 x H`` tensors (zeros by default)."""
    sizes = _state_sizes(rnn)
    if seed is None:
        return tuple(like.new_zeros(rnn.num_layers, 1, h) for h in sizes)
    parts = _states(seed)
    if len(parts) != len(sizes):
        raise ValueError(f"Expected seed to hold {len(sizes)} tensor(s) for {type(rnn).__name__}, got {len(parts)}.")
    out = []
    for p, h in zip(parts, sizes):
        if tuple(p.shape) != (rnn.num_layers, h):
            raise ValueError(f"Expected seed of shape ({rnn.num_layers}, {h}) (layers x hidden), got {tuple(p.shape)}.")
        out.append(p.to(like).unsqueeze(1))
    return tuple(out)


def _carried_parts(rnn, state, width: int, like: Tensor) -> tuple[Tensor, ...]:
    sizes = _state_sizes(rnn)
    if state is None:
        return tuple(like.new_zeros(rnn.num_layers, width, h) for h in sizes)
    parts = _states(state)
    for p, h in zip(parts, sizes):
        if tuple(p.shape) != (rnn.num_layers, width, h):
            raise ValueError(
                f"Expected state of shape ({rnn.num_layers}, {width}, {h}) (layers x slots x hidden), "
                f"got {tuple(p.shape)}; pass the window's slot_map to narrow it."
            )
    return parts


def _run_packed(rnn, x, plan: SegmentPlan, carried, seeds):
    k_steps, width = x.shape[:2]
    flat = x.reshape(k_steps * width, *x.shape[2:])
    data = flat.index_select(0, plan.source)
    start = plan.piece_reset.view(1, -1, 1)
    h0 = tuple(torch.where(start, s, c.index_select(1, plan.piece_slot)) for c, s in zip(carried, seeds))
    out, hn = rnn(PackedSequence(data, plan.batch_sizes), _pack(h0))
    rows = torch.cat([out.data, out.data.new_zeros(1, out.data.shape[1])])
    outputs = rows.index_select(0, plan.target).view(k_steps, width, -1)
    final = tuple(torch.cat([h, c], 1).index_select(1, plan.final) for h, c in zip(_states(hn), carried))
    return outputs, _pack(final)


_CELLS = {"GRU": torch._VF.gru_cell, "RNN_TANH": torch._VF.rnn_tanh_cell, "RNN_RELU": torch._VF.rnn_relu_cell}


def _lstm_proj_cell(x, h, c, weights, w_hr):
    """``nn.LSTM`` with ``proj_size``: the fused cell expects unprojected h, so spell it out."""
    w_ih, w_hh, b_ih, b_hh = weights
    i, f, g, o = (F.linear(x, w_ih, b_ih) + F.linear(h, w_hh, b_hh)).chunk(4, 1)
    c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
    return F.linear(torch.sigmoid(o) * torch.tanh(c), w_hr), c


def _run_steps(rnn, x, reset: Tensor, valid: Tensor | None, carried, seeds, mode: str):
    """Layer by layer, one fused cell call per step; resets by ``torch.where`` (out of place)."""
    restart = reset.unsqueeze(-1)
    lstm = mode == "LSTM"
    cell = torch._VF.lstm_cell if lstm else _CELLS[mode]
    finals_h, finals_c = [], []
    seq = x
    for layer in range(rnn.num_layers):
        sfx = f"_l{layer}"
        weights = [getattr(rnn, "weight_ih" + sfx), getattr(rnn, "weight_hh" + sfx)]
        weights += [getattr(rnn, "bias_ih" + sfx), getattr(rnn, "bias_hh" + sfx)] if rnn.bias else [None, None]
        w_hr = getattr(rnn, "weight_hr" + sfx, None)
        if layer and rnn.dropout and rnn.training:
            seq = F.dropout(seq, rnn.dropout, True)
        h, s_h = carried[0][layer], seeds[0][layer]
        c, s_c = (carried[1][layer], seeds[1][layer]) if lstm else (None, None)
        outs = []
        for k, x_k in enumerate(seq.unbind(0)):
            h = torch.where(restart[k], s_h, h)
            if lstm:
                c = torch.where(restart[k], s_c, c)
                h, c = cell(x_k, (h, c), *weights) if w_hr is None else _lstm_proj_cell(x_k, h, c, weights, w_hr)
            else:
                h = cell(x_k, h, *weights)
            outs.append(h)
        seq = torch.stack(outs)
        finals_h.append(h)
        finals_c.append(c)
    final = (torch.stack(finals_h),) + ((torch.stack(finals_c),) if lstm else ())
    if valid is not None:
        seq = seq * valid.unsqueeze(-1).to(seq.dtype)
    return seq, final


def _run_segments(rnn, x, reset: Tensor, valid: Tensor | None, carried, seeds):
    """The plain module on the runs of steps between reset steps, resetting at each cut."""
    cuts = torch.nonzero(reset.any(1)).flatten().tolist()
    bounds = sorted(set([0] + cuts)) + [x.shape[0]]
    state = carried
    outs = []
    for a, b in zip(bounds[:-1], bounds[1:]):
        if cuts and a == cuts[0]:
            cuts.pop(0)
            start = reset[a].view(1, -1, 1)
            state = tuple(torch.where(start, s, c) for s, c in zip(seeds, state))
        out, state = rnn(x[a:b], _pack(state))
        state = _states(state)
        outs.append(out)
    seq = torch.cat(outs)
    if valid is not None:
        seq = seq * valid.unsqueeze(-1).to(seq.dtype)
    return seq, state


def default_engine(device: torch.device | str, mode: str = "GRU") -> str:
    """The engine that measured fastest on ``device`` for module ``mode`` (see bench/compare_batching.py).

    CUDA: ``"packed"`` (one cuDNN call per window). CPU: ``"steps"`` (and in
    :func:`run_window`, ``"segments"`` when at most K/8 steps of the window hold a
    reset, e.g. equal lengths, where the plain module's own loop is fastest), whose fused
    cell per step runs within 4-9% of the plain module on full windows, while a
    packed backward on the CPU zero-fills the packed input once per step and the
    dense groups pay for their padding (figures in bench/compare_batching.py).
    """
    del mode  # the same choice measured best for every module type
    return "packed" if torch.device(device).type == "cuda" else "steps"


def run_window(
    rnn: nn.Module,
    inputs: Tensor,
    reset,
    state: State | None = None,
    *,
    valid=None,
    seed: State | None = None,
    slot_map=None,
    plan: SegmentPlan | None = None,
    engine: Engine = "auto",
    detach: bool = True,
) -> tuple[Tensor, State]:
    """Run a standard recurrent module over one slot-swap window.

    Shapes: K steps, W slots, F input features, L layers, H hidden (or projection) size.

    Args:
        rnn: ``nn.RNN``, ``nn.GRU`` or ``nn.LSTM`` with ``batch_first=False``, one direction.
        inputs: ``K x W x F``.
        reset: ``K x W`` bool; the slot's state is restored to ``seed`` before step k.
        state: the previous window's final state, ``L x W_prev x H`` (LSTM: ``(h, c)``),
            or None for zeros.
        valid: ``K x W`` bool of real steps; outputs are zero elsewhere.
        seed: ``L x H`` (LSTM: ``(h, c)``) state a new sequence starts from; zeros if None.
        slot_map: ``W`` slot of the previous window that each slot continues (compact
            windows narrow while an epoch drains); applied to ``state`` first.
        plan: a precomputed :func:`window_plan` of (reset, valid) for the packed or dense
            engine (the loader makes one on its background thread); made here if None.
        engine: ``"packed"``, ``"dense"`` (GRU/RNN only), ``"steps"``, ``"segments"``
            (the plain module between reset steps) or ``"auto"`` (fastest measured on the
            device, :func:`default_engine`).
        detach: cut the gradient into the previous window (truncated BPTT).

    Returns:
        ``(outputs, state)``: outputs ``K x W x H``; the state after the window.

    Example:
        >>> rnn = nn.GRU(3, 4)
        >>> reset = torch.tensor([[True, True], [False, True], [False, False]])
        >>> out, h = run_window(rnn, torch.randn(3, 2, 3), reset)
        >>> tuple(out.shape), tuple(h.shape)
        ((3, 2, 4), (1, 2, 4))
    """
    mode = _check_module(rnn)
    if not isinstance(inputs, Tensor) or inputs.dim() < 3:
        raise ValueError(f"Expected inputs to be a K x W x F tensor, got {getattr(inputs, 'shape', type(inputs))}.")
    k_steps, width = inputs.shape[:2]
    reset_t = torch.as_tensor(reset, dtype=torch.bool, device=inputs.device)
    if engine == "auto":
        engine = default_engine(inputs.device, mode)
        if engine == "steps" and int(reset_t.any(1).sum()) <= k_steps // 8:
            engine = "segments"
    if engine not in ("packed", "dense", "steps", "segments"):
        raise ValueError(f"Expected engine to be 'auto', 'packed', 'dense', 'steps' or 'segments', got {engine!r}.")
    if engine == "dense" and mode == "LSTM":
        raise ValueError("Expected an nn.GRU or nn.RNN for engine='dense' (an LSTM's cell state is not in its output), got nn.LSTM.")
    state = carry_state(state, slot_map, detach=detach)
    carried = _carried_parts(rnn, state, width, inputs)
    seeds = _seed_parts(rnn, seed, inputs)
    if engine in ("packed", "dense"):
        kind = SegmentPlan if engine == "packed" else DensePlan
        if not isinstance(plan, kind):
            plan = window_plan(reset, valid, engine)
        if plan.target.shape[0] != k_steps * width:
            raise ValueError(f"Expected plan for a {k_steps} x {width} window, got {plan.target.shape[0]} positions.")
        plan = plan.to(inputs.device)
        if engine == "dense":
            return run_dense(rnn, inputs, plan, carried[0], seeds[0], mode)
        return _run_packed(rnn, inputs, plan, carried, seeds)
    if tuple(reset_t.shape) != (k_steps, width):
        raise ValueError(f"Expected reset of shape ({k_steps}, {width}), got {tuple(reset_t.shape)}.")
    valid_t = None if valid is None else torch.as_tensor(valid, dtype=torch.bool, device=inputs.device)
    if engine == "segments":
        out, final = _run_segments(rnn, inputs, reset_t, valid_t, carried, seeds)
    else:
        out, final = _run_steps(rnn, inputs, reset_t, valid_t, carried, seeds, mode)
    return out, _pack(final)


def masked_mean(values: Tensor, valid) -> Tensor:
    """Mean of ``values`` (``K x W`` or ``K x W x *``) over real steps only.

    >>> masked_mean(torch.tensor([[1.0, 5.0]]), torch.tensor([[True, False]])).item()
    1.0
    """
    valid = torch.as_tensor(valid, dtype=torch.bool, device=values.device)
    if values.dim() > 2:
        values = values.flatten(2).mean(-1)
    weight = valid.to(values.dtype)
    return (values * weight).sum() / weight.sum().clamp_min(1)
