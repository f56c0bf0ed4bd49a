"""Edges of the store and the shard schedule: a gather of no rows on a mapped store, a save
that writes without warnings, the idle window of a rank whose shard has ended."""
from __future__ import annotations

import warnings

import numpy as np

from fastseq.bptt import SequenceStore
from fastseq.bptt.shards import idle_window


def test_a_mapped_store_gathers_no_rows_and_counts_nothing_touched(tmp_path):
    SequenceStore.from_sequences([np.ones((3, 2), np.float32), np.ones((2, 2), np.float32)]).save(tmp_path / "s")
    store = SequenceStore.load(tmp_path / "s", mmap=True, resident_limit=1 << 20)
    rows = np.zeros(0, np.int64)
    assert store.gather(rows).shape == (0, 2)
    assert store._touched == 0
    store.gather(np.array([0, 1, 2, -1, 4]))  # a 1-D run of 3 rows, a gap, one row: 4 rows in 2 runs
    assert store._touched == 4 * 8 + 2 * 2 * 4096


def test_saving_a_store_raises_no_warning(tmp_path):
    store = SequenceStore.from_sequences([np.arange(6, dtype=np.float32).reshape(3, 2)])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        store.save(tmp_path / "s")
    np.testing.assert_array_equal(SequenceStore.load(tmp_path / "s")[0], store[0])


def test_an_idle_window_has_one_slot_and_nothing_valid():
    w = idle_window(7, 4)
    assert w.index == 7
    for a in (w.rows, w.sequence):
        assert a.shape == (4, 1) and a.dtype == np.int64 and (a == -1).all()
    for a in (w.reset, w.valid, w.end):
        assert a.shape == (4, 1) and a.dtype == bool and not a.any()
    assert w.slot_map.tolist() == [0]
    w.valid[0, 0] = True
    assert not w.reset.any() and not w.end.any()  # separate arrays
