"""SequenceStore and the native row gather against the NumPy twin; saving over a store."""
import json
import multiprocessing
import os
import random
import signal
import sys
import time

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from _children import interruptible, killed_at_end, signal_and_wait, stopped
from fastseq.bptt.store import SequenceStore, _touched_bytes, gather_rows, gather_rows_reference

dtypes = st.sampled_from([np.float32, np.float64, np.int64, np.uint8, np.int16])


@settings(max_examples=150, deadline=None)
@given(st.integers(0, 30), st.integers(0, 5), dtypes, st.data())
def test_native_gather_matches_twin(n_rows, width, dtype, data):
    table = data.draw(hnp.arrays(dtype, (n_rows, width)))
    lo = -1
    hi = n_rows - 1
    rows = data.draw(hnp.arrays(np.int64, data.draw(st.tuples(st.integers(0, 6), st.integers(0, 6))),
                                elements=st.integers(lo, max(hi, lo))))
    if n_rows == 0:
        rows = np.full_like(rows, -1)
    got = gather_rows(table, rows)
    want = gather_rows_reference(table, rows)
    np.testing.assert_array_equal(got.view(np.uint8), want.view(np.uint8))


def test_gather_strided_and_memmap(tmp_path):
    base = np.arange(60, dtype=np.float32).reshape(10, 6)
    strided = base[::2, :3]  # rows not adjacent, each row contiguous
    rows = np.array([[4, -1], [0, 2]])
    np.testing.assert_array_equal(gather_rows(strided, rows), gather_rows_reference(strided, rows))
    store = SequenceStore.from_sequences([base[:4], base[4:]])
    store.save(tmp_path / "s")
    mm = SequenceStore.load(tmp_path / "s")
    assert mm._map is not None and not mm.data.flags.writeable
    np.testing.assert_array_equal(mm.gather(rows), base[np.maximum(rows, 0)] * (rows[..., None] >= 0))
    np.testing.assert_array_equal(mm.lengths, [4, 6])


def test_gather_out_buffer_is_filled_and_checked():
    table = np.arange(12.0).reshape(6, 2)
    out = np.empty((2, 2), np.float64)
    assert gather_rows(table, np.array([5, 0]), out) is out
    np.testing.assert_array_equal(out, [[10, 11], [0, 1]])
    with pytest.raises(ValueError, match="Expected out"):
        gather_rows(table, np.array([5, 0]), np.empty((2, 2), np.float32))


def test_gather_out_of_range_raises():
    with pytest.raises(ValueError, match=r"^Expected rows to hold row ids in \[-1, 3\) \(data has 3 rows; -1 for a zero "
                                         r"row\), "
                                         r"got 3 at flat position 1\.$"):
        gather_rows(np.zeros((3, 2)), np.array([0, 3]))


def test_store_from_tensors_and_errors():
    seqs = [torch.ones(3, 2), torch.zeros(1, 2)]
    store = SequenceStore.from_sequences(seqs)
    assert store.lengths.tolist() == [3, 1] and store.dtype == np.float32
    np.testing.assert_array_equal(store[0], np.ones((3, 2)))
    store.data[0, 0] = 7  # the store owns a copy
    assert seqs[0][0, 0] == 1
    with pytest.raises(ValueError, match="feature shape"):
        SequenceStore.from_sequences([np.ones((2, 2)), np.ones((2, 3))])
    with pytest.raises(ValueError, match="non-empty"):
        SequenceStore.from_sequences([np.ones((2, 2)), np.ones((0, 2))])
    with pytest.raises(ValueError, match="sum\\(lengths\\)"):
        SequenceStore(np.zeros((5, 2)), [2, 2])
    with pytest.raises(FileNotFoundError, match="store.json"):
        SequenceStore.load("/nonexistent/store")


def test_load_refuses_pickled_objects(tmp_path):
    (tmp_path / "s").mkdir()
    np.save(tmp_path / "s" / "data.npy", np.array([object()], dtype=object), allow_pickle=True)
    np.save(tmp_path / "s" / "lengths.npy", np.array([1]))
    with pytest.raises(ValueError, match="pickle"):
        SequenceStore.load(tmp_path / "s", mmap=False)


def _versions(rows):
    """Three stores: 1 has 0's row count with other lengths, 2 another row count."""
    lengths = [[rows // 2, rows - rows // 2], [rows // 4, rows - rows // 4], [rows // 3, rows // 3, rows - 2 * (rows // 3) + 100]]
    return [SequenceStore(np.full((sum(l), 4), k, np.float32), l) for k, l in enumerate(lengths)]


def _check_one_version(path, versions):
    store = SequenceStore.load(path, verify=True)
    k = int(store.data[0, 0])
    assert store.lengths.tolist() == versions[k].lengths.tolist()
    assert np.all(store.data == k)
    return k


def _save_forever(path, rows, ready):
    interruptible()
    versions = _versions(rows)
    ready.set()
    i = 0
    while not stopped():
        versions[1 + i % 2].save(path)
        i += 1
    raise SystemExit(130)


@pytest.mark.skipif(sys.platform == "win32", reason="needs fork and POSIX signals")
def test_save_killed_at_random_moments_leaves_one_whole_store(tmp_path):
    rows, rng, seen = 1 << 18, random.Random(0), set()
    versions = _versions(rows)
    ctx = multiprocessing.get_context("fork")  # no re-import per child: many kills stay fast
    for trial in range(12):
        path = tmp_path / f"s{trial % 3}"
        versions[0].save(path) if trial < 3 else None
        ready = ctx.Event()
        with killed_at_end(_save_forever, (path, rows, ready)) as child:
            assert ready.wait(60)
            time.sleep(rng.uniform(0, 0.15))
            assert signal_and_wait(child, signal.SIGKILL if trial % 2 else signal.SIGINT) != 0
        seen.add(_check_one_version(path, versions))
    assert len(seen) >= 2  # the kills landed at different moments
    # each killed save may leave its data, its lengths and a half-written manifest behind ...
    leftovers = {p.name for p in (tmp_path / "s0").iterdir()} - {"store.json", ".lock"}
    assert len(leftovers) <= 2 + 3 * 4
    # ... and the next commit removes them all: the folder does not fill up
    versions[0].save(tmp_path / "s0")
    manifest = json.loads((tmp_path / "s0" / "store.json").read_text())
    assert {p.name for p in (tmp_path / "s0").iterdir()} == {"store.json", ".lock", manifest["data"], manifest["lengths"]}


def test_loader_refuses_a_mismatched_pair(tmp_path):
    a, b = _versions(64)[:2]  # the same row count, different lengths
    a.save(tmp_path / "a")
    b.save(tmp_path / "b")
    manifest = json.loads((tmp_path / "a" / "store.json").read_text())
    other = json.loads((tmp_path / "b" / "store.json").read_text())["lengths"]
    os.replace(tmp_path / "b" / other, tmp_path / "a" / manifest["lengths"])  # b's lengths under a's name
    with pytest.raises(ValueError, match="refusing to pair"):
        SequenceStore.load(tmp_path / "a")
    b.save(tmp_path / "a")  # saving again repairs it
    assert SequenceStore.load(tmp_path / "a").lengths.tolist() == b.lengths.tolist()


def test_loader_refuses_short_or_changed_data(tmp_path):
    store = SequenceStore(np.arange(40, dtype=np.float64).reshape(10, 4), [3, 7])
    store.save(tmp_path)
    data = tmp_path / json.loads((tmp_path / "store.json").read_text())["data"]
    raw = bytearray(data.read_bytes())
    raw[5] ^= 1
    data.write_bytes(raw)
    SequenceStore.load(tmp_path)  # sizes agree: only the full check sees a changed byte
    with pytest.raises(ValueError, match="CRC-32"):
        SequenceStore.load(tmp_path, verify=True)
    data.write_bytes(raw[:-8])
    with pytest.raises(ValueError, match=r"Expected data-.*320 bytes\), got 312 bytes"):
        SequenceStore.load(tmp_path)
    (tmp_path / "store.json").write_text("{")
    with pytest.raises(ValueError, match="cannot be read"):
        SequenceStore.load(tmp_path)


def test_save_roundtrip_in_ram_empty_and_legacy(tmp_path):
    store = SequenceStore.from_sequences([np.ones((3, 2, 2), np.int16), np.zeros((1, 2, 2), np.int16)])
    store.save(tmp_path / "s")
    for mmap in (True, False):
        back = SequenceStore.load(tmp_path / "s", mmap=mmap)
        assert back.dtype == np.int16 and back.feature_shape == (2, 2)
        np.testing.assert_array_equal(back.data, store.data)
    SequenceStore.from_sequences([]).save(tmp_path / "e")
    assert len(SequenceStore.load(tmp_path / "e")) == 0
    (tmp_path / "old").mkdir()  # a store saved before manifests still loads
    np.save(tmp_path / "old" / "data.npy", store.data)
    np.save(tmp_path / "old" / "lengths.npy", store.lengths)
    np.testing.assert_array_equal(SequenceStore.load(tmp_path / "old").lengths, [3, 1])
    SequenceStore.load(tmp_path / "old").save(tmp_path / "old")  # converts it; the old pair goes
    assert not (tmp_path / "old" / "data.npy").exists()
    np.testing.assert_array_equal(SequenceStore.load(tmp_path / "old").data, store.data)


@settings(max_examples=200, deadline=None)
@given(st.integers(1, 3000), st.data())
def test_touched_bytes_bounds_the_pages_a_gather_touches(row_bytes, data):
    rows = data.draw(hnp.arrays(np.int64, data.draw(st.tuples(st.integers(1, 6), st.integers(1, 5))),
                                elements=st.integers(-1, 40)))
    page = 4096
    hit = rows[rows >= 0]
    pages = set()
    for r in hit.tolist():
        pages.update(range(r * row_bytes // page, ((r + 1) * row_bytes - 1) // page + 1))
    assert _touched_bytes(rows, row_bytes) >= len(pages) * page
    if rows.shape[0] > 1 and np.all(rows >= 0) and np.all(np.diff(rows, axis=0) == 1):
        assert _touched_bytes(rows, row_bytes) <= rows.size * row_bytes + 2 * page * rows.shape[1]


def _rss_file_kib():
    for line in open("/proc/self/status"):
        if line.startswith("RssFile:"):
            return int(line.split()[1])
    pytest.skip("no RssFile in /proc/self/status")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/status")
def test_memory_mapped_gathers_keep_resident_pages_bounded(tmp_path):
    SequenceStore(np.ones((1 << 17, 64), np.float32), [1 << 16, 1 << 16]).save(tmp_path)  # 32 MiB
    # 256 windows of 256 steps over 2 slots, each slot walking through one sequence
    windows = np.arange(1 << 16).reshape(256, 256, 1) + np.array([0, 1 << 16])
    for limit, most in ((4 << 20, 12 << 10), (None, 24 << 10)):
        store = SequenceStore.load(tmp_path, resident_limit=limit)
        store.release()
        before = _rss_file_kib()
        peak = 0
        for rows in windows:
            store.gather(rows)
            peak = max(peak, _rss_file_kib() - before)
        if limit is None:
            assert peak > most  # without a limit every page read stays mapped (32 MiB)
        else:
            assert peak < most


@pytest.mark.parametrize("field, value, message", [
    ("feature_shape", [2 ** 63], r"to hold the 4 committed rows \(\d+ bytes\), got \d+ bytes"),
    ("feature_shape", [2 ** 40, 2 ** 40], r"to hold the 4 committed rows \(\d+ bytes\), got \d+ bytes"),
    ("feature_shape", [-2], r"to hold counts and a feature shape >= 0, got rows 4, sequences 2, feature_shape \[-2\]"),
    ("rows", -4, r"to hold counts and a feature shape >= 0, got rows -4"),
    ("sequences", -1, r"to hold counts and a feature shape >= 0, got rows 4, sequences -1"),
])
def test_a_corrupt_manifest_is_a_clear_error_not_an_overflow(tmp_path, field, value, message):
    SequenceStore.from_sequences([np.ones((1, 2), np.float32), np.ones((3, 2), np.float32)]).save(tmp_path / "s")
    path = tmp_path / "s" / "store.json"
    manifest = json.loads(path.read_text())
    manifest[field] = value
    path.write_text(json.dumps(manifest))
    for verify in (False, True):
        with pytest.raises(ValueError, match=message):
            SequenceStore.load(tmp_path / "s", verify=verify)
