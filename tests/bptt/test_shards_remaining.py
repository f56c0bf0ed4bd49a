"""shards.remaining: where an epoch stands after some windows, in the cases a resume meets."""
import numpy as np

from fastseq.bptt.shards import EpochShards, Shard, plan_epoch, remaining, shard_windows

FIELDS = ("sequence", "position", "rank", "slot")


def _where_each_live_sequence_sits(lengths, shard, slots, bptt, windows, compact):
    """{sequence: (steps trained, slot)} read off the schedule's own window ``windows - 1``."""
    offsets = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    last = list(shard_windows(lengths, shard, slots, bptt, compact=compact))[windows - 1]
    out = {}
    for j, s in enumerate(last.sequence[-1].tolist()):
        if s >= 0 and not last.end[-1, j]:
            out[s] = (int(last.rows[-1, j] - offsets[s] + 1), j)
    return out


def test_slots_are_those_of_the_compacted_schedule_the_loader_runs_by_default():
    """Compacting narrows the drained window, so a sequence's slot index moves; the loader's
    default (``compact=True``) and ``remaining``'s default must agree on where its state is."""
    lengths = np.array([7, 11, 1, 6, 10, 9, 5, 6])
    plan = plan_epoch(lengths, np.arange(8), 1, batch_size=3, bptt=2)
    left = remaining(lengths, plan, 2, 10)
    expect = _where_each_live_sequence_sits(lengths, plan.shards[0], plan.slots[0], 2, 10, compact=True)
    assert {s: (p, j) for s, p, j in zip(left.sequence.tolist(), left.position.tolist(), left.slot.tolist())} == expect
    wide = remaining(lengths, plan, 2, 10, compact=False)
    assert wide.slot.tolist() != left.slot.tolist()  # the case tells the two schedules apart
    assert {s: (p, j) for s, p, j in zip(wide.sequence.tolist(), wide.position.tolist(), wide.slot.tolist())} == \
        _where_each_live_sequence_sits(lengths, plan.shards[0], plan.slots[0], 2, 10, compact=False)


def test_sequences_done_before_the_epoch_stay_done_and_the_callers_array_is_kept():
    lengths = np.array([4, 3, 5])
    plan = plan_epoch(lengths, np.array([1, 2]), 1, batch_size=2, bptt=2)  # sequence 0 finished earlier
    before = np.array([True, False, False])
    left = remaining(lengths, plan, 2, 1, done=before)
    assert left.done.tolist() == [True, False, False]
    assert before.tolist() == [True, False, False] and left.done is not before
    left = remaining(lengths, plan, 2, plan.windows, done=before)
    assert left.done.tolist() == [True, True, True] and before.tolist() == [True, False, False]


def test_before_any_window_nothing_has_started_and_every_field_is_int64():
    lengths = np.array([3, 1, 4])
    left = remaining(lengths, plan_epoch(lengths, np.arange(3), 2, batch_size=1, bptt=2), 2, 0)
    assert left.done.tolist() == [False, False, False]
    for f in FIELDS:
        assert getattr(left, f).dtype == np.int64 and getattr(left, f).size == 0, f


def test_after_the_last_window_every_sequence_is_done_and_every_field_is_int64():
    lengths = np.array([3, 1, 4])
    plan = plan_epoch(lengths, np.arange(3), 2, batch_size=1, bptt=2)
    left = remaining(lengths, plan, 2, plan.windows)
    assert left.done.all()
    for f in FIELDS:
        assert getattr(left, f).dtype == np.int64 and getattr(left, f).size == 0, f


def test_a_rank_with_no_windows_does_not_end_the_count_of_the_ranks_after_it():
    lengths = np.array([9, 2, 2, 2, 7, 3])
    one = plan_epoch(lengths, np.arange(6), 1, batch_size=3, bptt=2)
    nothing = Shard(np.zeros(0, np.int64), np.zeros(0, np.int64))
    two = EpochShards([nothing, one.shards[0]], [1, one.slots[0]], one.real_steps, [0, one.windows])
    alone, behind = remaining(lengths, one, 2, 2), remaining(lengths, two, 2, 2)
    assert behind.sequence.size == 3
    assert behind.rank.tolist() == [1, 1, 1]
    for f in ("sequence", "position", "slot"):
        assert getattr(behind, f).tolist() == getattr(alone, f).tolist(), f
    assert behind.done.tolist() == alone.done.tolist()
