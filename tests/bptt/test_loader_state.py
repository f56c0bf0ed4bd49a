"""The loader's state_dict per window: the lengths' checksum computed once per store and epoch,
and set_shard for a loader built before its processes existed."""
from __future__ import annotations

import zlib

import numpy as np
import pytest

import fastseq.bptt.loader as loader_module
from fastseq.bptt import SequenceStore, SlotSwapLoader

LENGTHS = (23, 7, 40, 12, 31, 5, 18)


def store(lengths=LENGTHS) -> SequenceStore:
    return SequenceStore.from_sequences([np.full((n, 2), i, np.float32) for i, n in enumerate(lengths)])


def crc(lengths) -> int:
    return zlib.crc32(np.asarray(lengths, dtype="<i8").tobytes())


def make(**kw) -> SlotSwapLoader:
    return SlotSwapLoader(store(), None, batch_size=2, bptt=4, shuffle=True, seed=0, **kw)


@pytest.fixture
def identity_calls(monkeypatch):
    calls = []
    compute = loader_module._lengths_identity

    def counted(lengths):
        calls.append(1)
        return compute(lengths)

    monkeypatch.setattr(loader_module, "_lengths_identity", counted)
    return calls


def test_the_cached_checksum_is_the_recomputed_one():
    loader = make()
    config = loader.state_dict()["config"]
    assert (config["sequences"], config["lengths_crc32"]) == (len(LENGTHS), crc(LENGTHS))
    for _ in loader:
        assert loader.state_dict()["config"]["lengths_crc32"] == crc(LENGTHS)


def test_a_window_snapshot_does_not_recompute_the_checksum(identity_calls):
    loader = make()
    windows = 0
    for _ in range(2):
        for _ in loader:
            loader.state_dict()
            windows += 1
    assert windows > 20
    assert len(identity_calls) <= 2 * 2  # at most at the start and at the end of each epoch


def test_the_checksum_follows_a_new_store_and_lengths_edited_between_epochs(identity_calls):
    loader = make()
    before = loader.state_dict()["config"]["lengths_crc32"]
    other = (5, 7, 40, 12, 31, 23, 18)  # the same count and sum, another order
    loader.inputs = store(other)
    assert before == crc(LENGTHS) and loader.state_dict()["config"]["lengths_crc32"] == crc(other)

    loader.inputs.lengths[[0, 5]] = loader.inputs.lengths[[5, 0]]  # back to LENGTHS, in place
    list(loader)
    assert loader.state_dict()["config"]["lengths_crc32"] == crc(LENGTHS)


def test_a_snapshot_is_a_fresh_copy():
    loader = make()
    it = iter(loader)
    next(it)
    state = loader.state_dict()
    state["config"]["lengths_crc32"] = 0
    assert loader.state_dict()["config"]["lengths_crc32"] == crc(LENGTHS)


def test_a_re_sharded_epoch_is_encoded_once_and_copied():
    saved = make(rank=0, world_size=2)
    it = iter(saved)
    for _ in range(3):
        next(it)
    loader = make()
    loader.load_state_dict(saved.state_dict())
    first = loader.state_dict()["resumed"]
    assert first == loader_module._remaining_json(loader._resumed[1])
    first["sequence"].append(99)
    again = loader.state_dict()["resumed"]
    assert 99 not in again["sequence"] and again["done"] is loader.state_dict()["resumed"]["done"]


def test_set_shard_takes_the_shard_from_the_next_epoch():
    loader = make(world_size="auto")  # no process group: one process, until told
    assert loader.auto_shard and (loader.rank, loader.world_size) == (0, 1)
    loader.set_shard(1, 2)
    expected = make(rank=1, world_size=2)
    assert (loader.rank, loader.world_size) == (1, 2)
    assert [w.sequence.tolist() for w in loader] == [w.sequence.tolist() for w in expected]
    assert not make().auto_shard and not make(world_size=2, rank=0).auto_shard


def test_set_shard_refuses_mid_epoch_and_a_bad_shard():
    loader = make()
    it = iter(loader)
    next(it)
    with pytest.raises(ValueError, match="set_shard between epochs, got the loader at window 1 of epoch 0"):
        loader.set_shard(0, 2)
    with pytest.raises(ValueError, match="rank"):
        make().set_shard(2, 2)


@pytest.mark.parametrize("missing", [(), ("wrap_around",), ("wrap_around", "tail")])
def test_a_state_from_before_world_size_and_newer_settings_loads_as_one_process(missing):
    """A state holding only epoch, window and config (no world_size, no resumed), its config
    without settings added later, loads with those settings' defaults on one process and
    yields exactly the windows that were still to come."""
    first = make()
    it = iter(first)
    for _ in range(3):
        next(it)
    state = first.state_dict()
    rest = [w.schedule.rows.tolist() for w in it]
    old = {"epoch": state["epoch"], "window": state["window"],
           "config": {k: v for k, v in state["config"].items() if k not in missing}}
    again = make()
    again.load_state_dict(old)
    assert again.state_dict()["world_size"] == 1
    assert [w.schedule.rows.tolist() for w in again] == rest


@pytest.mark.parametrize("batch_size, wrap_around, targets, slots, row_bytes", [
    (5, False, True, 3, 12 + 16), (5, True, True, 5, 12 + 16), (5, False, False, 3, 12), (1, False, True, 1, 12 + 16)])
def test_the_memory_guard_is_asked_for_the_windows_bytes_before_anything_is_made(
        monkeypatch, batch_size, wrap_around, targets, slots, row_bytes):
    """Rows (float32 x 3 in, float64 x 2 out), two mask bytes and two int64 ids per (step, slot),
    for each of the ring's buffers and the window in use; slots are capped by the sequences
    unless wrapping around refills them."""
    asked = []
    monkeypatch.setattr(loader_module, "check_fits", lambda what, nbytes: asked.append((what, nbytes)))
    xs = [np.zeros((n, 3), np.float32) for n in (4, 6, 2)]
    ys = [np.zeros((n, 2), np.float64) for n in (4, 6, 2)] if targets else None
    SlotSwapLoader(xs, ys, batch_size=batch_size, bptt=4, buffers=3, wrap_around=wrap_around)
    assert asked == [(f"a window of bptt=4 x batch_size={slots} rows", 4 * slots * (row_bytes + 2 + 8 + 8) * 4)]
