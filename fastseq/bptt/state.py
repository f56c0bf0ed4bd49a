"""Recurrent state across slot-swap windows: the one home of resets and narrowing.

A state is a tensor or a tuple of tensors (an LSTM's ``(h, c)``) with slots on
axis 1. Both step loops, the trainer's (any decoder) and the ``"steps"`` engine's
(fused cells), run through :func:`step_with_resets`, and both carry their state
into the next window with :func:`carry_state`.
"""
from __future__ import annotations

from typing import Callable, Sequence, Union

import numpy as np
import torch
from torch import Tensor

__all__ = ["State", "carry_state", "step_with_resets"]

State = Union[Tensor, tuple[Tensor, ...]]


def state_parts(state: State) -> tuple[Tensor, ...]:
    """A state as a tuple of tensors."""
    return state if isinstance(state, tuple) else (state,)


def pack_state(parts: Sequence[Tensor]) -> State:
    """The inverse of :func:`state_parts`: one tensor stays a tensor."""
    return tuple(parts) if len(parts) > 1 else parts[0]


def carry_state(state: State | None, slot_map=None, detach: bool = True) -> State | None:
    """Detach a window's final state and narrow it to the next window's slots.

    Args:
        state: ``L x W_prev x H`` (or a tuple of them, e.g. an LSTM's ``(h, c)``), or None.
        slot_map: ``W`` slot of the previous window each slot continues (None: identity).
        detach: cut the gradient into the previous window (truncated BPTT).

    Example:
        >>> h = torch.arange(6.0).view(1, 3, 2)
        >>> carry_state(h, slot_map=[2, 0])[0].tolist()
        [[4.0, 5.0], [0.0, 1.0]]
    """
    if state is None:
        return None
    parts = state_parts(state)
    if not parts or not all(isinstance(p, Tensor) and p.dim() >= 2 for p in parts):
        raise TypeError(f"Expected state to be a L x W x H tensor or a tuple of them, got {_describe(state)}.")
    if detach:
        parts = tuple(p.detach() for p in parts)
    if slot_map is not None:
        idx = _slot_index(slot_map, parts[0].shape[1], parts[0].device)
        if idx.shape[0] != parts[0].shape[1] or not torch.equal(idx, torch.arange(idx.shape[0], device=idx.device)):
            parts = tuple(p.index_select(1, idx) for p in parts)
    return pack_state(parts)


def _describe(value) -> str:
    if isinstance(value, Tensor):
        return f"a tensor of shape {tuple(value.shape)}"
    if isinstance(value, tuple):
        return "a tuple of " + ", ".join(_describe(v) if isinstance(v, Tensor) else type(v).__name__ for v in value)
    return type(value).__name__


def _slot_index(slot_map, width: int, device) -> Tensor:
    """``slot_map`` as a long tensor of slots in ``[0, width)``: one min and max over W entries
    (on the host for a NumPy slot map, as the loader and trainer pass: no device sync)."""
    if isinstance(slot_map, Tensor):
        if slot_map.is_floating_point() or slot_map.is_complex() or slot_map.dtype == torch.bool:
            raise TypeError(f"Expected slot_map to hold integer slots, got dtype {slot_map.dtype}.")
        idx = slot_map.to(device=device, dtype=torch.long)
        bounds = torch.aminmax(idx) if idx.dim() == 1 and idx.numel() else None
    else:
        try:
            arr = np.asarray(slot_map)
        except (ValueError, TypeError):  # ragged nested lists
            arr = np.asarray(None)
        if arr.dtype.kind not in "iu" and not (arr.size == 0 and arr.dtype.kind == "f"):
            raise TypeError(f"Expected slot_map to hold integer slots, got {type(slot_map).__name__} "
                            f"of dtype {arr.dtype}.")
        idx = torch.as_tensor(arr.astype(np.int64, copy=False), device=device)
        bounds = (arr.min(), arr.max()) if arr.ndim == 1 and arr.size else None
    if idx.dim() != 1:
        raise ValueError(f"Expected slot_map to be 1-D (one slot per slot of the window), got shape {tuple(idx.shape)}.")
    if bounds is not None and (bounds[0] < 0 or bounds[1] >= width):
        raise ValueError(f"Expected slot_map to hold slots in [0, {width}) of the previous window, "
                         f"got values in [{int(bounds[0])}, {int(bounds[1])}].")
    return idx


def step_with_resets(
    steps: int,
    reset: Tensor,
    state: tuple[Tensor, ...],
    seeds: tuple[Tensor, ...],
    step: Callable[[int, tuple[Tensor, ...]], tuple[Tensor, ...]],
    reset_steps: Sequence[bool] | None = None,
    reset_slots: Sequence[Tensor | None] | None = None,
) -> tuple[Tensor, ...]:
    """Run ``steps`` recurrent steps, restoring the seeds where a slot starts a sequence.

    Before step ``k`` every part of ``state`` becomes ``torch.where(reset[k], seed, part)``
    (out of place, so autograd sees no in-place write); then ``state = step(k, state)``.

    Args:
        steps: K.
        reset: ``K x ...`` bool, ``reset[k]`` broadcastable against each state part.
        state, seeds: matching tuples of tensors (seeds broadcast over the slots).
        step: the recurrence; returns the new state (it may record outputs on the side).
        reset_steps: host-side ``K`` bools, True where step k holds any reset. Steps
            without one skip the ``where`` (no device sync is needed to know this).
        reset_slots: instead of ``reset`` and ``reset_steps``, per step the 1-D long tensor
            of slots (axis 1 of each part) that start a sequence, or None where none does:
            those slots are copied from the seeds with ``index_copy``, the same values
            and gradients as the ``where`` at a fraction of its cost when few slots reset.

    Example:
        >>> reset = torch.tensor([[True], [False], [True]]).view(3, 1, 1)
        >>> seen = []
        >>> def step(k, s):
        ...     seen.append(s[0].item())
        ...     return (s[0] + 1,)
        >>> _ = step_with_resets(3, reset, (torch.zeros(1, 1),), (torch.full((1, 1), 10.0),), step)
        >>> seen
        [10.0, 11.0, 10.0]
    """
    if reset_slots is not None:
        for k in range(steps):
            slots = reset_slots[k]
            if slots is not None:
                state = tuple([p.index_copy(1, slots, s.expand(p.shape[:1] + slots.shape + p.shape[2:]))
                               for p, s in zip(state, seeds)])
            state = step(k, state)
        return state
    masks = None  # the K masks as views, made in one call on the first step that needs one
    for k in range(steps):
        if reset_steps is None or reset_steps[k]:
            if masks is None:
                masks = reset.unbind(0)
            mask = masks[k]
            state = tuple([torch.where(mask, s, p) for p, s in zip(state, seeds)])
        state = step(k, state)
    return state
