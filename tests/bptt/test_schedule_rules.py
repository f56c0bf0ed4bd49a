"""The schedule's smaller rules: the epoch order's options, ties, the memory it asks for up
front, the backend it runs, and the names in its errors."""
from __future__ import annotations

import numpy as np
import pytest

from fastseq.bptt import schedule
from fastseq.bptt.schedule import SlotSchedule, epoch_order, move_longest_first, pack_tail


def test_longest_first_needs_both_a_count_and_lengths():
    lengths = np.array([1, 9, 2, 7, 3])
    assert epoch_order(5, lengths=lengths).tolist() == [0, 1, 2, 3, 4]  # longest_first defaults to 0
    assert epoch_order(5, longest_first=2).tolist() == [0, 1, 2, 3, 4]  # no lengths: nothing to sort by
    assert epoch_order(5, lengths=lengths, longest_first=1).tolist() == [1, 0, 2, 3, 4]
    assert epoch_order(0, lengths=np.zeros(0, np.int64), longest_first=3).tolist() == []
    assert epoch_order(3).dtype == np.int64 and epoch_order(3, shuffle=True, seed=1).dtype == np.int64


def test_ties_keep_their_order():
    lengths = np.array([5, 3] * 30)  # 60 sequences: enough that an unstable sort would reorder ties
    moved = move_longest_first(np.arange(60), lengths, 30)
    assert moved.tolist() == list(range(0, 60, 2)) + list(range(1, 60, 2))
    assert move_longest_first([2, 0, 1], np.array([4, 4, 4]), 2).dtype == np.int64
    assert move_longest_first(np.arange(3, dtype=np.int32), np.array([1, 3, 2]), 1).dtype == np.int64


def test_offsets_are_int64_row_positions():
    sched = SlotSchedule(np.array([3, 1, 4], np.int32), 2, 2)
    assert sched.offsets.dtype == np.int64 and sched.offsets.tolist() == [0, 3, 4, 8] and sched.total_rows == 8


def test_pack_tail_sorts_its_suffix_stably():
    lengths = np.array([9] * 20 + [2, 1] * 20)
    out = pack_tail(np.arange(60), lengths, 20)
    assert sorted(out.tolist()) == list(range(60))
    assert out[:20].tolist() == list(range(20))
    rest = out[20:]
    # the suffix (longest first) holds at least 20 x the longest remaining length, 2, in steps
    size = next(s for s in range(1, 41) if lengths[np.arange(60 - s, 60)].sum() >= 40)
    suffix, head = rest[40 - size:], rest[:40 - size]
    assert head.tolist() == list(range(20, 60 - size))
    twos = [i for i in range(60 - size, 60) if lengths[i] == 2]
    ones = [i for i in range(60 - size, 60) if lengths[i] == 1]
    assert suffix.tolist() == twos + ones and size > 16


def test_pack_tail_with_one_sequence_after_the_front():
    assert pack_tail(np.arange(3), np.array([4, 2, 7]), 2).tolist() == [2, 0, 1]


class _Spy:
    def __init__(self):
        self.calls = []

    def __call__(self, what, nbytes):
        self.calls.append((what, nbytes))


def test_the_memory_asked_for_up_front(monkeypatch):
    spy = _Spy()
    monkeypatch.setattr(schedule, "check_fits", spy)
    epoch_order(10)
    epoch_order(10, shuffle=True, seed=0)  # a shuffle holds two more copies meanwhile
    assert [b for _, b in spy.calls] == [8.0 * 10, 8.0 * 10 * 3]
    # per window cell: rows and sequence ids (8 bytes each), three bool masks; per slot, the slot
    # map (8) and the scheduler's four numbers (32)
    cell, slot = 8 + 8 + 3, 8 + 32
    for lengths, batch, bptt, kw, (slots, steps) in [
        ([3, 1, 1], 2, 4, {}, (2, 4)),
        ([3, 1, 1], 2, 9, {}, (2, 5)),               # never more steps than the epoch has rows
        ([1], 3, 5, {}, (3, 1)),
        ([2], 4, 3, {"compact": True}, (1, 2)),      # compact: never wider than its sequences
        ([2, 5], 4, 3, {"compact": True}, (2, 3)),
        ([2], 4, 3, {"compact": True, "wrap_around": True}, (4, 2)),
    ]:
        spy.calls.clear()
        SlotSchedule(lengths, batch, bptt, **kw)
        assert [b for _, b in spy.calls][-1] == slots * steps * cell + slots * slot, (lengths, batch, bptt, kw)


@pytest.mark.parametrize("backend, runs", [("native", "native"), ("python", "python")])
def test_the_backend_named_is_the_one_that_runs(monkeypatch, backend, runs):
    ran = []
    for name, cls in (("native", schedule.NativeSlotScheduler), ("python", schedule.PySlotScheduler)):
        monkeypatch.setattr(schedule, cls.__name__, lambda *a, _n=name, _c=cls: ran.append(_n) or _c(*a))
    sched = SlotSchedule([3, 1, 1], 2, 2, backend=backend)
    assert sched.backend == backend
    assert [w.rows.tolist() for w in sched] == [[[0, 3], [1, 4]], [[2, -1]]]
    assert ran == [runs]


@pytest.mark.parametrize("name, args", [("batch_size", ([1], 0, 1)), ("bptt", ([1], 1, 0))])
def test_bad_sizes_are_named(name, args):
    with pytest.raises(ValueError, match=rf"^Expected {name} to be an integer >= 1, got 0\.$"):
        SlotSchedule(*args)
