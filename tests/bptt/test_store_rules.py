"""The store's and its writer's smaller rules: building from an iterable (and resuming it),
which journal is live, crash recovery cut at what reached the disk, the names in errors,
the bytes a gather is charged, and files that must not be unpickled."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from fastseq.bptt import _store_files as files
from fastseq.bptt.store import _PAGE, SequenceStore, _touched_bytes
from fastseq.bptt.store_writer import SequenceStoreWriter


def _seqs(n: int, width: int = 2) -> list[np.ndarray]:
    return [np.full((t % 4 + 1, width), t, np.float32) for t in range(n)]


def _same(store: SequenceStore, seqs: list[np.ndarray]) -> None:
    assert store.lengths.tolist() == [len(s) for s in seqs]
    for got, want in zip(store, seqs):
        np.testing.assert_array_equal(got, want)


# ------------------------------------------------------------------ building from an iterable


def test_from_iterable_builds_in_the_dtype_asked(tmp_path):
    store = SequenceStore.from_iterable(iter(_seqs(5)), tmp_path / "s", dtype=np.float64)
    assert store.dtype == np.float64
    _same(store, _seqs(5))


def _died_building(path: Path, seqs: list[np.ndarray]) -> None:
    """A "w" writer that wrote ``seqs`` and died before its commit."""
    writer = SequenceStoreWriter(path, "w")
    for s in seqs:
        writer.append(s)
    writer.close()


def test_from_iterable_resumes_only_when_asked(tmp_path):
    seqs = _seqs(6)
    _died_building(tmp_path, seqs[:4])
    assert SequenceStoreWriter.building(tmp_path)
    # resume: the 4 written are skipped in the iterable, so a changed head does not matter
    marked = [np.full_like(s, -1) for s in seqs[:4]] + seqs[4:]
    _same(SequenceStore.from_iterable(iter(marked), tmp_path, resume=True), seqs)
    _died_building(tmp_path, seqs[:4])
    _same(SequenceStore.from_iterable(iter(marked), tmp_path), marked)  # no resume: built again


# ------------------------------------------------------------------ which journal is live


def test_building_is_true_only_for_a_new_store_left_uncommitted(tmp_path):
    assert not SequenceStoreWriter.building(tmp_path)
    _died_building(tmp_path, _seqs(2))
    assert SequenceStoreWriter.building(tmp_path)
    journal = (tmp_path / files.JOURNAL).read_bytes()
    with SequenceStoreWriter(tmp_path, "a") as writer:
        assert writer.count == 2
    assert not SequenceStoreWriter.building(tmp_path)
    # a crash between the manifest's rename and the journal's removal: the journal is spent
    (tmp_path / files.JOURNAL).write_bytes(journal)
    assert not SequenceStoreWriter.building(tmp_path)
    with SequenceStoreWriter(tmp_path, "a") as writer:
        assert writer.count == 2
        writer.append(np.ones((1, 2), np.float32))
    assert SequenceStore.load(tmp_path).lengths.tolist() == [1, 2, 1]
    # an append to a committed store left uncommitted is resumed by "a", but is not a build
    writer = SequenceStoreWriter(tmp_path, "a")
    writer.append(np.ones((3, 2), np.float32))
    writer.close()
    assert not SequenceStoreWriter.building(tmp_path)


def test_an_append_journal_is_live_until_another_commit_supersedes_it(tmp_path):
    with SequenceStoreWriter(tmp_path, "w") as writer:
        writer.append(np.zeros((2, 2), np.float32))
    writer = SequenceStoreWriter(tmp_path, "a")
    writer.append(np.ones((3, 2), np.float32))
    writer.close()
    stale = (tmp_path / files.JOURNAL).read_bytes()
    with SequenceStoreWriter(tmp_path, "a") as writer:  # live: resumed
        assert writer.count == 2
        writer.append(np.ones((1, 2), np.float32))
    assert SequenceStore.load(tmp_path).lengths.tolist() == [2, 3, 1]
    (tmp_path / files.JOURNAL).write_bytes(stale)  # its base lengths are no longer the manifest's
    with SequenceStoreWriter(tmp_path, "a") as writer:
        assert writer.count == 3
    assert SequenceStore.load(tmp_path).lengths.tolist() == [2, 3, 1]


def test_a_resumed_build_keeps_its_log_for_the_next_crash(tmp_path):
    _died_building(tmp_path, _seqs(3))
    writer = SequenceStoreWriter(tmp_path, "a")
    assert writer.count == 3
    writer.append(_seqs(4)[3])
    writer.close()
    with SequenceStoreWriter(tmp_path, "a") as writer:
        assert writer.count == 4
    _same(SequenceStore.load(tmp_path), _seqs(4))


# ------------------------------------------------------------------ crash recovery


def _files(folder: Path) -> tuple[Path, Path]:
    journal = files.read_json(folder / files.JOURNAL, "journal")
    return folder / journal["data"], folder / journal["log"]


@pytest.mark.parametrize("keep_rows, count", [(0, 0), (1, 1), (2, 1), (3, 2), (6, 2)])
def test_resume_keeps_the_sequences_whose_rows_reached_the_data_file(tmp_path, keep_rows, count):
    seqs = [np.full((1, 2), 1, np.float32), np.full((2, 2), 2, np.float32), np.full((4, 2), 3, np.float32)]
    _died_building(tmp_path, seqs)
    data, _ = _files(tmp_path)
    with open(data, "r+b") as fh:  # the last rows never reached the disk
        fh.truncate(keep_rows * 8)
    with SequenceStoreWriter(tmp_path, "a") as writer:
        assert writer.count == count
    _same(SequenceStore.load(tmp_path), seqs[:count])


def test_a_torn_last_record_is_dropped(tmp_path):
    seqs = _seqs(3)
    _died_building(tmp_path, seqs)
    _, log = _files(tmp_path)
    with open(log, "ab") as fh:
        fh.write(b"\x05" * 8)  # half of a record: the length, without its checksum
    with SequenceStoreWriter(tmp_path, "a") as writer:
        assert writer.count == 3
    _same(SequenceStore.load(tmp_path), seqs)


# ------------------------------------------------------------------ formats and names


def test_an_empty_store_commits_as_float32_unless_told(tmp_path):
    with SequenceStoreWriter(tmp_path / "a", "w"):
        pass
    assert SequenceStore.load(tmp_path / "a").dtype == np.float32
    with SequenceStoreWriter(tmp_path / "b", "w", dtype=np.int16):
        pass
    assert SequenceStore.load(tmp_path / "b").dtype == np.int16


def test_a_writer_casts_within_a_kind(tmp_path):
    with SequenceStoreWriter(tmp_path, "w", dtype=np.float32) as writer:
        writer.append(np.full((2, 3), 0.5, np.float64))
        writer.extend(np.zeros((3, 3), np.float64), [1, 2])
    store = SequenceStore.load(tmp_path)
    assert store.dtype == np.float32 and store.lengths.tolist() == [2, 1, 2]
    np.testing.assert_array_equal(store[0], np.full((2, 3), 0.5, np.float32))


def test_nested_folders_are_made(tmp_path):
    store = SequenceStore.from_sequences(_seqs(3))
    store.save(tmp_path / "a" / "b" / "store")
    _same(SequenceStore.load(tmp_path / "a" / "b" / "store"), _seqs(3))
    with SequenceStoreWriter(tmp_path / "c" / "d", "w") as writer:
        writer.append(np.zeros((1, 1)))
    assert SequenceStore.load(tmp_path / "c" / "d").lengths.tolist() == [1]


def test_the_default_mode_appends(tmp_path):
    with SequenceStoreWriter(tmp_path, "w") as writer:
        writer.append(np.zeros((2, 2), np.float32))
    with SequenceStoreWriter(tmp_path) as writer:
        writer.append(np.ones((1, 2), np.float32))
    assert SequenceStore.load(tmp_path).lengths.tolist() == [2, 1]


def test_errors_name_the_argument(tmp_path):
    with SequenceStoreWriter(tmp_path, "w") as writer:
        writer.append(np.zeros((2, 2), np.float32))
        with pytest.raises(ValueError, match=r"^Expected sequence to have feature shape \(2,\), got \(3,\)\.$"):
            writer.append(np.zeros((2, 3), np.float32))
        with pytest.raises(ValueError, match=r"^Expected rows to have feature shape \(2,\), got \(3,\)\.$"):
            writer.extend(np.zeros((2, 3), np.float32), [2])
        with pytest.raises((TypeError, ValueError), match=r"^Expected rows "):
            writer.extend([[1.0], [2.0, 3.0]], [2])
        with pytest.raises((TypeError, ValueError), match=r"^Expected sequence "):
            writer.append([[1.0], [2.0, 3.0]])


def test_unreadable_manifest_and_journal_are_named(tmp_path):
    _died_building(tmp_path, _seqs(2))
    (tmp_path / files.JOURNAL).write_text("{not json")
    with pytest.raises(ValueError, match=r"to be a SequenceStore journal, but it cannot be read"):
        SequenceStoreWriter(tmp_path, "a")
    assert not SequenceStoreWriter.building(tmp_path)
    other = tmp_path / "other"
    with SequenceStoreWriter(other, "w") as writer:
        writer.append(np.zeros((1, 2), np.float32))
    (other / files.MANIFEST).write_text("[]")
    with pytest.raises(ValueError, match=r" manifest of version "):
        SequenceStoreWriter(other, "a")
    with pytest.raises(ValueError, match=r" manifest "):
        SequenceStore.load(other)
    _died_building(tmp_path / "third", _seqs(1))
    (tmp_path / "third" / files.MANIFEST).write_text("[]")
    with pytest.raises(ValueError, match=r" manifest "):
        SequenceStoreWriter.building(tmp_path / "third")


# ------------------------------------------------------------------ no file is unpickled


class _Touch:
    """Unpickling this creates a file: the proof that a load ran code."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def _plant(path: Path, marker: Path) -> None:
    arr = np.empty(2, object)
    arr[:] = [_Touch(marker), _Touch(marker)]
    with open(path, "wb") as fh:
        np.lib.format.write_array(fh, arr, allow_pickle=True)


def test_a_pickled_lengths_file_is_never_unpickled(tmp_path):
    marker = tmp_path / "ran"
    store_dir = tmp_path / "store"
    with SequenceStoreWriter(store_dir, "w") as writer:
        writer.append(np.zeros((1, 2), np.float32))
    manifest = files.read_json(store_dir / files.MANIFEST, "manifest")
    _plant(store_dir / manifest["lengths"], marker)
    with pytest.raises(ValueError):
        SequenceStore.load(store_dir)
    with pytest.raises(ValueError):
        SequenceStoreWriter(store_dir, "a")
    # an append left uncommitted, resumed: its journal names the committed lengths as its base
    again = tmp_path / "again"
    with SequenceStoreWriter(again, "w") as writer:
        writer.append(np.zeros((1, 2), np.float32))
    writer = SequenceStoreWriter(again, "a")
    writer.append(np.zeros((2, 2), np.float32))
    writer.close()
    _plant(again / files.read_json(again / files.JOURNAL, "journal")["base_lengths"], marker)
    with pytest.raises(ValueError):
        SequenceStoreWriter(again, "a")
    legacy = tmp_path / "legacy"
    legacy.mkdir()
    np.save(legacy / "data.npy", np.zeros((2, 2), np.float32))
    _plant(legacy / "lengths.npy", marker)
    with pytest.raises(ValueError):
        SequenceStore.load(legacy)
    assert not marker.exists()


def test_a_legacy_store_loads_mapped_or_in_memory(tmp_path):
    np.save(tmp_path / "data.npy", np.arange(6, dtype=np.float32).reshape(3, 2))
    np.save(tmp_path / "lengths.npy", np.array([2, 1]))
    mapped, loaded = SequenceStore.load(tmp_path), SequenceStore.load(tmp_path, mmap=False)
    assert isinstance(mapped.data, np.memmap) and not isinstance(loaded.data, np.memmap)
    for store in (mapped, loaded):
        assert store.lengths.tolist() == [2, 1] and store[1].tolist() == [[4.0, 5.0]]


# ------------------------------------------------------------------ the bytes a gather is charged


def _touched_model(rows: np.ndarray, row_bytes: int) -> int:
    r = rows.reshape(rows.shape[0], -1) if rows.ndim >= 2 else rows.reshape(-1, 1)
    total, runs = 0, 0
    for j in range(r.shape[1]):
        prev = None
        for x in r[:, j]:
            if x >= 0:
                total += 1
                runs += not (prev is not None and prev >= 0 and x == prev + 1)
            prev = x
    return total * row_bytes + 2 * _PAGE * runs


@pytest.mark.parametrize("rows", [
    np.array([[0, 10, 5], [1, 11, -1], [2, -1, 0], [5, 12, 1]]),  # runs cut by jumps and by idle steps
    np.array([3, 4, 5, 9]),
    np.array([[7], [8]]),
    np.array([[4, 6], [5, 8]]),
    np.array([[[0, 1]], [[1, 2]], [[2, 9]]]),
    np.array([6]),
    np.array([[-1, -1]]),
])
def test_touched_bytes_counts_rows_and_runs(rows):
    assert _touched_bytes(rows, 12) == _touched_model(rows, 12)


def test_touched_bytes_by_hand():
    # column 0: one run of 3 and a run of 1; column 1: runs 10-11 and 12 (an idle step between)
    rows = np.array([[0, 10], [1, 11], [2, -1], [5, 12]])
    assert _touched_bytes(rows, 4) == 7 * 4 + 2 * _PAGE * 4
    assert _touched_bytes(np.array([3, 4, 5, 9]), 4) == 4 * 4 + 2 * _PAGE * 2


def test_release_starts_the_count_again(tmp_path):
    SequenceStore.from_sequences([np.zeros((50, 4), np.float32)] * 4).save(tmp_path)
    store = SequenceStore.load(tmp_path)
    rows = np.arange(8)[:, None]
    cost = _touched_bytes(rows, 16)
    store.resident_limit = cost
    calls = []
    real = store.release
    store.release = lambda: (calls.append(1), real())[1]
    store.gather(rows)
    assert calls == []  # exactly at the limit: kept
    store.release()
    store.gather(rows)
    assert calls == [1]  # only the call above: counted from 0 again, the gather is at the limit, not over it
    store.gather(rows)
    assert calls == [1, 1]


# ------------------------------------------------------------------ loading


def test_from_sequences_names_its_argument():
    with pytest.raises(ValueError, match=r"^Expected every item of sequences to have feature shape \(2,\), got \(3,\) "
                                         r"at sequences\[1\]\.$"):
        SequenceStore.from_sequences([np.zeros((2, 2)), np.zeros((2, 3))])


def test_a_store_larger_than_one_write_chunk_keeps_its_checksum(tmp_path):
    rows = files.CHUNK // 4 + 1000  # float32 rows of one value: more bytes than one chunk of the copy
    store = SequenceStore(np.arange(rows, dtype=np.float32)[:, None], np.array([rows - 7, 7]))
    store.save(tmp_path)
    loaded = SequenceStore.load(tmp_path, verify=True)
    assert loaded.lengths.tolist() == [rows - 7, 7] and float(loaded[1][-1, 0]) == rows - 1


def test_load_retries_once_when_a_writer_replaced_the_generation(tmp_path, monkeypatch):
    SequenceStore.from_sequences(_seqs(3)).save(tmp_path)
    real, calls = SequenceStore._from_manifest, []

    def racing(folder, m, mmap, verify):
        calls.append(1)
        if len(calls) == 1:
            raise FileNotFoundError("the generation read was replaced meanwhile")
        return real(folder, m, mmap, verify)

    monkeypatch.setattr(SequenceStore, "_from_manifest", staticmethod(racing))
    _same(SequenceStore.load(tmp_path), _seqs(3))
    assert len(calls) == 2


def test_load_gives_up_when_the_same_manifest_fails_twice(tmp_path, monkeypatch):
    SequenceStore.from_sequences(_seqs(3)).save(tmp_path)
    calls = []

    def missing(folder, m, mmap, verify):
        calls.append(1)
        if len(calls) > 3:
            raise RuntimeError("load kept retrying a manifest that does not change")
        raise FileNotFoundError("data file gone")

    monkeypatch.setattr(SequenceStore, "_from_manifest", staticmethod(missing))
    with pytest.raises(FileNotFoundError, match="data file gone"):
        SequenceStore.load(tmp_path)
    assert len(calls) == 2


def test_a_zero_width_feature_shape_loads(tmp_path):
    SequenceStore.from_sequences([np.zeros((2, 0), np.float32), np.zeros((3, 0), np.float32)]).save(tmp_path)
    store = SequenceStore.load(tmp_path)
    assert store.lengths.tolist() == [2, 3] and store[1].shape == (3, 0)


def test_a_manifest_whose_count_disagrees_with_its_lengths_is_refused(tmp_path):
    SequenceStore.from_sequences(_seqs(3)).save(tmp_path)
    manifest = files.read_json(tmp_path / files.MANIFEST, "manifest")
    files.write_json(tmp_path / files.MANIFEST, {**manifest, "sequences": 2})
    with pytest.raises(ValueError, match=r"to hold the 2 lengths"):
        SequenceStore.load(tmp_path)


@pytest.mark.parametrize("mmap", [True, False])
def test_rows_past_the_committed_ones_are_ignored(tmp_path, mmap):
    SequenceStore.from_sequences(_seqs(3)).save(tmp_path)
    data = tmp_path / files.read_json(tmp_path / files.MANIFEST, "manifest")["data"]
    with open(data, "ab") as fh:
        fh.write(np.ones((5, 2), np.float32).tobytes())
    store = SequenceStore.load(tmp_path, mmap=mmap)
    _same(store, _seqs(3))
    assert store.resident_limit == ((1 << 30) if mmap else None)  # only a memory map has pages to drop


def test_parquet_and_hugging_face_pass_dtype_and_path_on(tmp_path):
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    datasets = pytest.importorskip("datasets")
    seqs = [np.arange(t, dtype=np.float32) for t in (3, 1, 2)]
    pq.write_table(pa.table({"x": pa.array([s.tolist() for s in seqs], pa.list_(pa.float32()))}), tmp_path / "x.parquet")
    for path in (None, tmp_path / "p"):
        store = SequenceStore.from_parquet(tmp_path / "x.parquet", "x", dtype=np.float64, path=path)
        assert store.dtype == np.float64 and store.lengths.tolist() == [3, 1, 2]
    assert SequenceStore.load(tmp_path / "p").dtype == np.float64
    ds = datasets.Dataset.from_dict({"x": [s.tolist() for s in seqs]})
    store = SequenceStore.from_hf(ds, "x", dtype=np.float64, path=tmp_path / "h")
    assert (tmp_path / "h" / files.MANIFEST).is_file() and store.dtype == np.float64
    assert SequenceStore.load(tmp_path / "h").lengths.tolist() == [3, 1, 2]


# ------------------------------------------------------------------ indexing


def test_index_forms_and_their_refusals():
    torch = pytest.importorskip("torch")
    store = SequenceStore.from_sequences([np.zeros((2, 1)), np.ones((1, 1)), np.full((3, 1), 2.0)])
    one = store[torch.tensor([1])]  # a one-element tensor is a list of one index, not an integer
    assert isinstance(one, list) and len(one) == 1 and one[0].tolist() == [[1.0]]
    assert store[torch.tensor(2)].shape == (3, 1)
    want = "Expected a sequence index to be an integer, a slice or a list of integers, got "
    for bad, got in [(np.array([True, False]), "the bool array([ True, False])"),
                     (torch.tensor([True]), "the bool tensor([True])"),
                     (np.bool_(True), "the bool " + repr(np.bool_(True))),
                     (5.0, "float 5.0"),
                     ("1", "str '1'")]:
        with pytest.raises(TypeError) as err:
            store[bad]
        assert str(err.value) == want + got + "."


def test_a_killed_writer_loses_nothing_it_appended(tmp_path):
    import subprocess
    import sys
    code = ("import os, sys, numpy as np\n"
            "from fastseq.bptt.store_writer import SequenceStoreWriter\n"
            "w = SequenceStoreWriter(sys.argv[1], 'w')\n"
            "for t in (1, 2, 3):\n"
            "    w.append(np.full((t, 2), t, np.float32))\n"
            "w.extend(np.zeros((3, 2), np.float32), [1, 2])\n"
            "os._exit(0)  # no flush, no close: as if killed\n")
    # -P and another folder: the child imports the fastseq under test, not a source tree beside it
    done = subprocess.run([sys.executable, "-P", "-c", code, str(tmp_path)], cwd=tmp_path, timeout=120,
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    with SequenceStoreWriter(tmp_path, "a") as writer:
        assert writer.count == 5
    assert SequenceStore.load(tmp_path, verify=True).lengths.tolist() == [1, 2, 3, 1, 2]


def test_extend_vouches_for_each_sequence_on_its_own(tmp_path):
    writer = SequenceStoreWriter(tmp_path, "w", dtype=np.float32)
    writer.extend(np.arange(12, dtype=np.float32).reshape(6, 2), [1, 2, 3])
    writer.close()
    data, _ = _files(tmp_path)
    with open(data, "r+b") as fh:
        fh.truncate(3 * 8)  # the first two sequences reached the disk
    with SequenceStoreWriter(tmp_path, "a") as writer:
        assert writer.count == 2
    store = SequenceStore.load(tmp_path, verify=True)  # the resumed checksum is the first two's
    assert store.lengths.tolist() == [1, 2] and store[1].tolist() == [[2.0, 3.0], [4.0, 5.0]]


# ------------------------------------------------------------------ gathering rows


_RANGE = "Expected rows to hold row ids in [-1, 3) (data has 3 rows; -1 for a zero row), got 3 at flat position 1."


def test_rows_of_zero_width_are_still_range_checked():
    from fastseq.bptt.store import gather_rows
    data = np.zeros((3, 0), np.float32)
    assert gather_rows(data, np.array([0, 2, -1])).shape == (3, 0)
    with pytest.raises(ValueError) as err:
        gather_rows(data, np.array([0, 3]))
    assert str(err.value) == _RANGE
    views = SequenceStore.coerce([np.zeros((2, 0), np.float32), np.zeros((1, 0), np.float32)], copy=False)
    assert type(views).__name__ == "_SequenceViews"
    assert views.gather(np.array([[0], [2]])).shape == (2, 1, 0)
    with pytest.raises(ValueError) as err:
        views.gather(np.array([[1], [3]]))
    assert str(err.value) == _RANGE


def test_gather_rows_takes_other_layouts_and_row_types():
    torch = pytest.importorskip("torch")
    from fastseq.bptt.store import gather_rows, gather_rows_reference
    data = np.arange(24, dtype=np.float32).reshape(4, 6)
    rows = np.array([[3, -1], [0, 2]], np.int32)
    want = gather_rows_reference(data, rows)
    np.testing.assert_array_equal(gather_rows(data, rows), want)
    np.testing.assert_array_equal(gather_rows(data[:, ::2], rows), gather_rows_reference(data[:, ::2], rows))
    np.testing.assert_array_equal(gather_rows(torch.from_numpy(data), rows), want)
    np.testing.assert_array_equal(gather_rows(data.tolist(), rows), want.astype(np.float64))


def test_gather_fills_the_buffer_given():
    store = SequenceStore.from_sequences(_seqs(3))
    rows = np.array([[0, 2], [1, -1]])
    buf = np.full((2, 2, 2), np.nan, np.float32)
    got = store.gather(rows, buf)
    assert got is buf
    np.testing.assert_array_equal(buf, store.gather(rows))


def test_coerce_copies_unless_told_and_names_its_argument():
    arrays = [np.zeros((2, 1), np.float32), np.ones((1, 1), np.float32)]
    copied, viewed = SequenceStore.coerce(arrays), SequenceStore.coerce(arrays, copy=False)
    arrays[0][1] = 5.0
    assert copied.gather(np.array([1])).ravel().tolist() == [0.0]
    assert viewed.gather(np.array([1])).ravel().tolist() == [5.0]
    with pytest.raises(ValueError, match=r"^Expected every item of sequences to be non-empty, got length 0 at "
                                         r"sequences\[1\]\.$"):
        SequenceStore.coerce([np.zeros((2, 1)), np.zeros((0, 1))])
    with pytest.raises(ValueError, match=r"^Expected sequences\[1\] to have a time axis"):
        SequenceStore.from_sequences([np.zeros((2, 1)), np.array(5.0)])


def test_an_empty_store_is_float32_with_int64_lengths():
    empty = SequenceStore.from_sequences([])
    assert empty.dtype == np.float32 and empty.lengths.dtype == np.int64 and len(empty) == 0
    assert SequenceStore.from_sequences([], dtype=np.float64).dtype == np.float64
