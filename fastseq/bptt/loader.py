"""SlotSwapLoader: iterate slot-swap windows for any training loop, prepared ahead.

Each item is one truncated-BPTT window of ``K`` steps over ``W`` batch slots, on
the chosen device: inputs, targets, the reset and valid masks, the sequence ids
and the slot map. The native scheduler and the native row gather (both release
the GIL) fill reusable host buffers (pinned for CUDA) and the packing plan for
sequence mode is cut; on CUDA a background thread does this while the current
window trains (on the CPU, inline measured faster, see ``prefetch``).
"""
from __future__ import annotations

import queue
import threading
from dataclasses import dataclass
from typing import Iterator, Literal

import numpy as np
import torch
from torch import Tensor

from fastseq._util.validate import positive_int
from fastseq.bptt.schedule import ScheduleWindow, SlotSchedule, epoch_order, move_longest_first
from fastseq.bptt.plans import DensePlan, SegmentPlan, default_engine, window_plan
from fastseq.bptt.store import SequenceStore

__all__ = ["LoaderWindow", "SlotSwapLoader", "tail_order"]

Tail = Literal["none", "longest_first", "sorted"]
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

    @property
    def real_steps(self) -> int:
        """(step, slot) pairs holding real data; computed on the host, no device sync."""
        return self.schedule.real_steps


def tail_order(order: np.ndarray, lengths: np.ndarray, batch_size: int, tail: Tail) -> np.ndarray:
    """Reorder an epoch order so the last sequences drain quickly.

    ``"longest_first"`` admits the ``batch_size`` longest sequences first (longest
    first), so no long sequence is admitted late and the drain lasts about one
    typical length. ``"sorted"`` admits the last ``batch_size`` sequences of the
    order longest first, so they end together. ``"none"`` keeps the order.

    >>> lengths = np.array([1, 9, 2, 3, 7])
    >>> tail_order(np.arange(5), lengths, 2, "longest_first").tolist()
    [1, 4, 0, 2, 3]
    >>> tail_order(np.arange(5), lengths, 2, "sorted").tolist()
    [0, 1, 2, 4, 3]
    """
    order = np.asarray(order, dtype=np.int64)
    if tail == "none" or order.size <= 1:
        return order.copy()
    if tail == "longest_first":
        return move_longest_first(order, lengths, batch_size)
    if tail == "sorted":
        k = min(batch_size, order.size)
        head, last = order[:-k], order[-k:]
        return np.concatenate([head, last[np.argsort(-lengths[last], kind="stable")]])
    raise ValueError(f"Expected tail to be 'none', 'longest_first' or 'sorted', got {tail!r}.")


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
    ``seed + epoch`` so a run is reproducible.

    Args:
        inputs: ``N`` sequences ``T_i x *F`` (arrays or tensors) or a SequenceStore.
        targets: ``N`` sequences ``T_i x *G`` of the same lengths, or None.
        batch_size: slots ``B``.
        bptt: steps per window ``K``.
        device: where the windows go (default CPU). On CUDA the host buffers are pinned
            and reused, and the copy is asynchronous.
        shuffle: shuffle the order every epoch.
        seed: seed of the shuffles.
        compact: narrow windows to the live slots while the epoch drains.
        prefetch: prepare the next window on a background thread. None (default): on
            CUDA only. On the CPU a window takes well under 1 ms to prepare, and handing
            the GIL back and forth with a thread measured slower than preparing inline.
        tail: epoch-end policy, see :func:`tail_order` (default ``"longest_first"``).
        buffers: reuse a ring of this many host buffers (pinned on CUDA). On the CPU the
            window's tensors share them, so a window stays valid until ``buffers - 2``
            more windows have been drawn (clone to keep one longer); None gives every
            window fresh memory.
        plan: the layout to plan for :func:`~fastseq.bptt.engines.run_window` on the
            background thread: ``"packed"``, ``"dense"``, ``"auto"`` (what the device's
            default engine needs: packed on CUDA, nothing on CPU) or None (no plan).

    Example:
        >>> loader = SlotSwapLoader([np.ones((3, 2)), np.ones((1, 2))], None, batch_size=2, bptt=2)
        >>> [tuple(w.inputs.shape) for w in loader]
        [(2, 2, 2), (1, 1, 2)]
    """

    def __init__(
        self,
        inputs,
        targets=None,
        batch_size: int = 32,
        bptt: int = 32,
        *,
        device: torch.device | str | None = None,
        shuffle: bool = False,
        seed: int | None = None,
        compact: bool = True,
        prefetch: bool | None = None,
        tail: Tail = "longest_first",
        plan: Literal["auto", "packed", "dense"] | None = "auto",
        buffers: int | None = 4,
    ) -> None:
        self.inputs = SequenceStore.coerce(inputs, "inputs")
        self.targets = None if targets is None else SequenceStore.coerce(targets, "targets")
        if self.targets is not None and not np.array_equal(self.inputs.lengths, self.targets.lengths):
            bad = int(np.argmax(self.inputs.lengths != self.targets.lengths)) if len(self.inputs) == len(self.targets) else -1
            if bad < 0:
                raise ValueError(f"Expected as many targets as inputs ({len(self.inputs)}), got {len(self.targets)}.")
            raise ValueError(
                f"Expected targets[{bad}] to have the length of inputs[{bad}] ({self.inputs.lengths[bad]}), "
                f"got {self.targets.lengths[bad]}."
            )
        self.batch_size = positive_int("batch_size", batch_size)
        self.bptt = positive_int("bptt", bptt)
        self.device = torch.device(device) if device is not None else torch.device("cpu")
        self.shuffle, self.seed, self.compact = bool(shuffle), seed, bool(compact)
        if plan == "auto":  # the step engine needs no plan
            plan = {"packed": "packed", "dense": "dense"}.get(default_engine(self.device))
        if plan not in ("packed", "dense", None):
            raise ValueError(f"Expected plan to be 'auto', 'packed', 'dense' or None, got {plan!r}.")
        self.prefetch = self.device.type == "cuda" if prefetch is None else bool(prefetch)
        self.plan = plan
        if buffers is not None and positive_int("buffers", buffers) < 3:
            raise ValueError(f"Expected buffers to be None or >= 3 (one in use, one queued, one filling), got {buffers}.")
        self.buffers = buffers
        if tail not in ("none", "longest_first", "sorted"):
            raise ValueError(f"Expected tail to be 'none', 'longest_first' or 'sorted', got {tail!r}.")
        self.tail = tail
        self.epoch = 0

    def __len__(self) -> int:
        """Number of windows in an epoch (runs the scheduler once, without gathering)."""
        return sum(1 for _ in SlotSchedule(self.inputs.lengths, self.batch_size, self.bptt,
                                           self.order(self.epoch), compact=self.compact))

    @property
    def total_steps(self) -> int:
        """Real steps in an epoch (sum of the lengths)."""
        return int(self.inputs.lengths.sum())

    def order(self, epoch: int) -> np.ndarray:
        """The admission order of ``epoch`` (shuffle, then the tail policy)."""
        seed = None if self.seed is None else self.seed + epoch
        base = epoch_order(len(self.inputs), self.shuffle, seed)
        return tail_order(base, self.inputs.lengths, self.batch_size, self.tail)

    def __iter__(self) -> Iterator[LoaderWindow]:
        order = self.order(self.epoch)
        self.epoch += 1
        schedule = SlotSchedule(self.inputs.lengths, self.batch_size, self.bptt, order, compact=self.compact)
        staging = _Staging(self.device, self.buffers)
        produce = (self._host(w, staging) for w in schedule)
        if not self.prefetch:
            for host in produce:
                yield self._to_device(host, staging)
            return
        yield from self._threaded(produce, staging)

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

    def _to_device(self, host: tuple, staging: _Staging) -> LoaderWindow:
        w, slot, x, y, masks, plan = host
        dev, nb = self.device, self.device.type == "cuda"
        put = lambda a: torch.from_numpy(a).to(dev, non_blocking=nb)  # noqa: E731
        xt, yt, mt = put(x), (None if y is None else put(y)), put(masks)
        staging.release(slot)
        return LoaderWindow(
            w.index, xt, yt, mt[0], mt[1], torch.from_numpy(w.sequence).to(dev, non_blocking=nb),
            torch.from_numpy(w.slot_map).to(dev, non_blocking=nb),
            None if plan is None else plan.to(dev), w,
        )

    def _threaded(self, produce, staging: _Staging) -> Iterator[LoaderWindow]:
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
                yield self._to_device(host, staging)
        finally:
            stop.set()
            while thread.is_alive():
                try:
                    ready.get(timeout=0.05)
                except queue.Empty:
                    pass
            thread.join()
