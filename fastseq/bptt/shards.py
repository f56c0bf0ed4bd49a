"""Shards of a slot-swap epoch over processes: balanced by steps, equal in windows, elastic.

Every process computes every shard (the native scheduler does a million sequences in
under a second), so all of them know, without communicating, how many windows the
epoch has and how many real steps each window holds across processes:

- **Balanced by steps.** The sequences of the epoch order go to processes by
  longest-processing-time first: longest sequence first, each to the process with the
  fewest steps so far (ties: the lower rank). Each process keeps its sequences in the
  epoch order, then the tail policy admits its longest ones first.
- **Equal windows.** A process whose shard ends early yields idle windows (one slot,
  ``valid`` all False) until the longest shard ends, so every process runs the same
  number of forward/backward passes and plain ``DistributedDataParallel`` needs no
  ``Join``.
- **Elastic.** :func:`remaining` says, after any window, which sequences are finished
  and where each unfinished one stands (its id, the steps it has trained, the process
  and slot that hold its carried state). :func:`plan_epoch` re-shards that over any
  number of processes: sequences cut mid-way *continue* from their position in the
  first slots of their new process (their carried state moves with them), so every
  sequence is still trained exactly once in that epoch.
"""
from __future__ import annotations

import heapq
import itertools
from dataclasses import dataclass
from typing import Iterator

import numpy as np

from fastseq._util.memory import check_fits
from fastseq._util.validate import flag, lengths_array, order_array
from fastseq.bptt.epoch import MAX_WORLD_SIZE, EpochSpec
from fastseq.bptt.schedule import ScheduleWindow, SlotSchedule, move_longest_first, pack_tail

__all__ = ["Shard", "EpochShards", "Remaining", "balanced_assignment", "plan_epoch", "remaining",
           "shard_windows", "idle_window", "MAX_WORLD_SIZE"]


def balanced_assignment(lengths: np.ndarray, ids: np.ndarray, world_size: int,
                        loads: np.ndarray | None = None) -> np.ndarray:
    """The process of each of ``ids``: longest first, each to the least-loaded process.

    Deterministic: ties in length go in the order of ``ids``, ties in load to the lower
    rank. ``loads`` are steps the processes already carry.

    >>> balanced_assignment(np.array([5, 1, 4, 3, 3]), np.arange(5), 2).tolist()
    [0, 1, 1, 1, 0]
    """
    ids = np.asarray(ids, dtype=np.int64)
    steps = np.asarray(lengths, dtype=np.int64)[ids]
    heap = [(0 if loads is None else int(loads[r]), r) for r in range(world_size)]
    heapq.heapify(heap)
    out = np.empty(ids.size, dtype=np.int64)
    for i in np.argsort(-steps, kind="stable").tolist():
        load, r = heapq.heappop(heap)
        out[i] = r
        heapq.heappush(heap, (load + int(steps[i]), r))
    return out


@dataclass(frozen=True)
class Shard:
    """One process's part of an epoch: sequence ids in admission order, and the steps each
    has already trained (non-zero only for sequences continued after an elastic resume,
    which come first so that they take the first slots in the first window)."""

    order: np.ndarray
    start: np.ndarray

    @property
    def continued(self) -> int:
        return int(np.count_nonzero(self.start))


@dataclass(frozen=True)
class Remaining:
    """Where an epoch stands after some windows, independent of the number of processes.

    Attributes:
        done: ``N`` bools, the sequence has been trained to its end.
        sequence, position: the unfinished sequences that have started, and the steps of
            each already trained.
        rank, slot: where each one's carried state is (process, slot of its last window).
    """

    done: np.ndarray
    sequence: np.ndarray
    position: np.ndarray
    rank: np.ndarray
    slot: np.ndarray


@dataclass(frozen=True)
class EpochShards:
    """Every process's shard of one epoch and the epoch's shape.

    Attributes:
        shards: one :class:`Shard` per rank.
        slots: slots each rank's schedule runs.
        real_steps: for each window of the epoch, real steps summed over all processes.
        windows_per_rank: windows holding real steps, per rank (the rest are idle).
    """

    shards: list[Shard]
    slots: list[int]
    real_steps: np.ndarray
    windows_per_rank: list[int]

    @property
    def windows(self) -> int:
        """Windows every process yields in the epoch (the longest shard's)."""
        return int(self.real_steps.shape[0])


def _rank_orders(lengths, ids, world_size, loads, batch_size, tail: str) -> list[np.ndarray]:
    owner = balanced_assignment(lengths, ids, world_size, loads)
    # grouped by one stable sort (each rank keeps the epoch order), not one scan of ids per rank
    by_rank = np.argsort(owner, kind="stable")
    orders = np.split(ids[by_rank], np.cumsum(np.bincount(owner, minlength=world_size))[:-1])
    arrange = {"longest_first": move_longest_first, "packed": pack_tail}.get(tail)
    if arrange is not None:
        orders = [arrange(o, lengths, batch_size) if o.size > 1 else o for o in orders]
    return orders


def plan_epoch(lengths: np.ndarray, order: np.ndarray, world_size: int | None = None, batch_size: int | None = None,
               bptt: int | None = None, *, tail_first: bool | None = None, compact: bool | None = None,
               wrap_around: bool | None = None, resume: Remaining | None = None,
               spec: EpochSpec | None = None) -> EpochShards:
    """Shard ``order`` over ``world_size`` processes and count every shard's windows.

    The settings come whole in ``spec`` (an :class:`~fastseq.bptt.EpochSpec`; its
    ``rank`` plays no part: every shard is planned), or one by one as ``world_size``,
    ``batch_size``, ``bptt``, ``tail_first`` (default True: ``tail="longest_first"``),
    ``compact`` (default True) and ``wrap_around`` (default False); not both.

    With ``resume``, only what is left of the epoch is sharded: finished sequences are
    left out, unfinished ones continue from their position (dealt out longest remainder
    first, round-robin, so their counts differ by at most one), the rest are balanced on
    top. A process holding more continued sequences than ``batch_size`` runs that many
    slots for the rest of the epoch, so each one continues in its own slot from the first
    window. With ``tail_first`` each process admits its ``batch_size`` longest fresh
    sequences first. ``world_size`` is at most :data:`MAX_WORLD_SIZE` (131072): every
    process plans every shard.

    >>> plan = plan_epoch(np.array([3, 1, 4, 1]), np.arange(4), 2, batch_size=1, bptt=2)
    >>> [s.order.tolist() for s in plan.shards], plan.real_steps.tolist()
    ([[2, 3], [0, 1]], [4, 4, 1])
    """
    lengths = lengths_array(lengths)
    order = order_array(order, lengths.size, of="lengths")
    tail = None if tail_first is None else ("longest_first" if flag("tail_first", tail_first) else "none")
    spec = EpochSpec.resolve(spec, world_size=world_size, batch_size=batch_size, bptt=bptt, tail=tail,
                             compact=compact, wrap_around=wrap_around)
    world_size, batch_size, bptt = spec.world_size, spec.batch_size, spec.bptt
    compact, wrap_around = spec.compact, spec.wrap_around
    if order.size:  # each window counted holds at most bptt steps of the longest sequence
        windows = -(-int(lengths[order].max()) // bptt)
        check_fits(f"plan_epoch of {windows} windows (lengths up to {int(lengths[order].max())}, bptt={bptt})",
                   40.0 * windows)
    loads = np.zeros(world_size, dtype=np.int64)
    cont: list[list[int]] = [[] for _ in range(world_size)]
    cont_pos: list[list[int]] = [[] for _ in range(world_size)]
    if resume is not None:
        if wrap_around:
            raise ValueError("Expected wrap_around=False to resume on another number of processes, got True.")
        left = lengths[resume.sequence] - resume.position
        for i, k in enumerate(np.argsort(-left, kind="stable").tolist()):
            r = i % world_size
            cont[r].append(int(resume.sequence[k]))
            cont_pos[r].append(int(resume.position[k]))
            loads[r] += int(left[k])
        skip = resume.done.copy()
        skip[resume.sequence] = True
        order = order[~skip[order]]
    fresh = _rank_orders(lengths, order, world_size, loads, batch_size, "none" if wrap_around else spec.tail)
    shards = [Shard(np.concatenate([np.asarray(c, np.int64), f]),
                    np.concatenate([np.asarray(p, np.int64), np.zeros(f.size, np.int64)]))
              for c, p, f in zip(cont, cont_pos, fresh)]
    slots = [batch_size if wrap_around else max(1, min(batch_size, s.order.size), s.continued) for s in shards]
    per_rank = [[w.real_steps for w in shard_windows(lengths, s, n, bptt, compact=compact, wrap_around=wrap_around)]
                if s.order.size else [] for s, n in zip(shards, slots)]
    real = np.zeros(max((len(p) for p in per_rank), default=0), dtype=np.int64)
    for steps in per_rank:
        real[: len(steps)] += np.asarray(steps, dtype=np.int64)
    return EpochShards(shards, slots, real, [len(p) for p in per_rank])


def shard_windows(lengths: np.ndarray, shard: Shard, slots: int, bptt: int, *, compact: bool = True,
                  wrap_around: bool = False) -> Iterator[ScheduleWindow]:
    """The windows of one shard. Continued sequences read their rows from their position on
    and start without a reset (their carried state continues)."""
    if not shard.start.any():
        yield from SlotSchedule(lengths, slots, bptt, shard.order, compact=compact, wrap_around=wrap_around)
        return
    # schedule the remainders as sequences of their own, then map rows and ids back
    left = lengths[shard.order] - shard.start
    offsets = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    local = np.concatenate([[0], np.cumsum(left)[:-1]])
    shift = offsets[shard.order] + shard.start - local  # real row = local row + shift[item]
    for w in SlotSchedule(left, slots, bptt, compact=compact):
        item = np.where(w.sequence >= 0, w.sequence, 0)
        idle = w.sequence < 0
        yield ScheduleWindow(w.index, np.where(idle, -1, w.rows + shift[item]),
                             np.where(idle, -1, shard.order[item]), w.reset & (shard.start[item] == 0),
                             w.valid, w.end, w.slot_map)


def idle_window(index: int, bptt: int) -> ScheduleWindow:
    """A window with nothing to train (one slot, ``valid`` all False), for a process whose
    shard has ended while others still run."""
    shape = (bptt, 1)
    none = np.zeros(shape, dtype=bool)
    return ScheduleWindow(index, np.full(shape, -1, np.int64), np.full(shape, -1, np.int64), none, none.copy(),
                          none.copy(), np.zeros(1, np.int64))


def padded_windows(lengths: np.ndarray, epoch: EpochShards, spec: EpochSpec) -> Iterator[ScheduleWindow]:
    """Rank ``spec.rank``'s windows of ``epoch`` (planned with ``spec``) followed by idle ones
    up to the epoch's window count."""
    rank, bptt = spec.rank, spec.bptt
    real = shard_windows(lengths, epoch.shards[rank], epoch.slots[rank], bptt, compact=spec.compact,
                         wrap_around=spec.wrap_around)
    pad = (idle_window(i, bptt) for i in range(epoch.windows_per_rank[rank], epoch.windows))
    return itertools.chain(real, pad)


def remaining(lengths: np.ndarray, epoch: EpochShards, bptt: int, windows: int, *, compact: bool = True,
              done: np.ndarray | None = None) -> Remaining:
    """What is left of ``epoch`` after its first ``windows`` windows (see :class:`Remaining`).

    ``done``: sequences finished before this epoch's shards were planned (a resumed epoch).

    >>> plan = plan_epoch(np.array([3, 1, 4, 1]), np.arange(4), 2, batch_size=1, bptt=2)
    >>> left = remaining(np.array([3, 1, 4, 1]), plan, 2, windows=1)
    >>> left.done.tolist(), left.sequence.tolist(), left.position.tolist(), left.rank.tolist()
    ([False, False, False, False], [2, 0], [2, 2], [0, 1])
    """
    lengths = np.asarray(lengths, dtype=np.int64)
    offsets = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    done = np.zeros(lengths.size, bool) if done is None else done.copy()
    seq, pos, ranks, slots = [], [], [], []
    for r, (shard, n) in enumerate(zip(epoch.shards, epoch.slots)):
        last = None
        for w in itertools.islice(shard_windows(lengths, shard, n, bptt, compact=compact), windows):
            ended = w.sequence[w.end]
            done[ended] = True
            last = w
        if last is None:
            continue
        s = last.sequence[-1]
        live = (s >= 0) & ~last.end[-1]
        for j in np.flatnonzero(live).tolist():
            seq.append(int(s[j]))
            pos.append(int(last.rows[-1, j] - offsets[s[j]] + 1))
            ranks.append(r)
            slots.append(j)
    as_array = lambda v: np.asarray(v, dtype=np.int64)  # noqa: E731
    return Remaining(done, as_array(seq), as_array(pos), as_array(ranks), as_array(slots))
