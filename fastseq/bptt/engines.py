"""Sequence mode: run a standard ``nn.RNN`` / ``nn.GRU`` / ``nn.LSTM`` over a slot-swap window.

A window is ``K x W`` (steps x slots). Slot ``b`` may start a new sequence at any
step (``reset[k, b]``): its state is then restored to the seed. Five engines give
the same numbers, with no Python loop over slots in any (``"auto"`` picks by device,
as measured by bench/bptt/compare_batching.py):

- ``"fused"`` (CPU default): one autograd node per layer and window; the window's
  steps, forward and backward through time, run in one compiled call with the reset
  folded in, and the input and weight gradients are whole-window matrix products
  (see :mod:`fastseq.bptt._engines_fused`). Not for ``nn.LSTM`` with ``proj_size``.
- ``"packed"``: the window is cut at reset points into pieces, one per
  (slot, sequence) run; all pieces go through the module at once as one
  ``PackedSequence``, each starting from the carried state or the seed. On CUDA
  this is a single cuDNN call per window.
- ``"steps"``: a loop over the K steps calling the fused cell
  (``gru_cell``, ``lstm_cell``, ...) with the module's own weights; the reset is a
  ``torch.where``.
- ``"segments"``: the plain module on the runs of steps between reset steps
  (chosen on the CPU for ``nn.LSTM`` when few steps hold a reset, e.g. equal lengths).
- ``"dense"`` (GRU/RNN): pieces in a few dense groups, see ``_sequence_dense``.

The packing plans (index arrays) depend only on the masks, so the window loader
computes them in NumPy while preparing the window (:func:`window_plan`).
"""
from __future__ import annotations

import logging
import warnings
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils.rnn import PackedSequence

from fastseq._util.validate import one_of, positive_int, torch_device
from fastseq.bptt import _products
from fastseq.bptt._engines_dense import run_dense
from fastseq.bptt._engines_fused import fused_unsupported, run_fused
from fastseq.bptt.plans import DensePlan, SegmentPlan, default_engine, window_plan
from fastseq.bptt.state import State, carry_state, pack_state, state_parts, step_with_resets

__all__ = ["run_window", "masked_mean", "engine_for"]

Engine = Literal["auto", "fused", "packed", "dense", "steps", "segments"]
_ENGINES = ("fused", "packed", "dense", "steps", "segments")


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
    parts = state_parts(seed)
    if len(parts) != len(sizes):
        raise ValueError(f"Expected reset_state to hold {len(sizes)} tensor(s) for {type(rnn).__name__}, got {len(parts)}.")
    out = []
    for p, h in zip(parts, sizes):
        if tuple(p.shape) != (rnn.num_layers, h):
            raise ValueError(f"Expected reset_state of shape ({rnn.num_layers}, {h}) (layers x hidden), got {tuple(p.shape)}.")
        out.append(p.to(like).unsqueeze(1))
    return tuple(out)


def _carried_parts(rnn, state, width: int, like: Tensor) -> tuple[Tensor, ...]:
    sizes = _state_sizes(rnn)
    if state is None:
        return tuple(like.new_zeros(rnn.num_layers, width, h) for h in sizes)
    parts = state_parts(state)
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
    out, hn = rnn(PackedSequence(data, plan.batch_sizes), pack_state(h0))
    rows = torch.cat([out.data, out.data.new_zeros(1, out.data.shape[1])])
    outputs = rows.index_select(0, plan.target).view(k_steps, width, -1)
    final = tuple(torch.cat([h, c], 1).index_select(1, plan.final) for h, c in zip(state_parts(hn), carried))
    return outputs, pack_state(final)


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
        outs = []

        def step(k, hc, x=seq, weights=weights, w_hr=w_hr):
            if not lstm:
                h = cell(x[k], hc[0], *weights)
            elif w_hr is None:
                h, c = cell(x[k], hc, *weights)
            else:
                h, c = _lstm_proj_cell(x[k], hc[0], hc[1], weights, w_hr)
            outs.append(h)
            return (h, c) if lstm else (h,)

        parts = (carried[0][layer],) + ((carried[1][layer],) if lstm else ())
        seed = (seeds[0][layer],) + ((seeds[1][layer],) if lstm else ())
        parts = step_with_resets(seq.shape[0], restart, parts, seed, step)
        h, c = parts[0], (parts[1] if lstm else None)
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
        out, state = rnn(x[a:b], pack_state(state))
        state = state_parts(state)
        outs.append(out)
    seq = torch.cat(outs)
    if valid is not None:
        seq = seq * valid.unsqueeze(-1).to(seq.dtype)
    return seq, state


def run_window(
    rnn: nn.Module,
    inputs: Tensor,
    reset,
    state: State | None = None,
    *,
    valid=None,
    reset_state: State | None = None,
    slot_map=None,
    plan: SegmentPlan | None = None,
    engine: Engine = "auto",
    detach: bool = True,
    seed: State | None = None,
) -> tuple[Tensor, State]:
    """Run a standard recurrent module over one slot-swap window.

    Shapes: K steps, W slots, F input features, L layers, H hidden (or projection) size.

    Args:
        rnn: ``nn.RNN``, ``nn.GRU`` or ``nn.LSTM`` with ``batch_first=False``, one direction.
        inputs: ``K x W x F``.
        reset: ``K x W`` bool; the slot's state is restored to ``reset_state`` before step k.
        state: the previous window's final state, ``L x W_prev x H`` (LSTM: ``(h, c)``),
            or None for zeros.
        valid: ``K x W`` bool of real steps; outputs are zero elsewhere.
        reset_state: ``L x H`` (LSTM: ``(h, c)``) state a new sequence starts from; zeros
            if None.
        slot_map: ``W`` slot of the previous window that each slot continues (compact
            windows narrow while an epoch drains); applied to ``state`` first.
        plan: a precomputed :func:`window_plan` of (reset, valid) for the packed or dense
            engine (the loader makes one on its background thread); made here if None.
        engine: ``"fused"``, ``"packed"``, ``"dense"`` (GRU/RNN only), ``"steps"``,
            ``"segments"`` (the plain module between reset steps) or ``"auto"`` (fastest
            measured on the device, :func:`default_engine`). ``"fused"`` falls back to
            ``"steps"`` with a warning for an ``nn.LSTM`` with ``proj_size``.
        detach: cut the gradient into the previous window (truncated BPTT).
        seed: the former name of ``reset_state`` (deprecated: it is not a random seed).

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
    one_of("engine", engine, ("auto",) + _ENGINES)
    reset_t = _mask_tensor("reset", reset, (k_steps, width), inputs.device)
    if engine == "auto":
        engine = _engine_for(rnn, mode, k_steps, width, inputs.device, reset_t)
    elif engine == "fused" and fused_unsupported(rnn):
        warnings.warn(f"run_window(engine='fused') does not run {fused_unsupported(rnn)}; using engine='steps'.",
                      stacklevel=2)
        engine = "steps"
    if engine == "dense" and mode == "LSTM":
        raise ValueError("Expected an nn.GRU or nn.RNN for engine='dense' (an LSTM's cell state is not in its output), got nn.LSTM.")
    state = carry_state(state, slot_map, detach=detach)
    carried = _carried_parts(rnn, state, width, inputs)
    if seed is not None:
        if reset_state is not None:
            raise TypeError("Expected reset_state or its former name seed, got both.")
        warnings.warn("run_window(seed=...) is deprecated: the keyword is now reset_state (the state a new "
                      "sequence starts from; not a random seed).", DeprecationWarning, stacklevel=2)
        reset_state = seed
    seeds = _seed_parts(rnn, reset_state, inputs)
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
    valid_t = None if valid is None else _mask_tensor("valid", valid, (k_steps, width), inputs.device)
    if engine == "fused":
        out, final = run_fused(rnn, inputs, reset_t, valid_t, carried, seeds, mode)
    elif engine == "segments":
        out, final = _run_segments(rnn, inputs, reset_t, valid_t, carried, seeds)
    else:
        out, final = _run_steps(rnn, inputs, reset_t, valid_t, carried, seeds, mode)
    return out, pack_state(final)


_SEGMENTS_WIN = {"LSTM": (64, 256)}
"""Per module type ``(H at least, H at most)``: where the plain module between reset steps
(``"segments"``) beats the fused engine on a CPU window in which at most K/8 steps hold a
reset, on processors where fastseq's product kernel runs (bench/bptt/compare_engines.py,
docs/benchmarks/compare_engines.txt, an AMD processor with AVX-512: PyTorch runs an
``nn.LSTM`` segment as one oneDNN call, 1.07x the fused engine on a reset-free 64-slot window
at H=128 on one thread, level on two; the fused engine wins at H=32 on 1024 slots, 1.25x and
1.21x, and at H=512, 1.10x and 1.07x, and every GRU and RNN row). Where MKL runs the fused
engine's products the rule does not apply: on an AMD processor with AVX2 and no AVX-512 the
fused engine took 0.91x, 0.98x and 0.91x the segments' time on that window in three runs on
one thread, and 0.85x, 0.84x and 0.83x on two (the last run: docs/benchmarks/compare_engines_avx2.txt)."""

_STEPS_WIN = {"GRU": (32, 512, 1)}
"""Per module type ``(H at most, slots at least, threads at most)``: windows where the step engine
beats the fused one on the CPU (bench/bptt/compare_engines.py: a GRU at H=32 on 1024 slots, 1.14x
at one thread, where the fused engine's per-slot gate loops are too short to pay their setup; on
two threads the fused engine's slot blocks share the cores and it wins, 1.06x-1.31x)."""

_CHOSEN: set = set()


def engine_for(rnn: nn.Module, k_steps: int, width: int, device="cpu", reset=None) -> str:
    """The engine ``run_window(engine="auto")`` runs ``rnn`` with, on a ``k_steps x width`` window.

    The choice follows a crossover table measured on this project's machines with
    ``bench/bptt/compare_engines.py`` (GRU, LSTM and RNN; H = 32, 128, 512; 64 and 1024 slots;
    1 and 2 threads; windows with and without resets): on CUDA ``"packed"`` (one cuDNN call
    per window); on the CPU ``"fused"``, except ``"steps"`` for an ``nn.LSTM`` with
    ``proj_size`` (the fused engine does not run it) and for a GRU of at most 32 hidden units
    on 512 slots or more on one thread, and ``"segments"`` (the plain module between reset
    steps) for an ``nn.LSTM`` of 64 to 256 hidden units on a window whose ``reset`` (``K x W``
    bool; None: unknown) holds a reset on at most K/8 steps, where fastseq's product kernel
    runs (AVX-512 processors other than Intel's; elsewhere the fused engine won there). Each
    new choice is logged once on the ``fastseq.bptt`` logger (INFO), for ``"fused"`` with the
    threads that run its slot blocks (PyTorch's OpenMP threads, or a thread pool where PyTorch
    has no OpenMP or with ``FASTSEQ_SLOT_THREADS=pool``). Pass ``engine=`` to
    :func:`run_window` to override.

    >>> engine_for(nn.GRU(3, 8), k_steps=32, width=64)
    'fused'
    """
    mode = _check_module(rnn)
    k_steps, width = positive_int("k_steps", k_steps), positive_int("width", width)
    device = torch_device("device", device)
    reset_t = None
    if reset is not None:
        reset_t = _mask_tensor("reset", reset, None, device)
        if tuple(reset_t.shape) != (k_steps, width):
            raise ValueError(f"Expected reset to be k_steps x width = {k_steps} x {width}, got shape "
                             f"{tuple(reset_t.shape)}.")
    return _engine_for(rnn, mode, k_steps, width, device, reset_t)


def _engine_for(rnn, mode: str, k_steps: int, width: int, device: torch.device, reset_t) -> str:
    engine = default_engine(device, mode)
    few_resets = reset_t is not None and int(reset_t.any(1).sum()) <= k_steps // 8
    if engine == "fused" and fused_unsupported(rnn):
        engine = "segments" if few_resets else "steps"
    elif engine == "fused" and few_resets and mode in _SEGMENTS_WIN and _products.kernel_in_use() \
            and _SEGMENTS_WIN[mode][0] <= rnn.hidden_size <= _SEGMENTS_WIN[mode][1]:
        engine = "segments"
    elif engine == "fused" and mode in _STEPS_WIN and rnn.hidden_size <= _STEPS_WIN[mode][0] \
            and width >= _STEPS_WIN[mode][1] and torch.get_num_threads() <= _STEPS_WIN[mode][2]:
        engine = "steps"
    key = (device.type, mode, rnn.hidden_size, width, k_steps, torch.get_num_threads(), engine)
    if key not in _CHOSEN:
        _CHOSEN.add(key)
        logging.getLogger("fastseq.bptt").info(
            "run_window(engine='auto'): %s for %s with H=%d on %d slots x %d steps, %s, %d thread(s)%s",
            engine, mode, rnn.hidden_size, width, k_steps, device.type, torch.get_num_threads(),
            _block_threads(engine, device))
    return engine


def _block_threads(engine: str, device: torch.device) -> str:
    """Which threads run the fused engine's slot blocks, for the log line (see :mod:`fastseq.bptt._slot_threads`)."""
    if engine != "fused" or device.type != "cpu":
        return ""
    from fastseq.bptt._slot_threads import runner

    return ", slot blocks on PyTorch's OpenMP threads" if runner() == "openmp" else ", slot blocks on a thread pool"


def masked_mean(values: Tensor, valid) -> Tensor:
    """Mean of ``values`` (``K x W`` or ``K x W x *``) over real steps only.

    >>> masked_mean(torch.tensor([[1.0, 5.0]]), torch.tensor([[True, False]])).item()
    1.0
    """
    if not isinstance(values, Tensor) or values.dim() < 2:
        got = f"shape {tuple(values.shape)}" if isinstance(values, Tensor) else type(values).__name__
        raise TypeError(f"Expected values to be a K x W (or K x W x ...) tensor, got {got}.")
    valid = _mask_tensor("valid", valid, tuple(values.shape[:2]), values.device)
    if values.dim() > 2:
        values = values.flatten(2).mean(-1)
    # summed in float32 at least: a float16 sum overflows past 65,504 real steps (K x W = 64 x
    # 1024 makes 65,536), and bfloat16 stops counting by ones at 256
    half = values.dtype in (torch.float16, torch.bfloat16)
    wide = values.float() if half else values
    weight = valid.to(wide.dtype)
    mean = (wide * weight).sum() / weight.sum().clamp_min(1)
    return mean.to(values.dtype) if half else mean


def _mask_tensor(name: str, mask, shape: tuple[int, int] | None, device) -> Tensor:
    """A ``K x W`` bool tensor on ``device``; O(1) checks, as this runs once per window."""
    try:
        t = torch.as_tensor(mask, dtype=torch.bool, device=device)
    except (TypeError, ValueError, RuntimeError, OverflowError):
        raise TypeError(f"Expected {name} to be a K x W bool mask, got {type(mask).__name__}.") from None
    if shape is not None and tuple(t.shape) != tuple(shape):
        raise ValueError(f"Expected {name} of shape {tuple(shape)}, got {tuple(t.shape)}.")
    return t
