"""SequenceStoreWriter: stores built on disk from iterators, committed atomically, resumed after a crash."""
import json
import multiprocessing
import random
import signal
import sys
import time

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from _children import interruptible, killed_at_end, signal_and_wait
from fastseq.bptt.store import SequenceStore, SequenceStoreWriter


def _sequences(n, seed=0, width=8):
    rng = np.random.default_rng(seed)
    return [rng.standard_normal((int(t), width)).astype(np.float32) for t in rng.integers(1, 400, n)]


def _assert_store_equal(store, sequences):
    assert store.lengths.tolist() == [len(s) for s in sequences]
    np.testing.assert_array_equal(store.data, np.concatenate(sequences) if sequences else store.data)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(1, 9), max_size=12), st.lists(st.sampled_from(["commit", "crash", "torn"]), max_size=6),
       st.data())
def test_sessions_that_crash_commit_or_tear_resume_to_the_same_store(tmp_path_factory, lengths, endings, data):
    path = tmp_path_factory.mktemp("w")
    seqs = [np.arange(t * 3, dtype=np.int32).reshape(t, 3) + 100 * i for i, t in enumerate(lengths)]
    committed = 0
    for ending in endings:
        writer = SequenceStoreWriter(path, "a")
        assert writer.count >= committed
        stop = data.draw(st.integers(writer.count, len(seqs)))
        for s in seqs[writer.count:stop]:
            writer.append(s)
        if ending == "commit":
            writer.commit()
            committed = stop
            _assert_store_equal(SequenceStore.load(path, verify=True), seqs[:stop])
            continue
        journal = json.loads((path / "append.json").read_text()) if (path / "append.json").exists() else None
        writer.close()  # a crash: nothing committed
        if ending == "torn" and journal is not None:
            with open(path / journal["data"], "ab") as fh:
                fh.write(b"\x07" * 5)  # rows no record vouches for
            with open(path / journal["log"], "ab") as fh:
                fh.write(b"\x01\x02\x03")  # half a record
        if committed or (path / "store.json").exists():
            _assert_store_equal(SequenceStore.load(path, verify=True), seqs[:committed])
    with SequenceStoreWriter(path, "a") as writer:
        for s in seqs[writer.count:]:
            writer.append(s)
    _assert_store_equal(SequenceStore.load(path, verify=True), seqs)


def test_write_mode_replaces_only_on_commit_and_appends_extend(tmp_path):
    old, new = _sequences(3, 1), _sequences(4, 2)
    SequenceStore.from_sequences(old).save(tmp_path)
    writer = SequenceStoreWriter(tmp_path, "w")
    assert writer.count == 0
    for s in new[:2]:
        writer.append(torch.from_numpy(s))  # tensors are accepted
    _assert_store_equal(SequenceStore.load(tmp_path), old)  # not committed yet
    writer.close()
    writer = SequenceStoreWriter(tmp_path, "w")  # discards the uncommitted build
    for s in new:
        writer.append(s)
    writer.commit()
    _assert_store_equal(SequenceStore.load(tmp_path), new)
    with SequenceStoreWriter(tmp_path, "a") as writer:
        assert writer.count == 4
        writer.append(old[0].astype(np.float16))  # a cast within the kind
    _assert_store_equal(SequenceStore.load(tmp_path, verify=True), new + [old[0].astype(np.float16)])
    names = {p.name for p in tmp_path.iterdir()}
    assert names == {"store.json", ".lock", json.loads((tmp_path / "store.json").read_text())["data"],
                     json.loads((tmp_path / "store.json").read_text())["lengths"]}


def test_writer_errors(tmp_path):
    writer = SequenceStoreWriter(tmp_path / "a", "w")
    writer.append(np.zeros((2, 3), np.float32))
    with pytest.raises(ValueError, match=r"feature shape \(3,\), got \(4,\)"):
        writer.append(np.zeros((2, 4), np.float32))
    with pytest.raises(TypeError, match="castable to float32, got complex128"):
        writer.append(np.zeros((2, 3), complex))
    with pytest.raises(ValueError, match="non-empty"):
        writer.append(np.zeros((0, 3), np.float32))
    with pytest.raises(RuntimeError, match="other writer"):
        SequenceStoreWriter(tmp_path / "a", "a")
    writer.commit()
    with pytest.raises(ValueError, match="already committed"):
        writer.append(np.zeros((2, 3), np.float32))
    with pytest.raises(ValueError, match="mode"):
        SequenceStoreWriter(tmp_path / "a", "x")
    (tmp_path / "old").mkdir()
    np.save(tmp_path / "old" / "data.npy", np.zeros((2, 3)))
    np.save(tmp_path / "old" / "lengths.npy", np.array([2]))
    with pytest.raises(ValueError, match="converts it"):
        SequenceStoreWriter(tmp_path / "old", "a")


def _build(path, n, ready):
    interruptible()

    def generate():
        for i, s in enumerate(_sequences(n, 3)):
            if i == 5:
                ready.set()
            yield s
    SequenceStore.from_iterable(generate(), path, resume=True)


@pytest.mark.skipif(sys.platform == "win32", reason="needs fork and POSIX signals")
def test_build_killed_at_random_moments_resumes_to_the_same_store(tmp_path):
    n, rng = 5000, random.Random(1)
    old = _sequences(2, 9)
    SequenceStore.from_sequences(old).save(tmp_path)
    ctx = multiprocessing.get_context("fork")
    resumed = []
    for trial in range(6):
        ready = ctx.Event()
        with killed_at_end(_build, (tmp_path, n, ready)) as child:
            assert ready.wait(60), f"the builder never started appending (exit code {child.exitcode})"
            time.sleep(rng.uniform(0, 0.05))
            signal_and_wait(child, signal.SIGKILL if trial % 2 else signal.SIGINT)
        store = SequenceStore.load(tmp_path)
        if child.exitcode == 0 or len(store) == n:  # finished, or killed after its commit
            break
        _assert_store_equal(store, old)  # the old store loads until the commit
        assert SequenceStoreWriter.building(tmp_path)
        with SequenceStoreWriter(tmp_path, "a") as probe:
            resumed.append(probe.count)
            probe.close()
    store = SequenceStore.from_iterable(iter(_sequences(n, 3)), tmp_path, resume=True)
    _assert_store_equal(store, _sequences(n, 3))
    assert resumed and max(resumed) > 5  # the kills landed while sequences were being appended
    assert not SequenceStoreWriter.building(tmp_path)


def test_extend_writes_what_appending_each_sequence_writes(tmp_path):
    seqs = _sequences(9, seed=3, width=2)
    with SequenceStoreWriter(tmp_path / "a", "w") as writer:
        for s in seqs:
            writer.append(s)
    with SequenceStoreWriter(tmp_path / "b", "w") as writer:
        writer.extend(np.concatenate(seqs[:4]), [len(s) for s in seqs[:4]])
        writer.extend(torch.from_numpy(np.concatenate(seqs[4:])), np.array([len(s) for s in seqs[4:]]))
    manifests = [json.loads((tmp_path / n / "store.json").read_text()) for n in "ab"]
    assert manifests[0]["data_crc32"] == manifests[1]["data_crc32"]
    _assert_store_equal(SequenceStore.load(tmp_path / "b", verify=True), seqs)


def test_extend_is_resumable_per_sequence_and_checks_lengths(tmp_path):
    seqs = _sequences(6, seed=4, width=3)
    writer = SequenceStoreWriter(tmp_path, "w")
    writer.extend(np.concatenate(seqs), [len(s) for s in seqs])
    with pytest.raises(ValueError, match=r"lengths to sum to the \d+ rows of rows, got sum"):
        writer.extend(seqs[0], [len(seqs[0]) + 1])
    writer.close()  # died before the commit: the journal vouches for every sequence
    with SequenceStoreWriter(tmp_path, "a") as writer:
        assert writer.count == len(seqs)
    _assert_store_equal(SequenceStore.load(tmp_path, verify=True), seqs)
