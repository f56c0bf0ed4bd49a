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


def test_appended_rows_reach_the_data_file_before_their_journal_record(tmp_path):
    """Unbuffered writes: once append returns, the data file holds the rows and the journal's
    log the record that vouches for them, so a crash right after it leaves a store that resumes."""
    from fastseq.bptt.store_writer import SequenceStoreWriter

    writer = SequenceStoreWriter(tmp_path / "s", "w")
    writer.append(np.ones((3, 2), np.float32))
    data, log = list((tmp_path / "s").glob("data-*.bin")), list((tmp_path / "s").glob("append-*.log"))
    assert len(data) == 1 and data[0].stat().st_size == 3 * 2 * 4
    assert len(log) == 1 and log[0].stat().st_size == 16  # one record: length and CRC, 8 bytes each
    writer.extend(np.ones((5, 2), np.float32), [2, 3])
    assert data[0].stat().st_size == 8 * 2 * 4 and log[0].stat().st_size == 3 * 16
    writer.close()
    with SequenceStoreWriter(tmp_path / "s", "a") as resumed:
        assert resumed.count == 3


def test_a_saved_store_s_data_is_all_in_its_file_when_synced(tmp_path, monkeypatch):
    """save fsyncs the data file before the commit names it: every byte must be written to the
    file by then (an unflushed buffer would reach the disk later, unsynced)."""
    import os

    sizes = []
    real = os.fsync

    def fsync(fd):
        sizes.append(os.fstat(fd).st_size)
        return real(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    SequenceStore.from_sequences([np.ones((3, 2), np.float32), np.ones((5, 2), np.float32)]).save(tmp_path / "s")
    assert sizes[0] == 8 * 2 * 4
