"""Slot-swap truncated BPTT: ``train_bptt``, a drop-in for code written for the original.

B batch slots are kept busy (see :mod:`fastseq.bptt.schedule`). Windows come from
:class:`~fastseq.bptt.loader.SlotSwapLoader`, the one path from data to device. Per
window the trainer runs ``K`` decoder steps with out-of-place resets (only on the
steps that hold one), reduces the cost over real steps once, and takes one clipped
optimizer step. State is carried, detached, into the next window.

Nothing in the per-step path loops over slots in Python, and the only
device-to-host sync is one per window (the finiteness check of its loss).
"""
from __future__ import annotations

import logging
import numbers
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator, Sequence

import numpy as np
import torch
from torch import nn

from fastseq._util.progress import progress_bar
from fastseq._util.validate import positive_int, real_array, refuse_non_finite
from fastseq.bptt.epoch import EpochSpec, Tail
from fastseq.bptt.feedback import fused_window
from fastseq.bptt.loader import LoaderWindow, SlotSwapLoader, check_paired_lengths
from fastseq.bptt.state import carry_state, state_parts, step_with_resets
from fastseq.bptt.store import SequenceStore

__all__ = ["train_bptt", "NonFiniteLossError"]


class NonFiniteLossError(FloatingPointError):
    """Raised when a window's loss is NaN or infinite; parameters keep their last finite step."""

    def __init__(self, window: int, value: float) -> None:
        kept = f"those after window {window - 1}" if window > 0 else "as they were before training"
        super().__init__(
            f"Loss of window {window} is {value}; training stopped before its optimizer step, so the "
            f"parameters are {kept}. NaN or infinity in contexts or targets, or a learning rate too high "
            f"for the data, gives such a loss."
        )
        self.window = window
        self.value = value


@dataclass(frozen=True)
class _Seeds:
    """What a slot starts a sequence from: visible ``1 x 1 x F``, hidden parts ``L x 1 x H``."""

    visible: torch.Tensor
    hidden: tuple[torch.Tensor, ...]
    hidden_is_tuple: bool

    def expanded(self, width: int) -> "_Carried":
        return _Carried(self.visible.expand(1, width, -1),
                        tuple(h.expand(h.shape[0], width, h.shape[2]) for h in self.hidden))


@dataclass
class _Carried:
    """State carried between windows: the fed-back visible and the hidden parts."""

    visible: torch.Tensor
    hidden: tuple[torch.Tensor, ...]

    def carried(self, slot_map: np.ndarray) -> "_Carried":
        """Detached and narrowed to the next window's slots."""
        parts = carry_state((self.visible,) + self.hidden, slot_map)
        return _Carried(parts[0], tuple(parts[1:]))


@dataclass(frozen=True)
class _Step:
    """The per-window update: cost, gradient clipping, teacher forcing."""

    cost_fn: Callable
    clip_grad_norm: float | None
    teacher_forcing: float
    generator: torch.Generator | None


# ---------------------------------------------------------------------------- validation


def _matrix_store(data, name: str) -> SequenceStore:
    """A store whose sequences are T x F matrices, as the decoder interface needs; a list's
    arrays are read where they are, not copied (see :meth:`SequenceStore.coerce`)."""
    store = SequenceStore.coerce(data, name, copy=False)
    if len(store) and len(store.feature_shape) != 1:
        raise ValueError(
            f"Expected each item of {name} to be T x F (2-D), got items with feature shape "
            f"{store.feature_shape}."
        )
    return store


def _seed_tensor(seed, name: str, shape_text: str, ndim: int, device, dtype) -> torch.Tensor:
    if not isinstance(seed, torch.Tensor):
        arr = real_array(name, seed, allow_empty=True)
        try:
            seed = torch.from_numpy(np.ascontiguousarray(arr))
        except TypeError:  # a dtype torch has no tensor for (2**63 is a NumPy ulonglong)
            raise TypeError(f"Expected {name} to hold real numbers torch can hold, got dtype {arr.dtype}.") from None
    if seed.ndim != ndim:
        raise ValueError(f"Expected {name} to have shape {shape_text}, got shape {tuple(seed.shape)}.")
    if seed.numel() == 0:
        raise ValueError(f"Expected {name} to have shape {shape_text} with no empty side, got shape "
                         f"{tuple(seed.shape)}.")
    if seed.is_complex():
        raise TypeError(f"Expected {name} to hold real numbers, got dtype {seed.dtype}.")
    if seed.is_floating_point() and not bool(torch.isfinite(seed).all()):  # every sequence starts from it
        refuse_non_finite(name, seed.detach().cpu().double().numpy())
    return seed.detach().to(device=device, dtype=dtype)


def _seeds(visible_seed, hidden_seed, target_features: int | None, device, dtype) -> _Seeds:
    """Seeds on the device; ``target_features`` when outputs are compared with (or replaced by)
    targets feature by feature: the default cost and teacher forcing."""
    vseed = _seed_tensor(visible_seed, "visible_seed", "[F]", 1, device, dtype)
    if target_features is not None and vseed.shape[0] != target_features:
        raise ValueError(f"Expected visible_seed to have shape [F] with F = {target_features} (the targets' "
                         f"features: outputs feed back as the next visible input and are compared with, or "
                         f"replaced by, the targets), got shape {tuple(vseed.shape)}.")
    is_tuple = isinstance(hidden_seed, (tuple, list))
    parts = tuple(hidden_seed) if is_tuple else (hidden_seed,)
    if not parts:
        raise ValueError("Expected hidden_seed to be [layers, H] or a non-empty tuple of them, got an empty tuple.")
    hidden = tuple(_seed_tensor(h, "hidden_seed", "[layers, H] (or a tuple of them)", 2, device, dtype).unsqueeze(1)
                   for h in parts)
    return _Seeds(vseed.view(1, 1, -1), hidden, is_tuple)


def _model_device_dtype(decoder: nn.Module, device) -> tuple[torch.device, torch.dtype]:
    params = list(decoder.parameters())
    if device is None:
        device = params[0].device if params else torch.device("cpu")
    dtype = params[0].dtype if params and params[0].is_floating_point() else torch.get_default_dtype()
    return torch.device(device), dtype


def _check_options(clip_grad_norm, teacher_forcing) -> None:
    if clip_grad_norm is not None and not (isinstance(clip_grad_norm, numbers.Real) and clip_grad_norm > 0):
        raise ValueError(f"Expected clip_grad_norm to be a positive number or None, got {clip_grad_norm!r}.")
    if not (isinstance(teacher_forcing, numbers.Real) and 0.0 <= teacher_forcing <= 1.0):
        raise ValueError(f"Expected teacher_forcing to be a probability in [0, 1], got {teacher_forcing!r}.")


# ---------------------------------------------------------------------------- one window


def _per_slot_cost(cost: torch.Tensor, steps: int, width: int) -> torch.Tensor:
    """``K x W`` costs from the stacked ``cost_fn`` results (``K x W`` or ``K x W x ...``)."""
    if cost.ndim < 2 or cost.shape[1] != width:
        got = tuple(cost.shape[1:])
        raise ValueError(
            f"Expected cost_fn to return one loss per slot (shape [{width}] or [{width}, ...]), "
            f"got shape {got}; use reduction='none'."
        )
    return cost.reshape(steps, width, -1).mean(dim=2) if cost.ndim > 2 else cost


_HALF = (torch.float16, torch.bfloat16)


def _real_sum(cost: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """The ``K x W`` costs summed over real steps, in float32 at least: a float16 sum overflows
    past 65,504 (a 64 x 1024 window of costs near 1), where the mean is still representable."""
    if cost.dtype in _HALF:
        cost = cost.float()
    return (cost * valid.to(cost.dtype)).sum()


def _check_step(outputs, hidden, width: int, seeds: _Seeds) -> None:
    """Exact shapes, no broadcasting: outputs ``1 x W x F`` like the visible seed they replace
    when fed back, hidden like the expanded hidden seed."""
    features = seeds.visible.shape[2]
    if not isinstance(outputs, torch.Tensor) or tuple(outputs.shape) != (1, width, features):
        raise ValueError(f"Expected decoder to return outputs of shape [1, {width}, F] with F = {features} "
                         f"(visible_seed's size: outputs feed back as the next visible input), "
                         f"got {tuple(getattr(outputs, 'shape', ()))}.")
    parts = state_parts(hidden) if isinstance(hidden, (torch.Tensor, tuple)) else ()
    want = [(h.shape[0], width, h.shape[2]) for h in seeds.hidden]
    got = [tuple(p.shape) for p in parts]
    if got != want:
        raise ValueError(f"Expected decoder to return a hidden state shaped like hidden_seed expanded to "
                         f"{width} slots, {want if seeds.hidden_is_tuple else want[0]}, got "
                         f"{got if seeds.hidden_is_tuple else (got[0] if len(got) == 1 else got)}.")


def _reset_slots(reset: np.ndarray) -> list[torch.Tensor | None]:
    """Per step of a host ``K x W`` reset mask, the slots that start a sequence (None where none
    does), as slices of one tensor: found in one pass, not one per step."""
    steps, slots = np.nonzero(reset)
    index = torch.from_numpy(slots)
    bounds = np.searchsorted(steps, np.arange(reset.shape[0] + 1)).tolist()
    return [index[a:b] if b > a else None for a, b in zip(bounds[:-1], bounds[1:])]


def _window_cost(decoder: nn.Module, w: LoaderWindow, carried: _Carried, seeds: _Seeds, step: _Step,
                 dtype: torch.dtype, checked: set | None = None) -> tuple[torch.Tensor, _Carried]:
    """Run the K steps of one window; return the summed cost over real steps and the new state.

    The decoder's outputs and hidden state are checked on the first step of a window
    whose width is not in ``checked`` (then added): once per call, not per step.
    """
    steps, width = w.reset.shape
    context, target = w.inputs.to(dtype), w.targets.to(dtype)
    features = seeds.visible.shape[2]
    teacher = None
    if step.teacher_forcing > 0:
        teacher = torch.rand((steps, width), device=target.device, generator=step.generator) < step.teacher_forcing
    fused = fused_window(decoder, context, target, w.reset, teacher, carried, seeds, step.cost_fn)
    if fused is not None:  # FeedbackGRU / FeedbackLSTM: the window as one node (fastseq/bptt/feedback.py)
        cost = _per_slot_cost(fused[0], steps, width)
        return _real_sum(cost, w.valid), _Carried(fused[1][0], tuple(fused[1][1:]))
    # per-step views made once per window: indexing a tensor every step is a dispatch each time
    contexts, targets = context.unbind(0), target.unbind(0)
    teachers = None if teacher is None else teacher.view(steps, 1, width, 1).unbind(0)
    check = checked is None or width not in checked
    costs: list[torch.Tensor] = []
    cost_fn, is_tuple = step.cost_fn, seeds.hidden_is_tuple

    def one_step(k: int, state: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...]:
        nonlocal check
        visible, hidden = state[0], (tuple(state[1:]) if is_tuple else state[1])
        try:
            outputs, hidden = decoder(visible, contexts[k], hidden)
        except RuntimeError as exc:
            if w.index == 0 and k == 0:  # a size mismatch of the seeds shows here first
                raise ValueError(
                    f"Expected the decoder to accept visible 1 x {width} x {features} (visible_seed), context "
                    f"{width} x {contexts[0].shape[1]} and hidden shaped like hidden_seed "
                    f"{[tuple(h.shape[::2]) for h in seeds.hidden]} per slot; its first step failed: {exc}"
                ) from exc
            raise
        if check:
            _check_step(outputs, hidden, width, seeds)
            check = False
            if checked is not None:
                checked.add(width)
        costs.append(cost_fn(outputs[0], targets[k]))
        if teachers is not None:
            outputs = torch.where(teachers[k], targets[k].unsqueeze(0), outputs)
        return (outputs, hidden) if not is_tuple else (outputs,) + hidden

    final = step_with_resets(steps, w.reset.view(steps, 1, width, 1), (carried.visible,) + carried.hidden,
                             (seeds.visible,) + seeds.hidden, one_step, w.schedule.reset.any(1).tolist(),
                             _reset_slots(w.schedule.reset) if w.reset.device.type == "cpu" else None)
    cost = _per_slot_cost(torch.stack(costs), steps, width)
    total = _real_sum(cost, w.valid)  # the loss reduced once per window
    return total, _Carried(final[0], tuple(final[1:]))


@dataclass
class _Run:
    """What an epoch carries from window to window, where a checkpoint reads it and a resume
    sets it (:class:`~fastseq.bptt.Stateful`): the slots' carried state and the losses so far.
    The loader keeps its own position."""

    loader: SlotSwapLoader
    seeds: _Seeds
    carried: _Carried | None = None
    losses: list[float] = field(default_factory=list)

    def start(self) -> _Carried:
        """The state the next window continues from: the carried one, or the seeds in every slot."""
        return self.carried if self.carried is not None else self.seeds.expanded(self.loader.slots)

    def state_dict(self) -> dict:
        """``carried``: this process's parts (the fed-back visible ``1 x W x F``, then each hidden
        ``L x W x H``); ``losses``: a copy of the losses so far."""
        start = self.start()
        return {"carried": (start.visible,) + start.hidden, "losses": list(self.losses)}

    def load_state_dict(self, state: dict) -> None:
        """Continue from a :meth:`state_dict`, or from one whose ``carried`` lists every saved
        process's parts (a checkpoint of several processes); the loader must already stand at
        the saved position (see :func:`_restored_carried`)."""
        saved = state["carried"]
        self.carried = _restored_carried(saved if isinstance(saved, list) else [tuple(saved)], self.loader,
                                         self.seeds)
        self.losses = [float(v) for v in state["losses"]]


def _window_costs(decoder, run: _Run, step: _Step, dtype) -> Iterator[tuple[LoaderWindow, torch.Tensor]]:
    """Yield ``(window, summed cost)`` per window; the caller runs backward and steps."""
    carried, seeds = run.start(), run.seeds
    checked: set = set()  # widths whose decoder outputs were checked, so once per call
    for w in run.loader:
        carried = carried.carried(w.schedule.slot_map)
        total, carried = _window_cost(decoder, w, carried, seeds, step, dtype, checked)
        run.carried = carried
        yield w, total


# ---------------------------------------------------------------------------- epochs


def _optimizer_step(loss, optimizer, params, step: _Step, index: int, value: float, all_reduce=None) -> None:
    if not np.isfinite(value):
        raise NonFiniteLossError(index, value)
    if loss is not None:
        loss.backward()
    if all_reduce is not None:
        all_reduce(params)
    if step.clip_grad_norm is not None:
        nn.utils.clip_grad_norm_(params, step.clip_grad_norm)
    optimizer.step()


def _train(windows, optimizer, params, step: _Step, bar, losses: list[float], after_step: Callable | None = None,
           distributed: bool = False) -> list[float]:
    """One optimizer step per window on the mean cost over the window's real steps. With
    ``distributed``, over every process's real steps: the loss is summed and the gradients
    all-reduced once per window (every process runs the same number of windows, idle ones
    contributing zero), so every process takes the same step."""
    reduce = None
    if distributed:
        import torch.distributed as dist

        from fastseq.bptt.distributed import all_reduce_gradients as reduce
    for index, (w, total) in enumerate(windows, len(losses)):
        optimizer.zero_grad(set_to_none=True)
        loss = total / max(w.total_real_steps, 1)
        summed = loss.detach()
        if distributed:
            summed = summed.clone()
            dist.all_reduce(summed)
        value = float(summed)  # the one sync per window
        _optimizer_step(loss, optimizer, params, step, index, value, reduce)
        losses.append(value)
        bar.update(1)
        bar.set_postfix(loss=f"{value:.4g}", refresh=False)
        if after_step is not None:
            after_step(losses)
    return losses


def _distributed(spec: EpochSpec) -> EpochSpec:
    """``spec`` sharded over the initialized torch.distributed default group."""
    import torch.distributed as dist

    if not dist.is_available() or not dist.is_initialized():
        raise ValueError("Expected torch.distributed to be initialized for distributed=True, it is not.")
    if spec.shuffle and spec.seed is None:
        raise ValueError("Expected an explicit seed with shuffle=True and distributed=True, got None.")
    return spec.replace(rank=dist.get_rank(), world_size=dist.get_world_size())


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
    tail: Tail = "packed",
    distributed: bool = False,
    device: str | torch.device | None = None,
    progress: bool = False,
    checkpoint: str | os.PathLike | None = None,
    checkpoint_every: int = 100,
    epoch: int = 0,
) -> list[float]:
    """Train ``decoder`` for one epoch with slot-swap truncated BPTT; return each window's loss.

    ``batch_size`` slots run concurrently; when a sequence ends the next one takes
    its slot at the next step, with the slot's visible and hidden state reset to
    the seeds. Every ``bptt`` steps the loss (mean cost over real steps only) is
    back-propagated, gradients are clipped, the optimizer steps, and the carried
    state is detached. Each sequence is trained exactly once per epoch.

    Shapes: ``B`` slots, ``F`` visible features, ``C`` context features, ``L``
    layers, ``H`` hidden units, ``T_i`` the length of sequence i.

    The epoch's settings (``batch_size``, ``bptt``, ``shuffle``, ``seed``, ``tail``,
    ``wrap_around`` and, with ``distributed``, this process's shard) become one
    :class:`~fastseq.bptt.EpochSpec`, checked up front and handed whole
    to the loader, and through it to the checkpoint.

    Args:
        decoder: module called as ``decoder(visible, context, hidden)`` with visible
            ``1 x B x F``, context ``B x C`` and hidden ``L x B x H`` (or a tuple of
            them, e.g. an LSTM's ``(h, c)``); returns ``(outputs, hidden)`` with
            outputs ``1 x B x F``.
        contexts: list of ``T_i x C`` arrays or tensors, or a :class:`SequenceStore`.
            A list of C-contiguous arrays (or CPU tensors) of one dtype is read where it is,
            never copied; other lists are copied into a store on every call. Nothing is
            cached between calls, so a list or array changed in place is trained on as changed.
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
        tail: epoch-end policy, as :class:`~fastseq.bptt.SlotSwapLoader`'s:
            ``"packed"`` (default) starts the ``batch_size`` longest sequences first and
            admits the epoch's last sequences longest first, so the slots run out of
            sequences within a few steps of each other; ``"longest_first"`` only starts
            the longest first; ``"none"`` keeps the plain (shuffled) order. Ignored with
            ``wrap_around``.
        distributed: data-parallel over the initialized ``torch.distributed``
            default group: each process trains its shard (balanced by steps, see
            :mod:`fastseq.bptt.shards`) and all take the same step, on gradients summed
            over processes and a loss averaged over the real steps of all processes (see
            :mod:`fastseq.bptt.distributed`). Every process must pass the same data,
            seeds and settings (with ``shuffle``, an explicit ``seed``).
        device: where to compute; default the decoder's device. Windows come from
            :class:`~fastseq.bptt.SlotSwapLoader` (on CUDA the data are moved there once).
        progress: show a progress bar.
        checkpoint: a file to resume this epoch from and to checkpoint it to. If it
            exists it must come from the same data, model, optimizer and settings
            (else a ValueError names what differs, before any step, and the file is
            left as it is); training then continues after its last window, bit for
            bit as if never interrupted (on the CPU). Mid-epoch, the optimizer's settings
            (learning rate and the rest of each parameter group) must be the checkpoint's,
            or the resume is refused naming each; a new epoch starting from the last one's
            end keeps the caller's settings (a schedule's) and logs the ones that changed. Every ``checkpoint_every``
            windows and at the end of the epoch the parameters, the optimizer, the
            loader's position, the carried state, the random states and the losses
            so far replace it atomically (safetensors + JSON, no pickle). A
            checkpoint of a finished epoch returns its losses without training. With
            ``distributed``, process 0 writes every process's carried state; a checkpoint
            resumes on any number of processes (or without ``distributed``): what is left
            of the epoch is re-sharded, sequences cut mid-way continue with their carried
            state, and every sequence is trained exactly once in the epoch. On another
            number of processes the windows differ from the uninterrupted run's; on the
            same number they are the same (bit for bit is tested on one and on two processes;
            see the guide's resume section for what differs on another number).
        checkpoint_every: windows between checkpoints.
        epoch: which epoch of a run this call trains: the order is shuffled with
            ``seed + epoch`` and teacher forcing draws from ``seed + epoch``; a checkpoint
            records it. A checkpoint that finished the previous epoch restores the
            parameters, the optimizer and the random states, and this epoch starts from
            its first window; one of another epoch is refused.

    Returns:
        The loss of each window, as Python floats.

    Raises:
        NonFiniteLossError: a window's loss was NaN or infinite; the parameters are
            left as after the last finite step.
        ValueError: bad input, named; a decoder whose outputs or hidden state do not
            have exactly the shapes the targets and seeds imply (no broadcasting).

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
    _check_options(clip_grad_norm, teacher_forcing)
    wrap_around = bool(wrap_around)  # as the loader has always taken it (and shuffle below)
    spec = EpochSpec(batch_size, bptt, shuffle=bool(shuffle), seed=seed, tail="none" if wrap_around else tail,
                     wrap_around=wrap_around)
    ctx_store, tgt_store = _matrix_store(contexts, "contexts"), _matrix_store(targets, "targets")
    check_paired_lengths(ctx_store, tgt_store, "contexts", "targets")
    if len(ctx_store) == 0:
        raise ValueError("Expected contexts and targets to hold at least one sequence, got none.")
    device, dtype = _model_device_dtype(decoder, device)
    same_features = cost_fn is None or teacher_forcing > 0
    seeds = _seeds(visible_seed, hidden_seed, tgt_store.feature_shape[0] if same_features else None, device, dtype)
    if distributed:
        spec = _distributed(spec)
    loader = SlotSwapLoader(ctx_store, tgt_store, spec=spec, device=device, data_on_device=device.type == "cuda",
                            plan=None)
    loader.epoch = _count("epoch", epoch)
    generator = None
    if teacher_forcing > 0:
        generator = torch.Generator(device=device)
        generator.manual_seed((0 if spec.seed is None else spec.seed) + loader.epoch)
    step = _Step(nn.PairwiseDistance() if cost_fn is None else cost_fn, clip_grad_norm, teacher_forcing, generator)
    params = [p for p in decoder.parameters() if p.requires_grad]
    run, after_step = _Run(loader, seeds), None
    if checkpoint is not None:
        from fastseq.bptt.checkpoint import run_config

        options = {"teacher_forcing": teacher_forcing, "clip_grad_norm": clip_grad_norm, "dtype": str(dtype),
                   "cost_fn": type(step.cost_fn).__name__}
        config = run_config(decoder, optimizer, ctx_store, tgt_store, options)
        after_step, finished = _resume(Path(checkpoint), positive_int("checkpoint_every", checkpoint_every),
                                       decoder, optimizer, run, generator, config, distributed)
        if finished:
            return run.losses
    windows = _window_costs(decoder, run, step, dtype)
    with progress_bar(progress, total=len(loader) if progress else None, desc="train_bptt", unit="window") as bar:
        losses = _train(windows, optimizer, params, step, bar, run.losses, after_step, distributed)
        if after_step is not None:
            after_step(losses, final=True)
        return losses


def _resume(path: Path, every: int, decoder, optimizer, run: _Run, generator, config: dict,
            distributed: bool) -> tuple[Callable, bool]:
    """Restore ``run`` (its loader, carried state and losses), the decoder, the optimizer and the
    random states from ``path`` if it exists, after checking that it fits this run; return the
    per-step checkpoint hook and whether the checkpoint's epoch had finished."""
    from fastseq.bptt.checkpoint import (config_differences, load_checkpoint, optimizer_differences, restore,
                                         save_checkpoint)

    loader = run.loader
    finished = False
    if path.exists():
        meta, tensors = load_checkpoint(path)
        # the epoch's settings are compared as the loader's spec, each named as train_bptt's argument
        # (older checkpoints repeat them in config["loader"], left out here)
        differ = loader.state_differences(meta["loader"], labels=("checkpoint", "now")) + config_differences(
            {k: v for k, v in meta["config"].items() if k != "loader"}, config)
        if differ:
            raise ValueError(f"Expected checkpoint {path} to come from this training run, but "
                             + ", ".join(differ) + " differ; nothing was trained and the file is unchanged.")
        epoch, (at, window) = loader.epoch, (meta["loader"]["epoch"], meta["loader"]["window"])
        if not (at == epoch or (at == epoch + 1 and window == 0)):
            raise ValueError(f"Expected checkpoint {path} to be in epoch {epoch} or at its start, got epoch {at} "
                             f"after {window} windows; nothing was trained and the file is unchanged.")
        hyper = optimizer_differences(meta["optimizer"]["param_groups"], optimizer)
        if hyper and at == epoch and window > 0:  # mid-epoch: the run goes on as it was trained
            raise ValueError(f"Expected checkpoint {path} to be resumed with the optimizer settings it was trained "
                             f"with, but " + ", ".join(hyper) + "; nothing was trained and the file is unchanged.")
        callers = [{k: v for k, v in g.items() if k != "params"} for g in optimizer.param_groups]
        loader.load_state_dict(meta["loader"])
        saved, losses = restore(meta, tensors, decoder, optimizer, generator, run.seeds.visible.device,
                                loader.spec.rank)
        if hyper and at == epoch:  # a new epoch from the last one's end: the caller's settings (a schedule's)
            for group, mine in zip(optimizer.param_groups, callers):
                group.update(mine)
            logging.getLogger("fastseq.bptt").info(
                "train_bptt: epoch %d starts from checkpoint %s with the caller's optimizer settings: %s",
                epoch, path, ", ".join(hyper))
        finished = at > epoch
        if at == epoch and window == 0:  # the previous epoch's end: this epoch starts from its seeds
            if generator is not None:
                generator.manual_seed((loader.spec.seed or 0) + epoch)
        else:
            run.load_state_dict({"carried": saved, "losses": losses})

    def after_step(so_far: list[float], final: bool = False) -> None:
        if final or len(so_far) % every == 0:
            state, rng = run.state_dict(), [torch.get_rng_state()]
            parts = state["carried"]
            if distributed:
                parts = _gather_carried(parts)
                rng = [r.cpu() for r in _gather(rng[0].to(parts[0][0].device))]
            if loader.spec.rank == 0:
                save_checkpoint(path, config=config, loader_state=loader.state_dict(), decoder=decoder,
                                optimizer=optimizer, carried=parts, losses=state["losses"], generator=generator,
                                torch_rng=rng)
            if distributed:
                import torch.distributed as dist

                dist.barrier()  # every process returns once the checkpoint is on disk

    return after_step, finished


def _count(name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
        raise ValueError(f"Expected {name} to be an integer >= 0, got {value!r}.")
    return int(value)


def _restored_carried(saved: list[tuple[torch.Tensor, ...]], loader: SlotSwapLoader, seeds: _Seeds) -> _Carried | None:
    """The carried state to start from: this process's own on the same number of processes;
    after re-sharding, each continued sequence's state in the slot it continues in."""
    sources = loader.continued_from()
    if sources:
        start = seeds.expanded(loader.slots)
        parts = [p.clone() for p in (start.visible,) + start.hidden]
        for j, (r, slot) in enumerate(sources):
            for p, s in zip(parts, saved[r]):
                p[:, j] = s[:, slot]
        return _Carried(parts[0], tuple(parts[1:]))
    if len(saved) == loader.spec.world_size:
        parts = saved[loader.spec.rank]
        return _Carried(parts[0], tuple(parts[1:]))
    return None  # re-sharded with nothing in flight: every slot starts from the seeds


def _gather(tensor: torch.Tensor) -> list[torch.Tensor]:
    import torch.distributed as dist

    out = [torch.empty_like(tensor) for _ in range(dist.get_world_size())]
    dist.all_gather(out, tensor.contiguous())
    return out


def _gather_carried(parts: tuple[torch.Tensor, ...]) -> list[tuple[torch.Tensor, ...]]:
    """Every process's carried parts (``L x W_r x H``), padded to the widest with zeros."""
    widths = _gather(torch.tensor([parts[0].shape[1]], device=parts[0].device))
    wide = max(int(w) for w in widths)
    padded = [torch.cat([p.detach(), p.new_zeros((p.shape[0], wide - p.shape[1], p.shape[2]))], 1) for p in parts]
    gathered = [_gather(p) for p in padded]
    return [tuple(g[r] for g in gathered) for r in range(len(widths))]
