"""The native slot-swap scheduler against its plain-Python twin, and its invariants."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fastseq.bptt.schedule import SlotSchedule, epoch_order

lengths_st = st.lists(st.integers(1, 40), min_size=0, max_size=40)


def windows(lengths, batch, bptt, **kw):
    return list(SlotSchedule(lengths, batch, bptt, **kw))


def assert_same(a, b):
    assert len(a) == len(b)
    for x, y in zip(a, b):
        for name in ("rows", "sequence", "reset", "valid", "end", "slot_map"):
            np.testing.assert_array_equal(getattr(x, name), getattr(y, name), err_msg=name)


@settings(max_examples=200, deadline=None)
@given(lengths_st, st.integers(1, 12), st.integers(1, 9), st.booleans(), st.booleans(), st.integers(0, 10**6))
def test_native_matches_python_twin(lengths, batch, bptt, compact, wrap, seed):
    order = np.random.default_rng(seed).permutation(len(lengths))
    kw = dict(order=order, compact=compact, wrap_around=wrap)
    assert_same(windows(lengths, batch, bptt, backend="native", **kw),
                windows(lengths, batch, bptt, backend="python", **kw))


def visits(ws):
    """(sequence, step) pairs in the order the schedule visits them, per sequence."""
    seen = {}
    for w in ws:
        for k in range(w.steps):
            for j in np.nonzero(w.valid[k])[0]:
                seen.setdefault(int(w.sequence[k, j]), []).append(int(w.rows[k, j]))
    return seen


@settings(max_examples=200, deadline=None)
@given(lengths_st, st.integers(1, 12), st.integers(1, 9), st.booleans())
def test_every_step_visited_once_in_order(lengths, batch, bptt, compact):
    ws = windows(lengths, batch, bptt, compact=compact)
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(int)
    seen = visits(ws)
    assert sorted(seen) == list(range(len(lengths)))
    for i, rows in seen.items():
        assert rows == list(range(offsets[i], offsets[i + 1]))
    total_valid = sum(w.real_steps for w in ws)
    assert total_valid == sum(lengths)


@settings(max_examples=200, deadline=None)
@given(lengths_st, st.integers(1, 12), st.integers(1, 9), st.booleans())
def test_no_slot_idles_while_sequences_remain(lengths, batch, bptt, compact):
    n = len(lengths)
    admitted = 0
    for w in windows(lengths, batch, bptt, compact=compact):
        for k in range(w.steps):
            admitted += int(w.reset[k].sum())
            if admitted < n:
                assert w.valid[k].all(), "a slot idled while sequences were waiting"
            # a reset happens exactly where a slot starts a sequence
            starts = w.rows[k] == np.asarray(np.concatenate([[0], np.cumsum(lengths)])[:-1])[
                np.maximum(w.sequence[k], 0)]
            np.testing.assert_array_equal(w.reset[k], starts & w.valid[k])


@settings(max_examples=100, deadline=None)
@given(lengths_st, st.integers(1, 12), st.integers(1, 9))
def test_ends_mark_last_steps_and_slot_continuity(lengths, batch, bptt):
    ws = windows(lengths, batch, bptt, compact=True)
    ended = [int(s) for w in ws for s in w.ended()[2]]
    assert sorted(ended) == list(range(len(lengths)))
    prev = None
    for w in ws:
        assert w.steps <= bptt and w.width <= batch
        if prev is not None:
            # a slot that continues a sequence carries it from its mapped slot
            cont = ~w.reset[0] & w.valid[0]
            last = prev.sequence[-1][w.slot_map]
            np.testing.assert_array_equal(w.sequence[0][cont], last[cont])
        prev = w


def test_batch_larger_than_data_compacts_to_data():
    ws = windows([3, 2], batch=8, bptt=4, compact=True)
    assert ws[0].width == 2
    wide = windows([3, 2], batch=8, bptt=4)
    assert wide[0].width == 8 and not wide[0].valid[:, 2:].any()


def test_one_very_long_sequence_drains_narrow():
    lengths = [1000] + [1] * 50
    ws = windows(lengths, batch=4, bptt=16, compact=True)
    assert ws[-1].width == 1
    assert sum(w.real_steps for w in ws) == 1050
    # after the short ones are gone only one slot is paid for
    assert sum(w.steps * w.width for w in ws) < 1050 + 4 * 16 * 2


def test_wrap_around_refills_from_the_start_until_all_finish():
    ws = windows([5, 1, 1], batch=2, bptt=10, wrap_around=True)
    assert all(w.valid.all() for w in ws)
    # slot 0 runs sequence 0 (5 steps); slot 1 runs 1, 2, then wraps to 0 again
    assert ws[0].sequence.T.tolist() == [[0, 0, 0, 0, 0], [1, 2, 0, 0, 0]]
    assert ws[-1].end[-1, 0] and not ws[-1].end[-1, 1]


def test_empty_and_bad_inputs():
    assert windows([], 3, 2) == []
    with pytest.raises(ValueError, match="lengths"):
        SlotSchedule([3, 0], 2, 2)
    with pytest.raises(ValueError, match="batch_size"):
        SlotSchedule([3], 0, 2)
    with pytest.raises(TypeError, match="bptt"):
        SlotSchedule([3], 2, 2.5)
    with pytest.raises(ValueError, match="1-D"):
        SlotSchedule([[3]], 2, 2)
    with pytest.raises(ValueError, match="distinct"):
        SlotSchedule([3, 4], 2, 2, order=[1, 1])
    with pytest.raises(ValueError, match="ids in"):
        SlotSchedule([3, 4], 2, 2, order=[0, 2])
    with pytest.raises(ValueError, match="backend"):
        SlotSchedule([3], 2, 2, backend="fortran")


def test_inputs_not_mutated():
    lengths = np.array([4, 2, 3])
    order = np.array([2, 0, 1])
    list(SlotSchedule(lengths, 2, 2, order=order, compact=True))
    np.testing.assert_array_equal(lengths, [4, 2, 3])
    np.testing.assert_array_equal(order, [2, 0, 1])


def test_subset_order_trains_only_that_shard():
    ws = windows([2, 3, 4, 5], 2, 3, order=[3, 1])
    assert sorted(visits(ws)) == [1, 3]


def test_huge_lengths_native_schedule():
    rng = np.random.default_rng(0)
    lengths = np.maximum(1, rng.lognormal(4, 1, 20_000).astype(np.int64))
    total = sum(w.real_steps for w in SlotSchedule(lengths, 256, 64, compact=True))
    assert total == lengths.sum()


def test_epoch_order_is_seeded():
    np.testing.assert_array_equal(epoch_order(10, True, 3), epoch_order(10, True, 3))
    assert not np.array_equal(epoch_order(50, True, 3), epoch_order(50, True, 4))


@pytest.mark.parametrize("compact", [False, True])
@pytest.mark.parametrize("wrap", [False, True])
def test_corner_cases_native_equals_twin(schedule_corner, compact, wrap, twins):
    lengths, batch = schedule_corner
    def run(backend):
        return lambda: [{name: getattr(w, name) for name in ("rows", "sequence", "reset", "valid", "end", "slot_map")}
                        for w in SlotSchedule(lengths, batch, 3, compact=compact, wrap_around=wrap, backend=backend)]

    got = twins(run("native"), run("python"))
    if not wrap or not lengths:
        assert sum(int(w["valid"].sum()) for w in got) == sum(lengths)
