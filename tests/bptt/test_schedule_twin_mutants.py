"""The plain-Python PySlotScheduler against the compiled NativeSlotScheduler, called directly.

SlotSchedule hands both schedulers every argument, so the twin's own defaults and the
state it keeps between windows are checked here: both are built with the same
arguments (or none for compact= and wrap=, to compare the defaults), stepped window by
window, and must agree on everything returned (values, shapes, int64 / bool dtypes) and
on the done flag before the first window and after every one. The twin's offsets and
slots, and the slot map its compaction helper returns at any point of an epoch (after
the last window too), are checked against what csrc/schedule.cpp keeps.
"""
import copy

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fastseq.bptt._schedule_cy import NativeSlotScheduler
from fastseq.bptt._schedule_py import PySlotScheduler
from fastseq.bptt.schedule import SlotSchedule

FIELDS = ("rows", "sequence", "reset", "valid", "end", "slot_map")
DTYPES = (np.int64, np.int64, np.bool_, np.bool_, np.bool_, np.int64)


def run_both(lengths, order, batch, bptt, **kw):
    """Step the compiled scheduler and the twin side by side; return the twin's windows."""
    lengths, order = np.asarray(lengths, np.int64), np.asarray(order, np.int64)
    native = NativeSlotScheduler(lengths, order, batch, bptt, **kw)
    twin = PySlotScheduler(lengths, order, batch, bptt, **kw)
    assert type(twin.done) is bool and twin.done == native.done == (order.size == 0)
    out = []
    for _ in range(int(lengths.sum()) + 2):  # every window holds at least one real step
        a, b = native.next_window(), twin.next_window()
        assert (a is None) == (b is None), (a, b)
        assert type(twin.done) is bool and twin.done == native.done, (len(out), twin.done, native.done)
        assert len(twin.slots) == batch
        if a is None:
            break
        assert len(b) == len(FIELDS)
        for name, dtype, x, y in zip(FIELDS, DTYPES, a, b):
            assert x.dtype == dtype and y.dtype == dtype, (name, x.dtype, y.dtype)
            assert x.shape == y.shape, (name, x.shape, y.shape)
            np.testing.assert_array_equal(x, y, err_msg=name)
        assert b[0].shape[1] == b[5].shape[0] == twin.width
        out.append(b)
    else:
        pytest.fail("the epoch did not end")
    assert twin.done and native.done
    assert twin.next_window() is None and native.next_window() is None
    return out


# (lengths, batch, bptt): empty, one step, equal lengths, ties, slots ending together
CORNERS = [
    ([], 3, 2),
    ([1], 1, 1),
    ([1], 4, 3),
    ([1, 1, 1, 1, 1], 2, 1),
    ([4, 4, 4, 4, 4], 3, 4),   # three slots end together at the window's end, two sequences left
    ([3, 3, 3, 3, 3, 3, 3], 4, 3),
    ([2, 5, 2, 5, 1], 2, 3),
    ([6, 1, 1, 1, 1, 6], 3, 2),
    ([3, 2], 8, 4),            # more slots than sequences
    ([5, 1, 1], 2, 10),
]


@pytest.mark.parametrize("compact", [False, True])
@pytest.mark.parametrize("wrap", [False, True])
@pytest.mark.parametrize("case", range(len(CORNERS)))
def test_corners_match_compiled(case, compact, wrap):
    lengths, batch, bptt = CORNERS[case]
    order = np.arange(len(lengths))
    ws = run_both(lengths, order, batch, bptt, compact=compact, wrap=wrap)
    if not wrap:
        assert sum(int(w[3].sum()) for w in ws) == sum(lengths)


def test_defaults_are_full_width_and_no_wrap():
    # compact=False by default: every window is batch wide while two sequences drain
    ws = run_both([3, 2], [0, 1], 8, 4)
    assert [w[0].shape for w in ws] == [(3, 8)]
    assert ws[0][5].tolist() == list(range(8))
    assert [w[0].shape for w in run_both([3, 2], [0, 1], 8, 4, compact=True)] == [(3, 2)]
    # wrap=False by default: slot 1 idles once 1 and 2 are done instead of re-running 0
    ws = run_both([5, 1, 1], [0, 1, 2], 2, 10)
    assert ws[0][1].T.tolist() == [[0, 0, 0, 0, 0], [1, 2, -1, -1, -1]]
    wrapped = run_both([5, 1, 1], [0, 1, 2], 2, 10, wrap=True)
    assert wrapped[0][1].T.tolist() == [[0, 0, 0, 0, 0], [1, 2, 0, 0, 0]]


def test_compaction_narrows_to_the_sequences_left():
    # after the first window three slots are free and two sequences wait: two slots stay
    ws = run_both([4, 4, 4, 4, 4], np.arange(5), 3, 4, compact=True)
    assert [w[5].tolist() for w in ws] == [[0, 1, 2], [0, 1]]
    assert ws[1][1].tolist() == [[3, 4]] * 4


@settings(max_examples=150, deadline=None)
@given(st.lists(st.integers(1, 12), min_size=0, max_size=25), st.integers(1, 8), st.integers(1, 6),
       st.booleans(), st.booleans(), st.booleans(), st.booleans(), st.integers(0, 2**32 - 1))
def test_random_epochs_match_compiled(lengths, batch, bptt, compact, wrap, subset, defaults, seed):
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(lengths))
    if subset:  # one shard's part of the order, as distributed training admits
        order = order[: rng.integers(0, len(lengths) + 1)]
    kw = {} if defaults else dict(compact=compact, wrap=wrap)
    run_both(lengths, order, batch, bptt, **kw)


def test_offsets_are_int64_and_exact_beyond_float_precision():
    big = 2**53 + 1  # not a float64
    twin = PySlotScheduler([big, 1, 2], [1, 2], 2, 2)
    assert twin.offsets.dtype == np.int64
    assert twin.offsets.tolist() == [0, big, big + 1]
    ws = run_both([big, 1, 2], [1, 2], 2, 2)
    assert ws[0][0].tolist() == [[big, big + 1], [-1, big + 2]]
    assert PySlotScheduler([], [], 1, 1).offsets.dtype == np.int64
    for backend in ("native", "python"):
        (w,) = SlotSchedule([big, 1], 1, 1, order=[1], backend=backend)
        assert w.rows.tolist() == [[big]]


def _busy(twin):
    return [j for j in range(twin.width) if twin._busy(j)]


@pytest.mark.parametrize("wrap", [False, True])
@pytest.mark.parametrize("case", range(1, len(CORNERS)))
def test_compaction_keeps_busy_slots_and_only_what_the_queue_fills(case, wrap):
    """At every point of an epoch, the last window's aftermath included, compacting keeps every
    busy slot, keeps no free slot once nothing is left to admit, and maps slots in int64."""
    lengths, batch, bptt = CORNERS[case]
    twin = PySlotScheduler(lengths, np.arange(len(lengths)), batch, bptt, True, wrap)
    checked_closed = 0
    for _ in range(sum(lengths) + 2):
        probe = copy.deepcopy(twin)
        busy, open_ = _busy(probe), probe._queue_open()
        to_admit = len(probe.order) - probe.admitted
        kept = probe._compact()
        assert kept.dtype == np.int64 and kept.ndim == 1
        assert np.all(np.diff(kept) > 0)
        assert set(busy) <= set(kept.tolist())
        assert probe.width == kept.size and len(probe.slots) == batch
        assert all(s is None for s in probe.slots[probe.width:])
        if not open_:
            assert kept.tolist() == busy
            checked_closed += 1
        elif not wrap:
            assert kept.size <= len(busy) + to_admit
        if twin.next_window() is None:
            break
    else:
        pytest.fail("the epoch did not end")
    assert twin.done and checked_closed
    busy = _busy(twin)
    kept = twin._compact()  # after the end: nothing is queued, only slots mid-sequence stay
    assert kept.dtype == np.int64 and kept.tolist() == busy


def test_compaction_after_a_wrapped_epoch_drops_the_free_slot():
    # slot 0 ends sequence 0 as the last first pass ends; slot 1 is re-running sequence 0
    twin = PySlotScheduler([5, 1, 1], [0, 1, 2], 2, 10, True, True)
    w = twin.next_window()
    assert w[1].T.tolist() == [[0, 0, 0, 0, 0], [1, 2, 0, 0, 0]] and twin.done
    assert _busy(twin) == [1] and not twin._queue_open()
    kept = twin._compact()
    assert kept.dtype == np.int64 and kept.tolist() == [1] and twin.width == 1


def test_compaction_after_a_drained_epoch_keeps_nothing_in_int64():
    twin = PySlotScheduler([2, 1], [0, 1], 2, 4, True, False)
    assert twin.next_window() is not None and twin.done
    kept = twin._compact()
    assert kept.dtype == np.int64 and kept.shape == (0,) and twin.width == 0
    assert twin.slots == [None, None]
