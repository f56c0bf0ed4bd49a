"""Native scheduler vs its Python twin on partial orders: the shards of distributed training.

Each process admits ``order[rank::world_size]`` of one global epoch order, a subset of
``range(N)``; the twin must produce the same windows, field by field, with the same
dtypes, for every shard, with and without compaction and wrap-around.
"""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fastseq.bptt.distributed import shard_plan
from fastseq.bptt.schedule import SlotSchedule, epoch_order

FIELDS = ("rows", "sequence", "reset", "valid", "end", "slot_map")
DTYPES = {"rows": np.int64, "sequence": np.int64, "reset": np.bool_, "valid": np.bool_,
          "end": np.bool_, "slot_map": np.int64}


def both(lengths, batch, bptt, order, **kw):
    return [list(SlotSchedule(lengths, batch, bptt, order=order, backend=b, **kw)) for b in ("native", "python")]


def assert_identical(native, twin):
    assert len(native) == len(twin)
    for a, b in zip(native, twin):
        assert a.index == b.index
        for name in FIELDS:
            x, y = getattr(a, name), getattr(b, name)
            assert x.dtype == DTYPES[name] and y.dtype == DTYPES[name], (name, x.dtype, y.dtype)
            assert x.shape == y.shape, name
            np.testing.assert_array_equal(x, y, err_msg=name)


@settings(max_examples=150, deadline=None)
@given(st.lists(st.integers(1, 30), min_size=1, max_size=40), st.integers(1, 9), st.integers(1, 7),
       st.integers(1, 4), st.booleans(), st.booleans(), st.booleans(), st.integers(0, 2**32 - 1))
def test_every_shard_matches_twin(lengths, batch, bptt, world, compact, wrap, shuffle, seed):
    lengths = np.array(lengths)
    order = epoch_order(len(lengths), shuffle=shuffle, seed=seed, lengths=lengths, longest_first=batch)
    for rank in range(world):
        shard = order[rank::world]
        native, twin = both(lengths, batch, bptt, shard, compact=compact, wrap_around=wrap)
        assert_identical(native, twin)
        # the shard, and only the shard, is trained: every step of it exactly once
        if not wrap:
            seen = np.concatenate([w.rows[w.valid] for w in native]) if native else np.array([], int)
            offsets = np.concatenate([[0], np.cumsum(lengths)])
            want = np.concatenate([np.arange(offsets[i], offsets[i + 1]) for i in shard]) if shard.size else []
            np.testing.assert_array_equal(np.sort(seen), np.sort(want))


@pytest.mark.parametrize("world", [2, 3, 5])
@pytest.mark.parametrize("compact", [False, True])
def test_shards_of_shard_plan_match_twin(world, compact):
    rng = np.random.default_rng(world)
    lengths = np.maximum(1, rng.lognormal(2.0, 1.0, 97)).astype(np.int64)
    order = epoch_order(97, shuffle=True, seed=world)
    shards = []
    for rank in range(world):
        with pytest.deprecated_call():
            plan = shard_plan(lengths, order, 4, 5, rank=rank, world_size=world)
        shards.append(plan.order)
        assert_identical(*both(lengths, 4, 5, plan.order, compact=compact))
    assert sorted(np.concatenate(shards).tolist()) == list(range(97))  # a partition of the order


def test_empty_shard_and_single_sequence_shard():
    lengths = np.array([3, 5])
    for shard in (np.array([], dtype=np.int64), np.array([1])):
        for compact in (False, True):
            for wrap in (False, True):
                assert_identical(*both(lengths, 3, 2, shard, compact=compact, wrap_around=wrap))
    assert both(lengths, 3, 2, np.array([], dtype=np.int64))[0] == []


def test_partial_order_windows_exact():
    """A hand-checked shard: sequences 3 and 1 of lengths [2, 3, 4, 1] in two slots."""
    native, twin = both([2, 3, 4, 1], 2, 2, np.array([3, 1]))
    assert_identical(native, twin)
    rows = [w.rows.tolist() for w in native]
    # offsets are [0, 2, 5, 9]: sequence 3 is row 9, sequence 1 rows 2..4
    assert rows == [[[9, 2], [-1, 3]], [[-1, 4]]]
    assert native[0].reset.tolist() == [[True, True], [False, False]]
    assert native[1].end.tolist() == [[False, True]]
