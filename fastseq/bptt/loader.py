"""SlotSwapLoader: iterate slot-swap windows for any training loop, prepared ahead.

Each item is one truncated-BPTT window of ``K`` steps over ``W`` batch slots, on
the chosen device: inputs, targets, the reset and valid masks, the sequence ids
and the slot map. The native scheduler and the native row gather (both release
the GIL) fill reusable host buffers (pinned for CUDA) and the packing plan for
sequence mode is cut; on CUDA a background thread does this while the current
window trains (on the CPU, inline measured faster, see ``prefetch``).
"""
from __future__ import annotations

import itertools
import queue
import threading
import zlib
from dataclasses import dataclass
from typing import Iterator, Literal

import numpy as np
import torch
from torch import Tensor

from fastseq._util.memory import check_fits
from fastseq._util.validate import one_of, positive_int
from fastseq.bptt.epoch import TAILS, EpochSpec, Tail, describe_difference
from fastseq.bptt.schedule import ScheduleWindow, epoch_order, move_longest_first, pack_tail
from fastseq.bptt.plans import DensePlan, SegmentPlan, default_engine, window_plan
from fastseq.bptt.shards import EpochShards, Remaining, padded_windows, plan_epoch, remaining
from fastseq.bptt.store import SequenceStore

__all__ = ["LoaderWindow", "SlotSwapLoader", "tail_order", "check_paired_lengths", "Tail"]

_DONE = object()


@dataclass(frozen=True)
class LoaderWindow:
    """One window, ready on the device. K steps, W slots (``W <= B``), ``*F`` features.

    Attributes:
        index: position of the window in the epoch.
        inputs: ``K x W x *F`` rows of the input sequences (zeros where a slot idles).
        targets: ``K x W x *G`` rows of the targets, or None.
        reset: ``K x W`` bool, the slot starts a new sequence at this step.
        valid: ``K x W`` bool, the slot holds a real step.
        sequence: ``K x W`` int64 id of the sequence in each slot, -1 where idle.
        slot_map: ``W`` int64; slot j continues slot ``slot_map[j]`` of the previous window.
        plan: the packing plan for sequence mode (SegmentPlan or DensePlan), or None.
        schedule: the scheduler's NumPy window (host side: ``ended()``, ``end``, ``rows``).
        total_real_steps: real steps of this window summed over all processes (equals
            ``real_steps`` with one process); divide the summed cost by it for the mean
            over every process's real steps.
    """

    index: int
    inputs: Tensor
    targets: Tensor | None
    reset: Tensor
    valid: Tensor
    sequence: Tensor
    slot_map: Tensor
    plan: SegmentPlan | DensePlan | None
    schedule: ScheduleWindow
    total_real_steps: int = 0

    @property
    def real_steps(self) -> int:
        """(step, slot) pairs holding real data; computed on the host, no device sync."""
        return self.schedule.real_steps


def tail_order(order: np.ndarray, lengths: np.ndarray, batch_size: int, tail: Tail) -> np.ndarray:
    """Reorder an epoch order so the last sequences drain quickly (the one epoch-end policy).

    ``"packed"`` (the default) admits the ``batch_size`` longest sequences first and the
    epoch's last sequences longest first, so the slots finish within a few steps of each
    other: the epoch lasts about ``max(longest, ceil(total / batch_size))`` steps, its
    lower bound (see :func:`~fastseq.bptt.schedule.pack_tail`). ``"longest_first"``
    only admits the ``batch_size`` longest first, so no long sequence is admitted late
    and the drain lasts about one typical length. ``"none"`` keeps the order.

    >>> tail_order(np.arange(5), np.array([1, 9, 2, 3, 7]), 2, "longest_first").tolist()
    [1, 4, 0, 2, 3]
    >>> tail_order(np.arange(5), np.array([1, 9, 2, 3, 7]), 2, "packed").tolist()
    [1, 4, 3, 2, 0]
    """
    one_of("tail", tail, TAILS)
    order = np.asarray(order, dtype=np.int64)
    if tail == "none" or order.size <= 1:
        return order.copy()
    if tail == "packed":
        return pack_tail(order, lengths, batch_size)
    return move_longest_first(order, lengths, batch_size)


def _row_bytes(store: SequenceStore) -> int:
    return int(np.prod(store.feature_shape, dtype=np.int64)) * store.dtype.itemsize


def check_paired_lengths(a: SequenceStore, b: SequenceStore, name_a: str, name_b: str) -> None:
    """Refuse two stores that do not pair sequence by sequence, naming the first mismatch."""
    if len(a) != len(b):
        raise ValueError(f"Expected {name_a} and {name_b} to hold the same number of sequences, "
                         f"got {len(a)} and {len(b)}.")
    differ = np.nonzero(a.lengths != b.lengths)[0]
    if differ.size:
        i = int(differ[0])
        raise ValueError(f"Expected {name_a}[i] and {name_b}[i] to have the same length, "
                         f"got {a.lengths[i]} and {b.lengths[i]} at i={i}.")


class _Staging:
    """Host buffers for the windows: a ring of reused ones (pinned for CUDA), or fresh arrays.

    Reuse saves the page faults of fresh multi-hundred-KB arrays every window on the
    CPU, and the cost of pinning on CUDA. A CUDA buffer is refilled only after the
    copy that read it has finished (an event recorded after the copy).
    """

    def __init__(self, device: torch.device, ring: int | None) -> None:
        self.pinned = device.type == "cuda"
        self.ring: list[dict] = [{} for _ in range(ring or 0)]
        self.events: list = [None] * len(self.ring)
        self.turn = 0

    def take(self) -> int:
        if not self.ring:
            return -1
        slot = self.turn
        self.turn = (self.turn + 1) % len(self.ring)
        if self.events[slot] is not None:
            self.events[slot].synchronize()  # the device has finished reading this buffer
        return slot

    def array(self, slot: int, key: str, shape: tuple, dtype) -> np.ndarray:
        if slot < 0:
            return np.empty(shape, dtype=dtype)
        buf = self.ring[slot].get(key)
        need = int(np.prod(shape)) * np.dtype(dtype).itemsize
        if buf is None or buf.numel() < need:
            buf = torch.empty(max(need, 1), dtype=torch.uint8)
            buf = buf.pin_memory() if self.pinned else buf
            self.ring[slot][key] = buf
        return buf[:need].numpy().view(dtype).reshape(shape)

    def release(self, slot: int) -> None:
        if slot >= 0 and self.pinned:
            event = torch.cuda.Event()
            event.record()
            self.events[slot] = event


class SlotSwapLoader:
    """Iterate the windows of a slot-swap epoch, each ready on the device.

    Every ``iter()`` is one epoch: each sequence visited exactly once, in order,
    ``K`` steps per window, ``B`` slots kept busy. Shuffled epochs use
    ``seed + epoch`` so a run is reproducible. This is the one path from a
    :class:`SequenceStore` to the device; :func:`~fastseq.bptt.train_bptt` uses it too.

    The epoch's settings (``batch_size`` to ``world_size`` below) come whole in ``spec``,
    an :class:`~fastseq.bptt.EpochSpec`, or one by one as keywords (None: the default
    given); not both. Either way the loader keeps them as ``loader.spec`` (also readable
    one by one: ``loader.batch_size``, ``loader.rank``, ...).

    Args:
        inputs: ``N`` sequences ``T_i x *F`` (arrays or tensors) or a SequenceStore.
        targets: ``N`` sequences ``T_i x *G`` of the same lengths, or None.
        batch_size: slots ``B`` (default 32). Without ``wrap_around`` at most N slots are
            ever busy, so no more than N are allocated.
        bptt: steps per window ``K`` (default 32).
        device: where the windows go (default CPU). On CUDA the host buffers are pinned
            and reused, and the copy is asynchronous.
        shuffle: shuffle the order every epoch (default False).
        seed: seed of the shuffles (default None).
        compact: narrow windows to the live slots while the epoch drains (default True).
        prefetch: prepare the next window on a background thread. None (default): on
            CUDA only. On the CPU a window takes well under 1 ms to prepare, and handing
            the GIL back and forth with a thread measured slower than preparing inline.
        tail: epoch-end policy, see :func:`tail_order` (default ``"packed"``).
        wrap_around: the original algorithm's wrap-around: instead of idling while the
            epoch drains, slots re-train sequences from the start of the order (default False).
        rank, world_size: this process's shard of each epoch (default one process).
            ``world_size="auto"`` takes both from the initialized ``torch.distributed``
            default group (one process if none is initialized) and sets ``auto_shard``, so a
            framework that starts the processes later can call :meth:`set_shard` (as
            :class:`~fastseq.bptt.lightning.SlotSwapDataModule` does). Shards are balanced by
            steps, and every process yields the same number of windows (idle ones,
            ``valid`` all False, once its shard has ended), so plain
            ``DistributedDataParallel`` works without ``Join``; every sequence is
            trained exactly once per epoch across processes. See
            :mod:`fastseq.bptt.shards`; ``LoaderWindow.total_real_steps`` is the
            window's real steps over all processes.
        data_on_device: move the whole data set to ``device`` once and gather windows
            there (``index_select``), instead of gathering on the host and copying each
            window; for CUDA when the data fit in device memory.
        buffers: reuse a ring of this many host buffers (pinned on CUDA). On the CPU the
            window's tensors share them, so a window stays valid until ``buffers - 2``
            more windows have been drawn (clone to keep one longer); None gives every
            window fresh memory.
        plan: the layout to plan for :func:`~fastseq.bptt.engines.run_window` on the
            background thread: ``"packed"``, ``"dense"``, ``"auto"`` (what the device's
            default engine needs: packed on CUDA, nothing on CPU) or None (no plan).
        spec: all of the epoch's settings at once, instead of the keywords above.

    Example:
        >>> loader = SlotSwapLoader([np.ones((3, 2)), np.ones((1, 2))], None, batch_size=2, bptt=2)
        >>> [tuple(w.inputs.shape) for w in loader]
        [(2, 2, 2), (1, 1, 2)]
    """

    def __init__(
        self,
        inputs,
        targets=None,
        batch_size: int | None = None,
        bptt: int | None = None,
        *,
        device: torch.device | str | None = None,
        shuffle: bool | None = None,
        seed: int | None = None,
        compact: bool | None = None,
        prefetch: bool | None = None,
        tail: Tail | None = None,
        wrap_around: bool | None = None,
        rank: int | None = None,
        world_size: int | Literal["auto"] | None = None,
        data_on_device: bool = False,
        plan: Literal["auto", "packed", "dense"] | None = "auto",
        buffers: int | None = 4,
        spec: EpochSpec | None = None,
    ) -> None:
        self.inputs = SequenceStore.coerce(inputs, "inputs")
        self.targets = None if targets is None else SequenceStore.coerce(targets, "targets")
        if self.targets is not None:
            check_paired_lengths(self.inputs, self.targets, "inputs", "targets")
        self.auto_shard = isinstance(world_size, str) and world_size == "auto"
        if self.auto_shard:
            rank, world_size = _auto_rank_and_world(rank)
        self.spec = EpochSpec.resolve(spec, batch_size=batch_size, bptt=bptt, shuffle=_truth(shuffle), seed=seed,
                                      compact=_truth(compact), tail=tail, wrap_around=_truth(wrap_around),
                                      rank=rank, world_size=world_size)
        self.device = torch.device(device) if device is not None else torch.device("cpu")
        if plan == "auto":  # the step engine needs no plan
            plan = {"packed": "packed", "dense": "dense"}.get(default_engine(self.device))
        if plan not in ("packed", "dense", None):
            raise ValueError(f"Expected plan to be 'auto', 'packed', 'dense' or None, got {plan!r}.")
        self.prefetch = self.device.type == "cuda" if prefetch is None else bool(prefetch)
        self.plan = plan
        if buffers is not None and positive_int("buffers", buffers) < 3:
            raise ValueError(f"Expected buffers to be None or >= 3 (one in use, one queued, one filling), got {buffers}.")
        self.buffers = buffers
        self.data_on_device = bool(data_on_device)
        self._device_data: tuple[Tensor, Tensor | None] | None = None
        self.epoch = 0
        self._position = (0, 0)  # (epoch, windows yielded in it): what state_dict() reports
        self._resume_window = 0
        self._resumed: tuple[int, Remaining] | None = None  # an epoch re-sharded from another world size
        self._plans: dict = {}
        # the lengths' checksum and a re-sharded epoch's JSON, computed once per store and epoch:
        # state_dict() is taken after every window, and both are O(sequences)
        self._identity: tuple[np.ndarray, int, dict] | None = None
        self._resumed_json: tuple[Remaining, dict] | None = None
        self._check_memory()

    @property
    def slots(self) -> int:
        """Slots the next epoch's schedule runs: ``batch_size``, but never more than the
        sequences of this shard unless ``wrap_around`` re-trains them (and, in an epoch
        re-sharded from another number of processes, at least its continued sequences)."""
        return self.epoch_shards(self.epoch).slots[self.rank]

    def epoch_shards(self, epoch: int) -> EpochShards:
        """Every process's shard of ``epoch`` and the epoch's windows (computed once per epoch)."""
        resume = self._resumed[1] if self._resumed is not None and self._resumed[0] == epoch else None
        key = (epoch, id(resume))
        if key not in self._plans:
            self._plans = {key: plan_epoch(self.inputs.lengths, self.global_order(epoch), spec=self.spec,
                                           resume=resume)}
        return self._plans[key]

    def _check_memory(self) -> None:
        row_bytes = _row_bytes(self.inputs) + (0 if self.targets is None else _row_bytes(self.targets))
        spec = self.spec
        # an upper bound on any epoch's slots, known before the shards are planned
        slots = spec.batch_size if spec.wrap_around else max(1, min(spec.batch_size, len(self.inputs)))
        window = spec.bptt * slots * (row_bytes + 2 + 8 + 8)  # rows, masks, sequence ids, row ids
        check_fits(f"a window of bptt={spec.bptt} x batch_size={slots} rows", window * (1 + (self.buffers or 1)))

    def __len__(self) -> int:
        """Number of windows in an epoch (runs the scheduler once, without gathering)."""
        return self.epoch_shards(self.epoch).windows

    @property
    def total_steps(self) -> int:
        """Real steps in an epoch (sum of the lengths)."""
        return int(self.inputs.lengths.sum())

    def global_order(self, epoch: int) -> np.ndarray:
        """The order of ``epoch`` before sharding: ``arange(N)`` or the shuffle of ``seed + epoch``."""
        seed = None if self.spec.seed is None else self.spec.seed + epoch
        return epoch_order(len(self.inputs), self.spec.shuffle, seed)

    def order(self, epoch: int) -> np.ndarray:
        """The admission order of ``epoch`` for this process's shard (the tail policy applied)."""
        return self.epoch_shards(epoch).shards[self.rank].order

    def continued_from(self) -> list[tuple[int, int]]:
        """For an epoch re-sharded by :meth:`load_state_dict` from another number of processes:
        the (saved rank, slot) whose carried state each of this process's first slots continues
        in the first window. Empty otherwise (the saved state maps slot for slot)."""
        if self._resumed is None or self._resumed[0] != self.epoch or self._resume_window:
            return []
        shard, left = self.epoch_shards(self.epoch).shards[self.rank], self._resumed[1]
        index = {int(s): i for i, s in enumerate(left.sequence.tolist())}
        return [(int(left.rank[index[s]]), int(left.slot[index[s]])) for s in shard.order[:shard.continued].tolist()]

    def __iter__(self) -> Iterator[LoaderWindow]:
        epoch, skip = self.epoch, self._resume_window
        shards = self.epoch_shards(epoch)
        self.epoch, self._resume_window = epoch + 1, 0
        self._position, self._identity = (epoch, skip), None  # lengths edited between epochs count
        for window in self._windows(shards, skip):
            self._position = (epoch, self._position[1] + 1)
            yield window
        self._position = (epoch + 1, 0)
        self._resumed = None

    def _windows(self, shards: EpochShards, skip: int) -> Iterator[LoaderWindow]:
        # the schedule is deterministic: skipped windows are scheduled but never gathered
        windows = padded_windows(self.inputs.lengths, shards, self.spec)
        schedule = itertools.islice(windows, skip, None)
        totals = shards.real_steps.tolist()
        if self.data_on_device:
            yield from (self._gather_on_device(w, totals[w.index]) for w in schedule)
            return
        staging = _Staging(self.device, self.buffers)
        produce = (self._host(w, staging) for w in schedule)
        if not self.prefetch:
            for host in produce:
                yield self._to_device(host, staging, totals)
            return
        yield from self._threaded(produce, staging, totals)

    def _data_identity(self) -> dict:
        """The number of sequences and the lengths' CRC-32, computed once per epoch and lengths array
        (``iter()`` recomputes it, and so does a store or lengths array put in place of this one)."""
        lengths, epoch = self.inputs.lengths, self._position[0]
        cached = self._identity
        if cached is None or cached[0] is not lengths or cached[1] != epoch:
            cached = self._identity = (lengths, epoch, _lengths_identity(lengths))
        return dict(cached[2])

    def _fingerprint(self) -> dict:
        """What must match for a saved position to mean the same windows (on any number of processes):
        the lengths, and the spec's settings but its sharding (an epoch re-shards on resume)."""
        settings = {k: v for k, v in self.spec.to_json().items() if k not in EpochSpec.SHARDING}
        return {**self._data_identity(), **settings}

    def state_dict(self) -> dict:
        """The position in the epochs, as torchdata's ``StatefulDataLoader`` keeps it.

        ``epoch`` and ``window`` (windows yielded so far in that epoch) fix the
        schedule cursor and every slot's sequence and step, and the shuffle (drawn
        from ``seed + epoch``): the schedule is deterministic, so
        :meth:`load_state_dict` followed by ``iter()`` yields exactly the windows
        that were still to come. ``config`` holds the lengths' checksum and the
        settings of :attr:`spec` but its rank; ``world_size`` is beside it, as a resume may
        change the number of processes. Plain JSON-able values, no tensors.

        >>> loader = SlotSwapLoader([np.ones((5, 1)), np.ones((3, 1))], None, batch_size=1, bptt=2)
        >>> it = iter(loader); _ = next(it); state = loader.state_dict(); rest = [w.index for w in it]
        >>> again = SlotSwapLoader([np.ones((5, 1)), np.ones((3, 1))], None, batch_size=1, bptt=2)
        >>> again.load_state_dict(state); [w.index for w in again] == rest
        True
        """
        epoch, window = self._position
        resumed = self._resumed[1] if self._resumed is not None and self._resumed[0] == epoch else None
        return {"epoch": epoch, "window": window, "config": self._fingerprint(), "world_size": self.spec.world_size,
                "resumed": None if resumed is None else self._remaining_json(resumed)}

    def _remaining_json(self, left: Remaining) -> dict:
        """``left`` as JSON, encoded once (its ``done`` bits are O(sequences)); a fresh copy each call."""
        if self._resumed_json is None or self._resumed_json[0] is not left:
            self._resumed_json = (left, _remaining_json(left))
        return {k: list(v) if isinstance(v, list) else v for k, v in self._resumed_json[1].items()}

    def set_shard(self, rank: int, world_size: int) -> None:
        """Train shard ``rank`` of ``world_size`` processes from the next epoch on, for a loader
        built before its process group existed (e.g. with ``world_size="auto"`` before
        Lightning started its processes). Only between epochs: a pass that has begun keeps its shards.

        >>> loader = SlotSwapLoader([np.ones((5, 1)), np.ones((3, 1))], None, batch_size=1, bptt=2)
        >>> loader.set_shard(1, 2); loader.rank, loader.world_size, len(loader)
        (1, 2, 3)
        """
        if self._resume_window or self._position[1]:
            raise ValueError(f"Expected set_shard between epochs, got the loader at window {self._position[1]} "
                             f"of epoch {self._position[0]}.")
        spec = self.spec.replace(rank=rank, world_size=world_size)
        if spec != self.spec:
            self.spec, self._plans = spec, {}

    def state_differences(self, state: dict, labels: tuple[str, str] = ("saved", "here")) -> list[str]:
        """What of a :meth:`state_dict`'s data and settings differs from this loader's, each named
        with both values (``"bptt (saved 4, here 3)"``); its number of processes may differ."""
        saved = _saved_spec(state)
        data = state["config"]
        differ = [describe_difference(k, data.get(k), v, labels) for k, v in self._data_identity().items()
                  if data.get(k) != v]
        return differ + saved.differences(self.spec, labels=labels, ignore=EpochSpec.SHARDING)

    def load_state_dict(self, state: dict) -> None:
        """Continue from a :meth:`state_dict`: the next ``iter()`` resumes mid-epoch.

        On the same number of processes the windows are exactly those that were still to
        come. On another number, what is left of the epoch is re-sharded (see
        :mod:`fastseq.bptt.shards`): finished sequences are not trained again, sequences
        cut mid-way continue from their position in this process's first slots
        (:meth:`continued_from` says whose carried state each continues), and every
        sequence is still trained exactly once in that epoch. Refuses a state from
        another data set or other settings, naming what differs.
        """
        differ = self.state_differences(state)
        if differ:
            raise ValueError("Expected the loader state to come from the same data and settings, but "
                             + ", ".join(differ) + " differ.")
        epoch, window = int(state["epoch"]), int(state["window"])
        spec = _saved_spec(state)  # this loader's settings, on the saved number of processes
        resumed = state.get("resumed")
        resumed = None if resumed is None else _remaining_from_json(resumed)
        self._resumed = None if resumed is None else (epoch, resumed)
        if spec.world_size != self.spec.world_size and window > 0:
            saved = plan_epoch(self.inputs.lengths, self.global_order(epoch), spec=spec, resume=resumed)
            left = remaining(self.inputs.lengths, saved, spec.bptt, window, compact=spec.compact,
                             done=None if resumed is None else resumed.done)
            self._resumed, window = (epoch, left), 0
        self.epoch, self._resume_window = epoch, window
        self._position = (self.epoch, self._resume_window)

    def _device_tables(self) -> tuple[Tensor, Tensor | None]:
        """The data on the device once, each with a zero row at the end for idle slots."""
        if self._device_data is None:
            def table(store: SequenceStore) -> Tensor:
                data = torch.as_tensor(np.asarray(store.data)).to(self.device)
                return torch.cat([data, data.new_zeros((1,) + data.shape[1:])])
            self._device_data = (table(self.inputs), None if self.targets is None else table(self.targets))
        return self._device_data

    def _gather_on_device(self, w: ScheduleWindow, total: int) -> LoaderWindow:
        xs, ys = self._device_tables()
        dev, nb = self.device, self.device.type == "cuda"
        put = lambda a: (torch.from_numpy(a).pin_memory() if nb else torch.from_numpy(a)).to(dev, non_blocking=nb)  # noqa: E731
        rows = put(np.where(w.rows >= 0, w.rows, xs.shape[0] - 1).reshape(-1))
        k, b = w.rows.shape
        x = xs.index_select(0, rows).view((k, b) + xs.shape[1:])
        y = None if ys is None else ys.index_select(0, rows).view((k, b) + ys.shape[1:])
        masks = put(np.stack([w.reset, w.valid]))
        plan = window_plan(w.reset, w.valid, self.plan) if self.plan else None
        return LoaderWindow(w.index, x, y, masks[0], masks[1], put(w.sequence), put(w.slot_map),
                            None if plan is None else plan.to(dev), w, total)

    def _host(self, w: ScheduleWindow, staging: _Staging) -> tuple:
        slot = staging.take()
        x = self.inputs.gather(w.rows, staging.array(slot, "x", w.rows.shape + self.inputs.feature_shape, self.inputs.dtype))
        y = None
        if self.targets is not None:
            shape = w.rows.shape + self.targets.feature_shape
            y = self.targets.gather(w.rows, staging.array(slot, "y", shape, self.targets.dtype))
        masks = staging.array(slot, "m", (2,) + w.rows.shape, np.bool_)
        masks[0], masks[1] = w.reset, w.valid
        plan = window_plan(w.reset, w.valid, self.plan) if self.plan else None
        return w, slot, x, y, masks, plan

    def _to_device(self, host: tuple, staging: _Staging, totals: list[int]) -> LoaderWindow:
        w, slot, x, y, masks, plan = host
        dev, nb = self.device, self.device.type == "cuda"
        put = lambda a: torch.from_numpy(a).to(dev, non_blocking=nb)  # noqa: E731
        xt, yt, mt = put(x), (None if y is None else put(y)), put(masks)
        staging.release(slot)
        return LoaderWindow(
            w.index, xt, yt, mt[0], mt[1], torch.from_numpy(w.sequence).to(dev, non_blocking=nb),
            torch.from_numpy(w.slot_map).to(dev, non_blocking=nb),
            None if plan is None else plan.to(dev), w, totals[w.index],
        )

    def _threaded(self, produce, staging: _Staging, totals: list[int]) -> Iterator[LoaderWindow]:
        ready: queue.Queue = queue.Queue(maxsize=1)
        stop = threading.Event()

        def work() -> None:
            try:
                for host in produce:
                    while not stop.is_set():
                        try:
                            ready.put(host, timeout=0.1)
                            break
                        except queue.Full:
                            continue
                    if stop.is_set():
                        return
                ready.put(_DONE)
            except BaseException as exc:  # handed to the consumer, raised there
                ready.put(exc)

        thread = threading.Thread(target=work, name="fastseq-loader", daemon=True)
        thread.start()
        try:
            while True:
                host = ready.get()
                if host is _DONE:
                    return
                if isinstance(host, BaseException):
                    raise host
                yield self._to_device(host, staging, totals)
        finally:
            stop.set()
            while thread.is_alive():
                try:
                    ready.get(timeout=0.05)
                except queue.Empty:
                    pass
            thread.join()


# the settings read one by one, as before the loader kept them in one spec: loader.batch_size, loader.rank, ...
for _name in EpochSpec.fields():
    setattr(SlotSwapLoader, _name, property(lambda self, _name=_name: getattr(self.spec, _name),
                                            doc=f"``spec.{_name}``, read-only."))
del _name


def _truth(value) -> bool | None:
    """A yes/no keyword as the loader has always read it (any truth value); None: not given."""
    return None if value is None else bool(value)


def _auto_rank_and_world(rank) -> tuple[int, int]:
    """``(rank, world_size)`` for ``world_size="auto"``: the initialized torch.distributed group's
    (``rank`` given overrides its rank), else one process."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        world, default = dist.get_world_size(), dist.get_rank()
    else:
        world, default = 1, 0
    return default if rank is None else rank, world


def _lengths_identity(lengths: np.ndarray) -> dict:
    """What a saved position records of the data: the number of sequences and the lengths' CRC-32."""
    lengths = np.ascontiguousarray(lengths, dtype="<i8")
    return {"sequences": int(lengths.shape[0]), "lengths_crc32": zlib.crc32(lengths.view(np.uint8))}


def _saved_spec(state) -> EpochSpec:
    """The settings a :meth:`SlotSwapLoader.state_dict` was saved with, on its number of processes."""
    if not isinstance(state, dict) or not {"epoch", "window", "config"} <= state.keys() \
            or not isinstance(state["config"], dict):
        raise ValueError(f"Expected a SlotSwapLoader state_dict with epoch, window and config, got {state!r:.80}.")
    config = state["config"]
    settings = {k: config[k] for k in EpochSpec.fields() if k in config and k not in EpochSpec.SHARDING}
    try:
        return EpochSpec.from_json({**settings, "world_size": state.get("world_size", 1)})
    except (TypeError, ValueError) as exc:
        raise ValueError(f"Expected a SlotSwapLoader state_dict with valid settings, got {exc}") from None


def _remaining_json(left: Remaining) -> dict:
    import base64

    return {"done": base64.b64encode(np.packbits(left.done).tobytes()).decode("ascii"), "size": int(left.done.size),
            **{k: getattr(left, k).tolist() for k in ("sequence", "position", "rank", "slot")}}


def _remaining_from_json(data: dict) -> Remaining:
    import base64

    bits = np.frombuffer(base64.b64decode(data["done"]), dtype=np.uint8)
    done = np.unpackbits(bits)[: int(data["size"])].astype(bool)
    return Remaining(done, *(np.asarray(data[k], dtype=np.int64) for k in ("sequence", "position", "rank", "slot")))
