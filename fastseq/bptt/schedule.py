"""The slot-swap schedule: which row of which sequence each batch slot reads at each step.

B batch slots are kept busy: when a sequence ends, the next sequence of the epoch
order takes its slot at the very next step, with a reset flag so the trainer
restores that slot's state to its seed. Windows of K steps are cut for truncated
BPTT. The work is done by the C++ scheduler in ``csrc/schedule.cpp``; a plain
Python twin (``fastseq.bptt._schedule_py``) produces identical output for tests.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator, Literal, Sequence

import numpy as np

from fastseq.bptt._schedule_cy import NativeSlotScheduler
from fastseq.bptt._schedule_py import PySlotScheduler
from fastseq._util.memory import check_fits
from fastseq._util.validate import flag, lengths_array, nonnegative_int, order_array, positive_int, seed_arg

__all__ = ["ScheduleWindow", "SlotSchedule", "epoch_order"]


@dataclass(frozen=True)
class ScheduleWindow:
    """One truncated-BPTT window of the schedule. Shapes are ``K x W``.

    K is the number of steps (``bptt``, fewer in the last window) and W the number
    of slots (``batch_size``, fewer while the epoch drains when compacting).

    Attributes:
        index: position of the window in the epoch, from 0.
        rows: flat row index into the concatenated data, -1 where the slot idles.
        sequence: id of the sequence in each slot at each step, -1 where idle.
        reset: slot starts a new sequence at this step (restore its seed state).
        valid: slot holds a real step (false only while the epoch drains).
        end: this step is the last step of its sequence.
        slot_map: ``W`` entries; slot j continues slot ``slot_map[j]`` of the
            previous window (identity unless compacting).
    """

    index: int
    rows: np.ndarray
    sequence: np.ndarray
    reset: np.ndarray
    valid: np.ndarray
    end: np.ndarray
    slot_map: np.ndarray

    @property
    def steps(self) -> int:
        return self.rows.shape[0]

    @property
    def width(self) -> int:
        return self.rows.shape[1]

    @property
    def real_steps(self) -> int:
        """Number of (step, slot) pairs that hold real data."""
        return int(self.valid.sum())

    def ended(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Return ``(steps, slots, sequence_ids)`` of the sequences that end in this window."""
        k, j = np.nonzero(self.end)
        return k, j, self.sequence[k, j]


def epoch_order(
    n: int,
    shuffle: bool = False,
    seed: int | None = None,
    lengths: np.ndarray | None = None,
    longest_first: int = 0,
) -> np.ndarray:
    """Return the order sequences are admitted in: ``arange(n)`` or a seeded permutation.

    With ``lengths`` and ``longest_first = m``, the m longest sequences are moved
    to the front (longest first), the rest keep their order. Admitting the long
    ones early keeps the end of the epoch short: while the last sequences drain,
    slots idle, and the drain lasts as long as the longest sequence admitted late.

    >>> epoch_order(4).tolist()
    [0, 1, 2, 3]
    >>> sorted(epoch_order(4, shuffle=True, seed=0).tolist())
    [0, 1, 2, 3]
    >>> epoch_order(5, lengths=np.array([1, 9, 2, 7, 3]), longest_first=2).tolist()
    [1, 3, 0, 2, 4]
    """
    n = nonnegative_int("n", n)
    shuffle, seed = flag("shuffle", shuffle), seed_arg("seed", seed)
    longest_first = nonnegative_int("longest_first", longest_first)
    check_fits(f"epoch_order(n={n})", 8.0 * n * (3 if shuffle else 1))  # a shuffle holds two copies meanwhile
    order = np.arange(n, dtype=np.int64)
    if shuffle:
        order = np.random.default_rng(seed).permutation(n).astype(np.int64)
    if longest_first > 0 and lengths is not None and n:
        lengths = lengths_array(lengths)
        if lengths.shape != (n,):
            raise ValueError(f"Expected lengths to have shape ({n},), got {lengths.shape}.")
        order = move_longest_first(order, lengths, longest_first)
    return order


def move_longest_first(order: np.ndarray, lengths: np.ndarray, count: int) -> np.ndarray:
    """Return ``order`` with its ``count`` longest sequences moved to the front, longest first.

    Ties and the remaining sequences keep their relative order.

    >>> move_longest_first(np.arange(5), np.array([1, 9, 2, 3, 7]), 2).tolist()
    [1, 4, 0, 2, 3]
    """
    order = np.asarray(order, dtype=np.int64)
    top = np.argsort(-np.asarray(lengths)[order], kind="stable")[: min(int(count), order.size)]
    keep = np.ones(order.size, bool)
    keep[top] = False
    return np.concatenate([order[top], order[keep]])


def pack_tail(order: np.ndarray, lengths: np.ndarray, batch_size: int) -> np.ndarray:
    """Return ``order`` arranged so the epoch ends as early as its lengths allow.

    The ``batch_size`` longest sequences go first (as :func:`move_longest_first`), the
    rest keep their order except for the shortest suffix holding at least ``batch_size``
    times the longest remaining length in steps: that suffix is admitted longest first.
    While it drains, the sequences still running from before are shorter than what is
    left to admit, and the last ones admitted are the shortest, so the slots finish
    within a few steps of each other. On lognormal lengths the epoch then lasts within a
    few steps of its lower bound ``max(longest, ceil(total / batch_size))`` steps.

    >>> pack_tail(np.arange(6), np.array([1, 9, 2, 3, 7, 2]), 2).tolist()
    [1, 4, 0, 3, 2, 5]
    """
    front = move_longest_first(order, lengths, batch_size)
    count = min(int(batch_size), front.size)
    rest = front[count:]
    if rest.size <= 1:
        return front
    rest_lengths = np.asarray(lengths)[rest]
    need = int(rest_lengths.max()) * int(batch_size)
    from_end = np.cumsum(rest_lengths[::-1], dtype=np.int64)
    size = min(int(np.searchsorted(from_end, need)) + 1, rest.size)
    suffix = rest[rest.size - size:]
    suffix = suffix[np.argsort(-np.asarray(lengths)[suffix], kind="stable")]
    return np.concatenate([front[:count], rest[: rest.size - size], suffix])


class SlotSchedule:
    """Iterate the windows of one epoch of the slot-swap schedule.

    Args:
        lengths: ``N`` sequence lengths, each >= 1.
        batch_size: number of slots ``B``.
        bptt: steps per window ``K``.
        order: the order in which sequences are admitted (distinct ids; a subset is
            allowed, e.g. one shard per process). Default ``arange(N)``.
        compact: narrow the window to the slots still in use while the epoch
            drains, so idle slots cost nothing (``slot_map`` says which slot each
            continues). Default False: every window is ``B`` wide.
        wrap_around: refill slots from the start of the order instead of idling,
            until every sequence has finished once (reproduces the original
            algorithm, which re-trains the first sequences partially).
        backend: ``"native"`` (C++) or ``"python"`` (the reference twin).

    Example:
        >>> sched = SlotSchedule([3, 1, 1], batch_size=2, bptt=2)
        >>> [w.rows.tolist() for w in sched]
        [[[0, 3], [1, 4]], [[2, -1]]]
        >>> [w.reset.tolist() for w in sched][0]
        [[True, True], [False, True]]
    """

    def __init__(
        self,
        lengths: Sequence[int] | np.ndarray,
        batch_size: int,
        bptt: int,
        order: Sequence[int] | np.ndarray | None = None,
        *,
        compact: bool = False,
        wrap_around: bool = False,
        backend: Literal["native", "python"] = "native",
    ) -> None:
        self.lengths = lengths_array(lengths)
        self.batch_size = positive_int("batch_size", batch_size)
        self.bptt = positive_int("bptt", bptt)
        n = self.lengths.shape[0]
        self.order = epoch_order(n) if order is None else order_array(order, n)
        if backend not in ("native", "python"):
            raise ValueError(f"Expected backend to be 'native' or 'python', got {backend!r}.")
        self.compact = bool(compact)
        self.wrap_around = bool(wrap_around)
        self.backend = backend
        self.offsets = np.zeros(n + 1, dtype=np.int64)
        np.cumsum(self.lengths, out=self.offsets[1:])
        self._slots, self._steps = self._sizes()

    def _sizes(self) -> tuple[int, int]:
        """Slots and steps per window the scheduler allocates, with the output unchanged.

        No window has more steps than the epoch has rows (every step advances a slot), and
        a compact epoch without wrap-around never widens past its sequences; a B-wide
        window is refused up front when it cannot fit in memory.
        """
        steps = min(self.bptt, max(1, self.total_rows))
        slots = self.batch_size
        if self.compact and not self.wrap_around:
            slots = min(slots, max(1, self.order.size))
        # per window: rows and sequence ids (int64), three bool masks, the slot map;
        # the scheduler keeps four numbers per slot
        check_fits(f"a window of bptt={self.bptt} x batch_size={self.batch_size} slots",
                   float(slots) * steps * 19 + 8.0 * slots + 32.0 * slots)
        return slots, steps

    @property
    def total_rows(self) -> int:
        """Rows in the concatenated data (sum of all lengths)."""
        return int(self.offsets[-1])

    def __iter__(self) -> Iterator[ScheduleWindow]:
        cls = NativeSlotScheduler if self.backend == "native" else PySlotScheduler
        engine = cls(self.lengths, self.order, self._slots, self._steps, self.compact, self.wrap_around)
        index = 0
        while True:
            out = engine.next_window()
            if out is None:
                return
            yield ScheduleWindow(index, *out)
            index += 1
