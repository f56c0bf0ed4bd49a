"""Elastic resume through SlotSwapLoader, with every process of each world run in this one
process: re-sharding twice in one epoch, with and without compacted windows, and between epochs."""
from __future__ import annotations

import numpy as np
import pytest

from fastseq.bptt import SequenceStore, SlotSwapLoader

LENGTHS = (23, 7, 40, 12, 31, 5, 18, 9, 26, 14)


def make(rank: int = 0, world_size: int = 1, compact: bool = True) -> SlotSwapLoader:
    data = SequenceStore.from_sequences([np.full((n, 1), i, np.float32) for i, n in enumerate(LENGTHS)])
    # no tail policy: slots drain unevenly, so compacting moves live sequences between slots
    return SlotSwapLoader(data, None, batch_size=3, bptt=2, tail="none", shuffle=True, seed=0, compact=compact,
                          rank=rank, world_size=world_size)


def run_world(world: int, windows: int | None, state: dict | None = None, compact: bool = True):
    """Every rank of a ``world``-process run (resumed from ``state``) for ``windows`` windows
    (to the epoch's end when None): the loaders, each one's continued sequences before its pass
    as ``(sequence, saved rank, saved slot)``, the rows trained, and each rank's last window."""
    loaders = [make(r, world, compact) for r in range(world)]
    if state is not None:
        for loader in loaders:
            loader.load_state_dict(state)
    handed = []
    for loader in loaders:
        shard = loader.epoch_shards(loader.epoch).shards[loader.rank]
        pairs = loader.continued_from()
        handed.append([(s, *pair) for s, pair in zip(shard.order[: shard.continued].tolist(), pairs)])
        assert len(pairs) == (shard.continued if pairs else 0)
    its = [iter(loader) for loader in loaders]
    rows, last, done = [], {}, 0
    while windows is None or done < windows:
        got = [next(it, None) for it in its]
        if all(w is None for w in got):
            break
        for r, w in enumerate(got):
            rows += w.schedule.rows[w.schedule.valid].tolist()
            last[r] = w.schedule
        done += 1
    return loaders, handed, rows, last


def _once(rows) -> bool:
    return sorted(rows) == list(range(sum(LENGTHS)))


def _windows_in_epoch(world: int) -> int:
    return len(make(0, world))


@pytest.mark.parametrize("compact", [True, False])
def test_a_continued_sequence_is_handed_the_slot_it_had_in_its_ranks_last_window(compact):
    """With compacted windows a draining rank's live sequences move to its first slots, so a
    sequence's slot differs between the two schedules; each continued sequence must be handed
    the (rank, slot) that held it in the saved run's last window, at every save point."""
    checked = 0
    for saved_after in range(1, _windows_in_epoch(2)):
        old, _, rows, last = run_world(2, saved_after, compact=compact)
        new, handed, more, _ = run_world(1, None, old[0].state_dict(), compact=compact)
        assert _once(rows + more), saved_after
        for s, rank, slot in handed[0]:
            assert last[rank].sequence[-1, slot] == s, (saved_after, s, rank, slot)
            checked += 1
    assert checked >= 5


def test_compacting_changes_some_handed_over_slot_in_these_data():
    """The data above tell the two schedules apart (else the test above could not)."""
    differ = False
    for saved_after in range(1, _windows_in_epoch(2)):
        a = run_world(1, 0, run_world(2, saved_after, compact=True)[0][0].state_dict(), compact=True)[1]
        b = run_world(1, 0, run_world(2, saved_after, compact=False)[0][0].state_dict(), compact=False)[1]
        differ |= a != b
    assert differ


@pytest.mark.parametrize("first, second", [(2, 1), (3, 2), (5, 3)])
def test_re_sharding_twice_in_one_epoch_trains_every_row_exactly_once(first, second):
    """Two processes stop, three resume and stop again, one finishes the epoch: sequences
    finished before either stop are not trained again, cut ones go on where they were."""
    a, _, rows_a, _ = run_world(2, first)
    b, _, rows_b, _ = run_world(3, second, a[0].state_dict())
    _, _, rows_c, _ = run_world(1, None, b[0].state_dict())
    assert _once(rows_a + rows_b + rows_c)
    assert len(rows_b) > 0 and len(rows_c) > 0


def test_a_re_sharded_run_saved_again_on_its_own_count_hands_over_nothing_twice():
    """After the first window of a re-sharded epoch, no slot continues another process's state:
    a state saved later and loaded on the same number of processes continues slot for slot."""
    a, _, rows_a, _ = run_world(2, 2)
    b, handed_b, rows_b, _ = run_world(3, 1, a[0].state_dict())
    assert any(handed_b)  # the first window did continue some
    _, handed_c, _, _ = run_world(3, 0, b[0].state_dict())
    assert handed_c == [[], [], []]
    _, _, rows_d, _ = run_world(3, None, b[0].state_dict())
    assert _once(rows_a + rows_b + rows_d)


def test_a_state_saved_between_epochs_loads_on_another_count_as_that_epochs_start():
    two, _, rows, _ = run_world(2, None)
    state = two[0].state_dict()
    assert (state["epoch"], state["window"]) == (1, 0) and _once(rows)
    one = make()
    one.load_state_dict(state)
    assert one.state_dict()["resumed"] is None and one.continued_from() == []
    fresh = make()
    list(fresh)
    assert [w.schedule.rows.tolist() for w in one] == [w.schedule.rows.tolist() for w in fresh]


def test_a_plan_read_before_a_re_sharded_state_is_loaded_is_not_reused_for_it():
    """``len(loader)`` plans the epoch; loading a re-sharded state for that same epoch must plan
    it again with what was left, not serve the plan already made."""
    a, _, rows_a, _ = run_world(2, 3)
    one = make()
    whole = len(one)
    one.load_state_dict(a[0].state_dict())
    assert len(one) < whole
    rows = [r for w in one for r in w.schedule.rows[w.schedule.valid].tolist()]
    assert _once(rows_a + rows)
