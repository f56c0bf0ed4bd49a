"""The finer rules of shards: loads carried into a resumed epoch, the tail policy on short
shards, compacting and end flags of continued shards, and a rank's padded windows."""
import numpy as np
import pytest

from fastseq.bptt.epoch import EpochSpec
from fastseq.bptt.schedule import SlotSchedule
from fastseq.bptt.shards import Remaining, Shard, padded_windows, plan_epoch, shard_windows

LENGTHS = np.array([9, 2, 7, 3, 1, 5])
CONTINUED = Shard(np.array([0, 2, 1, 3, 4, 5]), np.array([4, 2, 0, 0, 0, 0]))  # two continued, four fresh


def _as_tuples(windows):
    return [(w.index, w.rows.tolist(), w.sequence.tolist(), w.reset.tolist(), w.valid.tolist(), w.end.tolist(),
             w.slot_map.tolist()) for w in windows]


def test_fresh_sequences_are_balanced_on_top_of_the_continued_loads():
    """A resumed epoch: rank 0 carries the 10 steps left of sequence 0, so both fresh
    3-step sequences go to rank 1 (balanced without those loads, one would go to each)."""
    lengths = np.array([12, 3, 3])
    resume = Remaining(done=np.zeros(3, bool), sequence=np.array([0]), position=np.array([2]),
                       rank=np.array([0]), slot=np.array([0]))
    plan = plan_epoch(lengths, np.arange(3), 2, batch_size=1, bptt=4, resume=resume)
    assert [s.order.tolist() for s in plan.shards] == [[0], [1, 2]]
    assert [s.start.tolist() for s in plan.shards] == [[2], [0, 0]]


def test_tail_policy_arranges_a_shard_of_two():
    plan = plan_epoch(np.array([1, 5]), np.arange(2), 1, batch_size=1, bptt=2)
    assert plan.shards[0].order.tolist() == [1, 0]  # the longest is admitted first
    plan = plan_epoch(np.array([1, 5]), np.arange(2), 1, batch_size=1, bptt=2, tail_first=False)
    assert plan.shards[0].order.tolist() == [0, 1]


@pytest.mark.parametrize("compact", [False, True])
def test_continued_shard_compacts_as_asked(compact):
    windows = list(shard_windows(LENGTHS, CONTINUED, 3, 2, compact=compact))
    widths = [w.sequence.shape[1] for w in windows]
    assert widths[0] == 3
    if compact:
        assert min(widths) < 3  # the drain narrows the windows to the slots still in use
    else:
        assert set(widths) == {3}


def test_shard_windows_compact_by_default():
    for shard in (CONTINUED, Shard(CONTINUED.order, np.zeros(6, np.int64))):
        assert _as_tuples(shard_windows(LENGTHS, shard, 3, 2)) == \
            _as_tuples(shard_windows(LENGTHS, shard, 3, 2, compact=True))


def test_continued_shard_flags_each_sequence_end_once_at_its_last_row():
    offsets = np.concatenate([[0], np.cumsum(LENGTHS)[:-1]])
    ends = {}
    for w in shard_windows(LENGTHS, CONTINUED, 3, 2):
        for s, r in zip(w.sequence[w.end], w.rows[w.end]):
            ends.setdefault(int(s), []).append(int(r))
    assert ends == {int(s): [int(offsets[s] + LENGTHS[s] - 1)] for s in CONTINUED.order}


def test_a_single_continued_sequence_beside_an_idle_slot():
    """One continued sequence with 3 steps left in two slots that are not compacted: the
    second slot is idle throughout (no row, no sequence, no reset)."""
    windows = list(shard_windows(np.array([5]), Shard(np.array([0]), np.array([2])), 2, 2, compact=False))
    assert [w.rows.tolist() for w in windows] == [[[2, -1], [3, -1]], [[4, -1]]]
    assert [w.sequence.tolist() for w in windows] == [[[0, -1], [0, -1]], [[0, -1]]]
    assert not any(w.reset.any() for w in windows) and windows[1].end.tolist() == [[True, False]]


@pytest.mark.parametrize("compact, wrap_around", [(False, False), (True, False), (False, True)])
def test_padded_windows_follow_the_spec(compact, wrap_around):
    lengths = np.array([9, 2, 7, 3, 1, 5, 2])
    spec = EpochSpec(batch_size=3, bptt=2, compact=compact, wrap_around=wrap_around, rank=1, world_size=2)
    epoch = plan_epoch(lengths, np.arange(lengths.size), spec=spec)
    got = list(padded_windows(lengths, epoch, spec))
    shard = epoch.shards[1]
    real = list(SlotSchedule(lengths, epoch.slots[1], 2, shard.order, compact=compact, wrap_around=wrap_around))
    assert len(got) == epoch.windows and epoch.windows_per_rank[1] == len(real)
    assert _as_tuples(got[:len(real)]) == _as_tuples(real)
    assert all(not w.valid.any() for w in got[len(real):])


def test_continued_sequences_are_dealt_longest_remainder_first():
    """Sequence 1 has 5 steps left and sequence 0 has 2 (though 0 is the longer sequence and
    further along): 1 goes to rank 0, 0 to rank 1."""
    resume = Remaining(done=np.zeros(2, bool), sequence=np.array([0, 1]), position=np.array([8, 1]),
                       rank=np.array([0, 0]), slot=np.array([0, 1]))
    plan = plan_epoch(np.array([10, 6]), np.arange(2), 2, batch_size=1, bptt=2, resume=resume)
    assert [s.order.tolist() for s in plan.shards] == [[1], [0]]
    assert [s.start.tolist() for s in plan.shards] == [[1], [8]]


def test_continued_sequences_with_equal_remainders_keep_their_resume_order():
    rng = np.random.default_rng(0)
    n = 100
    left = rng.integers(1, 4, n)
    resume = Remaining(done=np.zeros(n, bool), sequence=np.arange(n), position=np.ones(n, np.int64),
                       rank=np.zeros(n, np.int64), slot=np.arange(n))
    plan = plan_epoch(left + 1, np.arange(n), 1, batch_size=4, bptt=2, resume=resume)
    assert plan.shards[0].order.tolist() == sorted(range(n), key=lambda k: (-left[k], k))


def test_explicit_tail_first_and_wrap_around_are_kept():
    assert plan_epoch(np.array([1, 5]), np.arange(2), 1, batch_size=1, bptt=2,
                      tail_first=True).shards[0].order.tolist() == [1, 0]
    # wrap-around keeps every slot busy: all batch_size slots, even with fewer sequences
    assert plan_epoch(np.array([3, 2]), np.arange(2), 1, batch_size=4, bptt=2, wrap_around=True).slots == [4]
    assert plan_epoch(np.array([3, 2]), np.arange(2), 1, batch_size=4, bptt=2).slots == [2]


def test_each_rank_carries_the_sum_of_its_continued_remainders():
    """Remainders 5, 4, 3 are dealt to ranks 0, 1, 0: rank 0 carries 8 steps, rank 1 carries 4,
    so a fresh 4-step sequence goes to rank 1."""
    resume = Remaining(done=np.zeros(4, bool), sequence=np.array([0, 1, 2]), position=np.array([1, 1, 1]),
                       rank=np.zeros(3, np.int64), slot=np.arange(3))
    plan = plan_epoch(np.array([6, 5, 4, 4]), np.arange(4), 2, batch_size=1, bptt=2, resume=resume)
    assert [s.order.tolist() for s in plan.shards] == [[0, 2], [1, 3]]


def test_wrap_around_admits_in_the_epoch_order():
    """Wrap-around has no tail to drain, so the longest are not moved first."""
    plan = plan_epoch(np.array([1, 5]), np.arange(2), 1, batch_size=1, bptt=2, wrap_around=True)
    assert plan.shards[0].order.tolist() == [0, 1]


def test_plan_asks_the_memory_guard_for_40_bytes_per_window(monkeypatch):
    """The longest sequence (11 steps, bptt 4) makes 3 windows; the guard is asked for their
    bytes before any is counted."""
    import fastseq.bptt.shards as shards

    asked = []
    monkeypatch.setattr(shards, "check_fits", lambda what, nbytes: asked.append((what, nbytes)))
    plan_epoch(np.array([11, 2, 5]), np.arange(3), 2, batch_size=1, bptt=4)
    assert asked == [("plan_epoch of 3 windows (lengths up to 11, bptt=4)", 120.0)]


def test_plan_arrays_are_int64_with_and_without_continued_sequences():
    lengths = np.array([6, 5, 4, 4])
    resume = Remaining(done=np.zeros(4, bool), sequence=np.array([0]), position=np.array([2]),
                       rank=np.zeros(1, np.int64), slot=np.zeros(1, np.int64))
    for plan in (plan_epoch(lengths, np.arange(4), 2, batch_size=1, bptt=2),
                 plan_epoch(lengths, np.arange(4), 2, batch_size=1, bptt=2, resume=resume)):
        assert plan.real_steps.dtype == np.int64
        assert all(s.order.dtype == np.int64 and s.start.dtype == np.int64 for s in plan.shards)


def _lpt_reference(lengths, world):
    """Longest first (ties in id order), each to the least-loaded rank (ties: the lower rank)."""
    loads, owner = [0] * world, [0] * len(lengths)
    for i in sorted(range(len(lengths)), key=lambda i: (-lengths[i], i)):
        r = min(range(world), key=lambda r: (loads[r], r))
        owner[i], loads[r] = r, loads[r] + lengths[i]
    return owner


def test_assignment_takes_the_longest_first_and_breaks_ties_by_id():
    from fastseq.bptt.shards import balanced_assignment

    assert balanced_assignment(np.array([1, 5]), np.arange(2), 2).tolist() == [1, 0]
    lengths = np.random.default_rng(3).integers(1, 4, 200)
    for world in (2, 3, 7):
        assert balanced_assignment(lengths, np.arange(200), world).tolist() == _lpt_reference(lengths.tolist(), world)
