"""Shards balanced by steps, equal window counts per process, and elastic re-sharding."""
import itertools

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from fastseq.bptt.loader import SlotSwapLoader
from fastseq.bptt.shards import Shard, balanced_assignment, plan_epoch, shard_windows

LENGTHS = [40, 3, 1, 12, 4, 2, 6, 7, 5, 1, 8, 30, 2, 2, 9]


def _tagged(lengths):
    """Sequence i, position p holds the row [i, p + 1] (0 only in idle slots)."""
    return [np.stack([np.full(t, i), np.arange(1, t + 1)], axis=1).astype(np.float32) for i, t in enumerate(lengths)]


def _rows(window):
    """(sequence, position) of every valid step of a loader window."""
    x, valid = window.inputs.numpy(), window.valid.numpy()
    return [(int(a), int(b) - 1) for a, b in x[valid]]


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(1, 50), min_size=0, max_size=40), st.integers(1, 6))
def test_assignment_is_longest_processing_time_first(lengths, world):
    lengths = np.array(lengths, dtype=np.int64)
    owner = balanced_assignment(lengths, np.arange(lengths.size), world)
    loads = np.bincount(owner, weights=lengths, minlength=world)
    assert owner.size == lengths.size and (owner >= 0).all() and (owner < world).all()
    if lengths.size:  # Graham's bound for LPT: the most loaded exceeds the least by at most one item
        assert loads.max() - loads.min() <= lengths.max()


@pytest.mark.parametrize("world", [1, 2, 3, 5, 20])
def test_every_rank_yields_the_same_windows_and_every_step_once(world):
    xs = _tagged(LENGTHS)
    loaders = [SlotSwapLoader(xs, None, 2, 3, shuffle=True, seed=4, rank=r, world_size=world, buffers=None) for r in range(world)]
    expected = len(loaders[0])
    per_rank = [list(lo) for lo in loaders]
    assert {len(p) for p in per_rank} == {expected}
    seen = [row for p in per_rank for w in p for row in _rows(w)]
    assert sorted(seen) == [(i, t) for i, n in enumerate(LENGTHS) for t in range(n)]
    for index in range(len(per_rank[0])):
        windows = [p[index] for p in per_rank]
        total = sum(w.real_steps for w in windows)
        assert all(w.total_real_steps == total for w in windows)
    plan = loaders[0].epoch_shards(0)  # epoch 0, planned again
    steps = [int(np.array(LENGTHS)[s.order].sum()) for s in plan.shards]
    assert max(steps) - min(steps) <= max(LENGTHS)
    if world == 2:  # the 40-step sequence alone needs 14 windows: the other shard ends early and idles
        assert min(plan.windows_per_rank) < plan.windows
        idle = [w for p in per_rank for w in p if w.real_steps == 0]
        assert idle and all(not w.valid.any() and (w.sequence == -1).all() for w in idle)


def test_world_size_auto_without_a_process_group_is_one_process():
    loader = SlotSwapLoader(_tagged([3, 2]), None, 2, 2, world_size="auto")
    assert (loader.rank, loader.world_size) == (0, 1)
    with pytest.raises(ValueError, match=r"rank to be an integer in \[0, 1\), got 1"):
        SlotSwapLoader(_tagged([3, 2]), None, 2, 2, rank=1, world_size="auto")


def test_continued_sequences_read_from_their_position_without_a_reset():
    lengths = np.array([5, 3, 4])
    shard = Shard(np.array([2, 0, 1]), np.array([3, 0, 0]))
    windows = list(shard_windows(lengths, shard, 2, 2))
    first = windows[0]
    assert first.sequence[:, 0].tolist() == [2, 1] and first.rows[0, 0] == 5 + 3 + 3  # row 3 of sequence 2
    assert first.reset.tolist() == [[False, True], [True, False]]  # continued: no reset; then fresh ones
    steps = sorted((int(s), int(r)) for w in windows for s, r in zip(w.sequence[w.valid], w.rows[w.valid]))
    assert steps == [(0, r) for r in range(5)] + [(1, r) for r in range(5, 8)] + [(2, 11)]


@pytest.mark.parametrize("new_world", [1, 3, 2])
@pytest.mark.parametrize("cut", [1, 4, 9])
def test_a_state_of_two_processes_resumes_on_any_number_each_step_once(new_world, cut):
    xs = _tagged(LENGTHS)
    make = lambda r, w: SlotSwapLoader(xs, None, 2, 3, shuffle=True, seed=4, rank=r, world_size=w)  # noqa: E731
    before, states, last = [], [], {}
    for r in range(2):
        lo = make(r, 2)
        it = iter(lo)
        for w in itertools.islice(it, cut):
            before += _rows(w)
            for j in range(w.valid.shape[1]):  # the last row each slot held
                if w.valid[-1, j]:
                    last[(r, j)] = _rows_at(w, -1, j)
        states.append(lo.state_dict())
    assert states[0]["window"] == cut
    after = []
    for r in range(new_world):
        lo = make(r, new_world)
        lo.load_state_dict(states[0])
        for j, source in enumerate(lo.continued_from()):  # the slot's carried state belongs to its sequence
            first = next(iter(_first_rows(lo, j)))
            seq, pos = last[source]
            assert first == (seq, pos + 1)
        after += [row for w in lo for row in _rows(w)]
    assert sorted(before + after) == [(i, t) for i, n in enumerate(LENGTHS) for t in range(n)]


def _rows_at(w, k, j):
    a, b = w.inputs.numpy()[k, j]
    return int(a), int(b) - 1


def _first_rows(loader, j):
    clone = SlotSwapLoader(loader.inputs, None, 2, 3, shuffle=True, seed=4, rank=loader.rank,
                           world_size=loader.world_size)
    clone._resumed, clone.epoch = loader._resumed, loader.epoch
    w = next(iter(clone))
    assert not w.reset[0, j]
    yield _rows_at(w, 0, j)


def test_plan_epoch_deals_continued_sequences_round_robin():
    from fastseq.bptt.shards import Remaining

    lengths = np.array([10, 10, 10, 10, 2])
    left = Remaining(np.zeros(5, bool), np.array([0, 1, 2, 3]), np.array([1, 2, 3, 4]), np.zeros(4, np.int64),
                     np.arange(4))
    plan = plan_epoch(lengths, np.arange(5), 1, 2, 3, resume=left)
    assert plan.slots == [4] and plan.shards[0].continued == 4  # wider than batch_size: each continues at once
    assert plan.real_steps.sum() == 9 + 8 + 7 + 6 + 2
