"""Data-parallel slot-swap training over torch.distributed.

Each process trains its shard of one global epoch order, balanced by steps (see
:mod:`fastseq.bptt.shards`). Every process computes every shard's schedule (the native
scheduler does a million sequences in under a second) and knows, without communicating,
how many windows the epoch has and how many real steps each window holds across all
processes. A process whose shard is done runs idle windows (nothing valid, zero
gradients) until the last one finishes, so every process runs the same number of
windows; gradients are summed with one all-reduce per window and the loss is divided by
the global real steps, so every process takes the same optimizer step.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import torch
import torch.distributed as dist

from fastseq._util.validate import flag
from fastseq.bptt.epoch import EpochSpec
from fastseq.bptt.shards import plan_epoch

__all__ = ["ShardPlan", "shard_plan", "all_reduce_gradients"]


@dataclass(frozen=True)
class ShardPlan:
    """What one process trains, and the epoch's shape across all processes.

    Deprecated with :func:`shard_plan`, which returns it: :func:`~fastseq.bptt.plan_epoch`
    gives every process's shard (``.shards[rank].order``) and ``.real_steps``.

    Attributes:
        rank, world_size: this process and the number of processes.
        order: the sequence ids this process admits, in order.
        real_steps: for each window of the epoch, real steps summed over all processes.
    """

    rank: int
    world_size: int
    order: np.ndarray
    real_steps: np.ndarray

    @property
    def windows(self) -> int:
        return int(self.real_steps.shape[0])


def shard_plan(lengths: np.ndarray, order: np.ndarray, batch_size: int, bptt: int, rank: int,
               world_size: int, wrap_around: bool = False, tail_first: bool = True) -> ShardPlan:
    """Deprecated (removed in the next release): one process's part of :func:`~fastseq.bptt.plan_epoch`.

    The same as ``plan_epoch(lengths, order, spec=EpochSpec(batch_size, bptt, tail=..., wrap_around=...,
    rank=rank, world_size=world_size))``, whose ``.shards[rank].order`` and ``.real_steps`` this
    returns; ``plan_epoch`` also says how many windows each process holds data in and which
    slots it runs, and re-shards a resumed epoch.

    >>> import warnings
    >>> with warnings.catch_warnings():
    ...     warnings.simplefilter("ignore", DeprecationWarning)
    ...     plan = shard_plan(np.array([3, 1, 4, 1]), np.arange(4), 1, 2, rank=0, world_size=2)
    >>> plan.order.tolist(), plan.real_steps.tolist()
    ([2, 3], [4, 4, 1])
    """
    warnings.warn("shard_plan is deprecated and will be removed in the next release; use plan_epoch(lengths, order, "
                  "spec=EpochSpec(...)), whose .shards[rank].order and .real_steps it returns.", DeprecationWarning,
                  stacklevel=2)
    tail = "longest_first" if flag("tail_first", tail_first) else "none"
    spec = EpochSpec(batch_size, bptt, tail=tail, wrap_around=wrap_around, rank=rank, world_size=world_size)
    epoch = plan_epoch(lengths, order, spec=spec)
    return ShardPlan(spec.rank, spec.world_size, epoch.shards[spec.rank].order, epoch.real_steps)


def all_reduce_gradients(params: list[torch.Tensor]) -> None:
    """Sum the gradients of ``params`` over all processes (missing gradients count as zero)."""
    if not (isinstance(params, (list, tuple)) and all(isinstance(p, torch.Tensor) for p in params)):
        params = _tensors("params", params)
    if not params:
        return
    flat = torch.cat([
        (p.grad if p.grad is not None else torch.zeros_like(p)).reshape(-1) for p in params
    ])
    dist.all_reduce(flat)
    offset = 0
    for p in params:
        n = p.numel()
        p.grad = flat[offset:offset + n].view_as(p).clone()
        offset += n


def _tensors(name: str, value) -> list[torch.Tensor]:
    """A list of tensors from any iterable of them (a generator of parameters), else a TypeError."""
    try:
        if isinstance(value, (torch.Tensor, str, bytes)):
            raise TypeError
        items = list(value)
    except TypeError:  # not iterable, or a 0-D array
        raise TypeError(f"Expected {name} to be an iterable of tensors (model.parameters()), "
                        f"got {type(value).__name__}.") from None
    bad = next((i for i, p in enumerate(items) if not isinstance(p, torch.Tensor)), None)
    if bad is not None:
        raise TypeError(f"Expected {name} to hold tensors, got {type(items[bad]).__name__} at {name}[{bad}].")
    return items
