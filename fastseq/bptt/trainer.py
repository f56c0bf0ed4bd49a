"""Slot-swap truncated BPTT: ``train_bptt``, a drop-in for code written for the original.

B batch slots are kept busy (see :mod:`fastseq.bptt.schedule`). Per window the trainer
gathers the rows the schedule names, runs ``K`` decoder steps with out-of-place
resets (``torch.where``), averages the cost over real steps only, and takes one
clipped optimizer step. State is carried, detached, into the next window.

Nothing in the per-step path loops over slots in Python, and the only
device-to-host sync is one per window (the finiteness check of its loss).
"""
from __future__ import annotations

import itertools
import numbers
from dataclasses import dataclass
from typing import Callable, Iterator, Sequence

import numpy as np
import torch
from torch import nn

from fastseq._util.validate import positive_int
from fastseq.bptt.schedule import ScheduleWindow, SlotSchedule, epoch_order
from fastseq.bptt.store import SequenceStore

__all__ = ["train_bptt", "NonFiniteLossError"]

Hidden = torch.Tensor | tuple[torch.Tensor, ...]


class NonFiniteLossError(FloatingPointError):
    """Raised when a window's loss is NaN or infinite; parameters keep their last finite step."""

    def __init__(self, window: int, value: float) -> None:
        super().__init__(
            f"Loss of window {window} is {value}; training stopped before its optimizer step, "
            f"so the parameters are those after window {window - 1}."
        )
        self.window = window
        self.value = value


def _matrix_store(data, name: str) -> SequenceStore:
    """A store whose sequences are T x F matrices, as the decoder interface needs."""
    store = SequenceStore.coerce(data, name)
    if len(store) and store.data.ndim != 2:
        raise ValueError(
            f"Expected each item of {name} to be T x F (2-D), got items with feature shape "
            f"{store.feature_shape}."
        )
    return store


def _check_pairs(contexts: SequenceStore, targets: SequenceStore) -> None:
    if len(contexts) != len(targets):
        raise ValueError(
            f"Expected contexts and targets to hold the same number of sequences, "
            f"got {len(contexts)} and {len(targets)}."
        )
    differ = np.nonzero(contexts.lengths != targets.lengths)[0]
    if differ.size:
        i = int(differ[0])
        raise ValueError(
            f"Expected contexts[i] and targets[i] to have the same length, got "
            f"{contexts.lengths[i]} and {targets.lengths[i]} at i={i}."
        )


def _seed_tensor(seed, name: str, ndim: int, shape_text: str, device, dtype) -> torch.Tensor:
    if not isinstance(seed, torch.Tensor):
        seed = torch.as_tensor(np.asarray(seed))
    if seed.ndim != ndim:
        raise ValueError(f"Expected {name} to have shape {shape_text}, got shape {tuple(seed.shape)}.")
    return seed.detach().to(device=device, dtype=dtype)


def _hidden_seed(seed, device, dtype) -> Hidden:
    if isinstance(seed, (tuple, list)):
        return tuple(_hidden_seed(s, device, dtype) for s in seed)
    return _seed_tensor(seed, "hidden_seed", 2, "[layers, H] (or a tuple of them)", device, dtype)


def _map_hidden(fn: Callable[[torch.Tensor], torch.Tensor], h: Hidden) -> Hidden:
    return tuple(fn(x) for x in h) if isinstance(h, tuple) else fn(h)


def _expand_hidden(seed: Hidden, width: int) -> Hidden:
    return _map_hidden(lambda s: s.unsqueeze(1).expand(s.shape[0], width, s.shape[1]), seed)


def _reset_hidden(h: Hidden, seed: Hidden, mask: torch.Tensor) -> Hidden:
    if isinstance(h, tuple):
        return tuple(torch.where(mask, s.unsqueeze(1), x) for x, s in zip(h, seed))
    return torch.where(mask, seed.unsqueeze(1), h)


def _per_slot_cost(cost: torch.Tensor, width: int) -> torch.Tensor:
    if cost.ndim == 0 or cost.shape[0] != width:
        raise ValueError(
            f"Expected cost_fn to return one loss per slot (shape [{width}] or [{width}, ...]), "
            f"got shape {tuple(cost.shape)}; use reduction='none'."
        )
    return cost.reshape(width, -1).mean(dim=1) if cost.ndim > 1 else cost


@dataclass
class _Slots:
    """State carried between windows: the fed-back visible and the hidden state."""

    visible: torch.Tensor
    hidden: Hidden


@dataclass
class _WindowTensors:
    context: torch.Tensor  # K x W x C
    target: torch.Tensor  # K x W x F
    reset: torch.Tensor  # K x W (bool)
    valid: torch.Tensor  # K x W (float)


class _WindowFeeder:
    """Moves a window's rows to the device: data moved once to CUDA and gathered there,
    or gathered on CPU by the native gather into reusable buffers."""

    def __init__(self, contexts: SequenceStore, targets: SequenceStore, device, dtype):
        self.device, self.dtype = device, dtype
        self.on_cpu = device.type == "cpu"
        if self.on_cpu:
            self.contexts, self.targets = contexts, targets
            self._buffers: dict[tuple, tuple[np.ndarray, np.ndarray]] = {}
        else:
            self.contexts = torch.as_tensor(np.asarray(contexts.data)).to(device, dtype)
            self.targets = torch.as_tensor(np.asarray(targets.data)).to(device, dtype)

    def __call__(self, w: ScheduleWindow) -> _WindowTensors:
        k, b = w.rows.shape
        if self.on_cpu:
            bufs = self._buffers.get((k, b))
            if bufs is None:
                bufs = (np.empty((k, b) + self.contexts.feature_shape, self.contexts.dtype),
                        np.empty((k, b) + self.targets.feature_shape, self.targets.dtype))
                self._buffers = {(k, b): bufs}
            ctx = torch.from_numpy(self.contexts.gather(w.rows, bufs[0])).to(self.dtype)
            tgt = torch.from_numpy(self.targets.gather(w.rows, bufs[1])).to(self.dtype)
            reset = torch.from_numpy(w.reset)
            valid = torch.from_numpy(w.valid).to(self.dtype)
        else:
            rows = torch.from_numpy(np.maximum(w.rows, 0).reshape(-1)).pin_memory()
            rows = rows.to(self.device, non_blocking=True)
            ctx = self.contexts.index_select(0, rows).view(k, b, -1)
            tgt = self.targets.index_select(0, rows).view(k, b, -1)
            reset = torch.from_numpy(w.reset).pin_memory().to(self.device, non_blocking=True)
            valid = torch.from_numpy(w.valid).pin_memory().to(self.device, non_blocking=True)
            valid = valid.to(self.dtype)
        return _WindowTensors(ctx, tgt, reset, valid)


def _run_window(
    decoder: nn.Module,
    x: _WindowTensors,
    slots: _Slots,
    visible_seed: torch.Tensor,
    hidden_seed: Hidden,
    cost_fn: Callable,
    teacher_mask: torch.Tensor | None = None,
    on_step: Callable[[int, torch.Tensor], None] | None = None,
) -> torch.Tensor:
    """Run the K steps of one window; return the summed cost over real steps.

    ``slots`` is updated in place to the state after the window (not detached).
    """
    visible, hidden = slots.visible, slots.hidden
    steps, width = x.reset.shape
    total = x.valid.new_zeros(())
    for k in range(steps):
        mask = x.reset[k].view(1, width, 1)
        visible = torch.where(mask, visible_seed, visible)
        hidden = _reset_hidden(hidden, hidden_seed, mask)
        outputs, hidden = decoder(visible, x.context[k], hidden)
        if k == 0 and (outputs.ndim != 3 or outputs.shape[:2] != (1, width)):
            raise ValueError(
                f"Expected decoder to return outputs of shape [1, {width}, F], got "
                f"{tuple(outputs.shape)}."
            )
        if on_step is not None:
            on_step(k, outputs)
        cost = _per_slot_cost(cost_fn(outputs[0], x.target[k]), width)
        total = total + (cost * x.valid[k]).sum()
        visible = outputs
        if teacher_mask is not None:
            visible = torch.where(teacher_mask[k].view(1, width, 1), x.target[k].unsqueeze(0), outputs)
    slots.visible, slots.hidden = visible, hidden
    return total


def _narrow(slots: _Slots, slot_map: np.ndarray) -> None:
    if slot_map.shape[0] == slots.visible.shape[1] and (slot_map == np.arange(slot_map.shape[0])).all():
        return
    index = torch.from_numpy(slot_map).to(slots.visible.device)
    slots.visible = slots.visible.index_select(1, index)
    slots.hidden = _map_hidden(lambda h: h.index_select(1, index), slots.hidden)


def iterate_windows(
    decoder: nn.Module,
    contexts: SequenceStore,
    targets: SequenceStore,
    visible_seed: torch.Tensor,
    hidden_seed: Hidden,
    schedule: SlotSchedule,
    cost_fn: Callable,
    device: torch.device,
    dtype: torch.dtype,
    teacher_forcing: float = 0.0,
    generator: torch.Generator | None = None,
    on_step: Callable[[ScheduleWindow, int, torch.Tensor], None] | None = None,
) -> Iterator[tuple[ScheduleWindow, torch.Tensor]]:
    """Yield ``(window, summed cost)`` per window; the caller runs backward and steps.

    The carried state is detached when the caller asks for the next window.
    """
    feeder = _WindowFeeder(contexts, targets, device, dtype)
    slots = _Slots(visible_seed.expand(1, schedule.batch_size, -1),
                   _expand_hidden(hidden_seed, schedule.batch_size))
    for w in schedule:
        _narrow(slots, w.slot_map)
        x = feeder(w)
        teacher_mask = None
        if teacher_forcing > 0:
            teacher_mask = torch.rand(w.rows.shape, device=device, generator=generator) < teacher_forcing
        step_hook = None if on_step is None else (lambda k, out, w=w: on_step(w, k, out))
        total = _run_window(decoder, x, slots, visible_seed, hidden_seed, cost_fn, teacher_mask, step_hook)
        yield w, total
        slots.visible = slots.visible.detach()
        slots.hidden = _map_hidden(torch.Tensor.detach, slots.hidden)


def _model_device_dtype(decoder: nn.Module, device) -> tuple[torch.device, torch.dtype]:
    params = list(decoder.parameters())
    if device is None:
        device = params[0].device if params else torch.device("cpu")
    dtype = params[0].dtype if params and params[0].is_floating_point() else torch.get_default_dtype()
    return torch.device(device), dtype


def train_bptt(
    decoder: nn.Module,
    contexts: Sequence | SequenceStore,
    targets: Sequence | SequenceStore,
    visible_seed,
    hidden_seed,
    optimizer: torch.optim.Optimizer,
    batch_size: int,
    bptt: int,
    cost_fn: Callable | None = None,
    clip_grad_norm: float | None = 1.0,
    *,
    teacher_forcing: float = 0.0,
    shuffle: bool = False,
    seed: int | None = None,
    wrap_around: bool = False,
    admit_longest_first: bool = True,
    distributed: bool = False,
    device: str | torch.device | None = None,
    progress: bool = False,
) -> list[float]:
    """Train ``decoder`` for one epoch with slot-swap truncated BPTT; return each window's loss.

    ``batch_size`` slots run concurrently; when a sequence ends the next one takes
    its slot at the next step, with the slot's visible and hidden state reset to
    the seeds. Every ``bptt`` steps the loss (mean cost over real steps only) is
    back-propagated, gradients are clipped, the optimizer steps, and the carried
    state is detached. Each sequence is trained exactly once per epoch.

    Shapes: ``B`` slots, ``F`` visible features, ``C`` context features, ``L``
    layers, ``H`` hidden units, ``T_i`` the length of sequence i.

    Args:
        decoder: module called as ``decoder(visible, context, hidden)`` with visible
            ``1 x B x F``, context ``B x C`` and hidden ``L x B x H`` (or a tuple of
            them, e.g. an LSTM's ``(h, c)``); returns ``(outputs, hidden)`` with
            outputs ``1 x B x F``.
        contexts: list of ``T_i x C`` arrays or tensors, or a :class:`SequenceStore`.
        targets: list of ``T_i x F`` arrays or tensors, or a :class:`SequenceStore`.
        visible_seed: ``F``; the visible input at the first step of each sequence.
        hidden_seed: ``L x H`` (or a tuple of them); the hidden state at that step.
        optimizer: a ``torch.optim`` optimizer over the decoder's parameters.
        batch_size: number of slots ``B``.
        bptt: steps per optimizer step ``K``.
        cost_fn: ``cost_fn(outputs[0], target)`` returning one cost per slot (``B``,
            or ``B x ...`` averaged over the trailing axes). Default
            ``torch.nn.PairwiseDistance()``, as in the original.
        clip_grad_norm: maximum gradient norm (None: no clipping).
        teacher_forcing: probability, per slot and step, of feeding the true
            target instead of the decoder's output as the next visible input
            (0: always the output, as the original; 1: teacher forcing).
        shuffle: admit sequences in a random order drawn from ``seed``.
        seed: seeds the order and the teacher-forcing draws.
        wrap_around: reproduce the original's wrap-around: instead of idling while
            the epoch drains, slots re-train sequences from the start of the order.
        admit_longest_first: start the ``batch_size`` longest sequences first, so
            that the end of the epoch, where slots run out of sequences, is short.
            False keeps the plain (shuffled) order.
        distributed: data-parallel over the initialized ``torch.distributed``
            default group: each process trains ``order[rank::world_size]`` and all
            take the same step, on gradients summed over processes and a loss
            averaged over the real steps of all processes (see
            :mod:`fastseq.bptt.distributed`). Every process must pass the same data,
            seeds and settings (with ``shuffle``, an explicit ``seed``).
        device: where to compute; default the decoder's device. Data are moved
            there once.
        progress: show a progress bar.

    Returns:
        The loss of each window, as Python floats.

    Raises:
        NonFiniteLossError: a window's loss was NaN or infinite; the parameters are
            left as after the last finite step.

    Example:
        >>> import torch
        >>> torch.manual_seed(0)  # doctest: +ELLIPSIS
        <torch._C.Generator object at ...>
        >>> class Decoder(torch.nn.Module):
        ...     def __init__(self):
        ...         super().__init__()
        ...         self.rnn = torch.nn.GRU(2 + 3, 8)
        ...         self.out = torch.nn.Linear(8, 2)
        ...     def forward(self, visible, context, hidden):
        ...         h, hidden = self.rnn(torch.cat([visible, context[None]], -1), hidden)
        ...         return self.out(h), hidden
        >>> dec = Decoder()
        >>> ctx = [torch.randn(n, 3) for n in (5, 2, 7)]
        >>> tgt = [torch.randn(n, 2) for n in (5, 2, 7)]
        >>> opt = torch.optim.SGD(dec.parameters(), lr=0.1)
        >>> losses = train_bptt(dec, ctx, tgt, torch.zeros(2), torch.zeros(1, 8), opt,
        ...                     batch_size=2, bptt=3)
        >>> len(losses)
        3
    """
    if not isinstance(decoder, nn.Module):
        raise TypeError(f"Expected decoder to be a torch.nn.Module, got {type(decoder).__name__}.")
    batch_size = positive_int("batch_size", batch_size)
    bptt = positive_int("bptt", bptt)
    if clip_grad_norm is not None and not (isinstance(clip_grad_norm, numbers.Real) and clip_grad_norm > 0):
        raise ValueError(f"Expected clip_grad_norm to be a positive number or None, got {clip_grad_norm!r}.")
    if not (isinstance(teacher_forcing, numbers.Real) and 0.0 <= teacher_forcing <= 1.0):
        raise ValueError(f"Expected teacher_forcing to be a probability in [0, 1], got {teacher_forcing!r}.")
    cost_fn = nn.PairwiseDistance() if cost_fn is None else cost_fn
    ctx_store = _matrix_store(contexts, "contexts")
    tgt_store = _matrix_store(targets, "targets")
    _check_pairs(ctx_store, tgt_store)
    if len(ctx_store) == 0:
        raise ValueError("Expected contexts and targets to hold at least one sequence, got none.")
    device, dtype = _model_device_dtype(decoder, device)
    vseed = _seed_tensor(visible_seed, "visible_seed", 1, "[F]", device, dtype)
    hseed = _hidden_seed(hidden_seed, device, dtype)
    if teacher_forcing > 0 and vseed.shape[0] != tgt_store.feature_shape[0]:
        raise ValueError(
            f"Expected visible_seed to have as many features as targets for teacher forcing, "
            f"got {vseed.shape[0]} and {tgt_store.feature_shape[0]}."
        )
    shard = None
    world = 1
    if distributed:
        import torch.distributed as dist

        from fastseq.bptt.distributed import all_reduce_gradients, shard_plan

        if not dist.is_available() or not dist.is_initialized():
            raise ValueError("Expected torch.distributed to be initialized for distributed=True, it is not.")
        if shuffle and seed is None:
            raise ValueError("Expected an explicit seed with shuffle=True and distributed=True, got None.")
        world = dist.get_world_size()
    longest = batch_size * world if admit_longest_first and not wrap_around else 0
    order = epoch_order(len(ctx_store), shuffle=shuffle, seed=seed, lengths=ctx_store.lengths,
                        longest_first=longest)
    if distributed:
        shard = shard_plan(ctx_store.lengths, order, batch_size, bptt, dist.get_rank(), world, wrap_around)
        order = shard.order
    schedule = SlotSchedule(ctx_store.lengths, batch_size, bptt, order, compact=True,
                            wrap_around=wrap_around)
    generator = None
    if teacher_forcing > 0:
        generator = torch.Generator(device=device)
        generator.manual_seed(0 if seed is None else seed)
    params = [p for p in decoder.parameters() if p.requires_grad]
    windows = iterate_windows(decoder, ctx_store, tgt_store, vseed, hseed, schedule, cost_fn,
                              device, dtype, teacher_forcing, generator)
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=int(np.ceil(schedule.total_rows / (batch_size * bptt))), unit="window",
                   desc="train_bptt")
    losses: list[float] = []
    try:
        for index in itertools.count():
            item = next(windows, None)
            if item is None and (shard is None or index >= shard.windows):
                break
            optimizer.zero_grad(set_to_none=True)
            if shard is None:
                loss = item[1] / max(item[0].real_steps, 1)
                value = float(loss.detach())  # the one sync per window
            else:  # a process whose shard is done still joins the all-reduces, with zeros
                total = item[1] if item is not None else torch.zeros((), device=device, dtype=dtype)
                loss = total / max(int(shard.real_steps[index]), 1)
                summed = loss.detach().clone()
                dist.all_reduce(summed)
                value = float(summed)
            if not np.isfinite(value):
                raise NonFiniteLossError(index, value)
            if item is not None:
                loss.backward()
            if shard is not None:
                all_reduce_gradients(params)
            if clip_grad_norm is not None:
                nn.utils.clip_grad_norm_(params, clip_grad_norm)
            optimizer.step()
            losses.append(value)
            if bar is not None:
                bar.update(1)
                bar.set_postfix(loss=f"{value:.4g}", refresh=False)
    finally:
        if bar is not None:
            bar.close()
    return losses
