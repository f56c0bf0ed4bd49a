"""SlotSwapLoader's smaller rules, with data that tells a wrong answer from the right one:
the state of an epoch re-sharded by a resume (saved and resumed again), and tail_order's edges."""
from __future__ import annotations

import dataclasses
import itertools
import threading
import time

import numpy as np
import pytest
import torch

import fastseq.bptt.loader as loader_module
from fastseq.bptt import SequenceStore, SlotSwapLoader
from fastseq.bptt.loader import tail_order

LENGTHS = (23, 7, 40, 12, 31, 5, 18, 9)


def make(**kw) -> SlotSwapLoader:
    data = SequenceStore.from_sequences([np.full((n, 2), i, np.float32) for i, n in enumerate(LENGTHS)])
    return SlotSwapLoader(data, None, batch_size=2, bptt=4, shuffle=True, seed=0, **kw)


def windows(it, n=None):
    """(index, sequence ids, reset, valid) of the next n windows (all when n is None)."""
    out = []
    for w in it:
        out.append((w.index, w.sequence.tolist(), w.reset.tolist(), w.valid.tolist()))
        if n is not None and len(out) == n:
            break
    return out


def test_a_re_sharded_epoch_saved_and_resumed_again_goes_on_where_it_was():
    """Two processes stop after 5 windows; one process resumes (the rest is re-sharded), runs
    2 windows and saves; a fresh loader resumed from that state yields exactly the windows the
    first one still had to come, on every count of windows, and its state carries what was left."""
    two = make(rank=0, world_size=2)
    it = iter(two)
    windows(it, 5)
    one = make()
    one.load_state_dict(two.state_dict())
    it = iter(one)
    windows(it, 2)
    state, saved_left = one.state_dict(), one._resumed[1]
    assert state["resumed"] is not None and state["world_size"] == 1
    rest = windows(it)
    again = make()
    again.load_state_dict(state)
    left = again._resumed[1]
    assert windows(iter(again)) == rest
    assert left.done.dtype == bool and left.done.size == len(LENGTHS)
    assert 0 < left.done.sum() < len(LENGTHS)  # some finished before the first save, some not
    for name in ("sequence", "position", "rank", "slot"):
        np.testing.assert_array_equal(getattr(left, name), getattr(saved_left, name))
        assert getattr(left, name).dtype == np.int64
    np.testing.assert_array_equal(left.done, saved_left.done)


@pytest.mark.parametrize("size", [9, 16, 17])  # done bits fill one byte, two bytes, and spill into a third
def test_remaining_json_round_trips_done_bits_of_any_count(size):
    rng = np.random.default_rng(size)
    left = loader_module.Remaining(rng.random(size) < 0.5, *(rng.integers(0, 50, 3) for _ in range(4)))
    back = loader_module._remaining_from_json(loader_module._remaining_json(left))
    np.testing.assert_array_equal(back.done, left.done)
    assert back.done.dtype == bool and back.done.size == size
    for name in ("sequence", "position", "rank", "slot"):
        np.testing.assert_array_equal(getattr(back, name), getattr(left, name))


LENS = np.array([1, 9, 2, 3, 7])


def test_tail_order_none_keeps_any_order():
    order = np.array([4, 0, 3, 1, 2])
    got = tail_order(order, LENS, 2, "none")
    assert got.tolist() == order.tolist() and got is not order and got.dtype == np.int64


@pytest.mark.parametrize("tail", ["longest_first", "packed"])
def test_tail_order_reorders_two_sequences(tail):
    # the shorter first and one slot: both policies admit the longer one first
    assert tail_order(np.array([0, 1]), np.array([1, 9]), 1, tail).tolist() == [1, 0]


@pytest.mark.parametrize("tail", ["none", "longest_first", "packed"])
def test_tail_order_of_one_or_no_sequence_is_that_order(tail):
    assert tail_order(np.array([3]), LENS, 2, tail).tolist() == [3]
    empty = tail_order(np.array([], np.int64), LENS, 2, tail)
    assert empty.size == 0 and empty.dtype == np.int64


@pytest.mark.parametrize("tail", ["none", "longest_first", "packed"])
def test_tail_order_gives_int64_for_any_integer_order(tail):
    for order in ([2, 0, 1], np.array([2, 0, 1], np.int32), np.array([2], np.uint8)):
        assert tail_order(order, LENS, 1, tail).dtype == np.int64


# ---------------------------------------------------------------- the data-on-device path and prefetching


def _same_window(a, b):
    assert a.index == b.index and a.total_real_steps == b.total_real_steps
    for name in ("inputs", "reset", "valid", "sequence", "slot_map"):
        assert torch.equal(getattr(a, name), getattr(b, name)), name
    assert a.schedule.index == b.schedule.index and np.array_equal(a.schedule.rows, b.schedule.rows)
    assert (a.targets is None) == (b.targets is None)
    if a.targets is not None:
        assert torch.equal(a.targets, b.targets)
    assert type(a.plan) is type(b.plan)
    if a.plan is not None:
        for f in dataclasses.fields(a.plan):
            x, y = getattr(a.plan, f.name), getattr(b.plan, f.name)
            if isinstance(x, tuple) and x and isinstance(x[0], torch.Tensor):  # DensePlan.sources
                assert len(x) == len(y) and all(torch.equal(p, q) for p, q in zip(x, y)), f.name
            else:
                assert torch.equal(x, y) if isinstance(x, torch.Tensor) else x == y, f.name


def _sequences(lengths=LENGTHS, width=2):
    return [np.arange(n * width, dtype=np.float32).reshape(n, width) + 100 * i for i, n in enumerate(lengths)]


@pytest.mark.parametrize("plan", ["packed", "dense", None])
@pytest.mark.parametrize("with_targets", [True, False])
def test_data_on_device_windows_equal_the_host_windows_field_by_field(plan, with_targets):
    xs = _sequences((3, 2, 40, 5, 1, 9))  # one long sequence, kept in order: the other slots idle
    ys = [2 * x for x in xs] if with_targets else None
    kw = dict(batch_size=3, bptt=4, tail="none", compact=False, plan=plan)
    host, device = SlotSwapLoader(xs, ys, **kw), SlotSwapLoader(xs, ys, data_on_device=True, **kw)
    count = idle = 0
    for a, b in itertools.zip_longest(host, device):  # side by side: a host window lives until the next
        _same_window(a, b)
        assert (a.plan is None) == (plan is None)
        assert (b.inputs[~b.valid] == 0).all()  # idle slots read the zero row
        count, idle = count + 1, idle + int((~b.valid).sum())
    assert count == len(host) > 5 and idle > 10


def test_a_prefetching_loader_beside_a_slow_consumer_skips_no_window_and_keeps_each_one_intact():
    """The background thread runs ahead while each window is held for a while: every window
    comes, in order, and what it holds stays as gathered until the next one is asked for."""
    xs = _sequences()
    kw = dict(batch_size=2, bptt=4, shuffle=True, seed=0)
    expected = [(w.index, w.inputs.clone(), w.sequence.clone()) for w in SlotSwapLoader(xs, None, **kw)]
    got = []
    for w in SlotSwapLoader(xs, None, prefetch=True, buffers=3, **kw):
        time.sleep(0.15)  # longer than the thread's wait to queue a window
        got.append((w.index, w.inputs.clone(), w.sequence.clone()))
        if len(got) == 6:
            break
    assert [g[0] for g in got] == list(range(6))
    for (i, x, s), (j, x0, s0) in zip(got, expected):
        assert torch.equal(x, x0) and torch.equal(s, s0), i


def test_the_prefetching_thread_is_a_named_daemon_and_ends_with_an_abandoned_pass():
    it = iter(SlotSwapLoader(_sequences(), None, batch_size=2, bptt=4, prefetch=True))
    next(it)
    threads = [t for t in threading.enumerate() if t.name == "fastseq-loader"]
    assert len(threads) == 1 and threads[0].daemon  # never keeps an interpreter from exiting
    it.close()  # leaving the loop early stops the thread
    assert not threads[0].is_alive()



def test_leaving_a_pass_while_the_thread_makes_its_next_window_does_not_hang():
    """The consumer stops (here: the producer hands it an error) while the thread is still
    making the next window, the queue empty: the thread then sees the stop and ends without
    queueing anything, so the clean-up must wait on the queue with a timeout, not for ever."""
    loader = make(prefetch=True)

    def produce():
        yield ValueError("the first window failed")
        time.sleep(0.3)  # the thread is busy here when the consumer leaves
        yield "a window never taken"

    outcome = []

    def consume():
        try:
            next(loader._threaded(produce(), None, []))
        except ValueError as exc:
            outcome.append(str(exc))

    runner = threading.Thread(target=consume, daemon=True)
    runner.start()
    runner.join(timeout=10)
    assert not runner.is_alive(), "the clean-up hung waiting on an empty queue"
    assert outcome == ["the first window failed"]

# ---------------------------------------------------------------- world_size="auto"


def test_auto_rank_and_world_without_a_process_group_is_one_process():
    assert loader_module._auto_rank_and_world(None) == (0, 1)
    assert loader_module._auto_rank_and_world(3) == (3, 1)


def test_auto_rank_and_world_reads_an_initialized_group(monkeypatch):
    import torch.distributed as dist

    for name in ("MASTER_ADDR", "MASTER_PORT", "RANK", "WORLD_SIZE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("GLOO_SOCKET_IFNAME", "lo")
    dist.init_process_group("gloo", store=dist.HashStore(), rank=0, world_size=1)
    try:
        assert loader_module._auto_rank_and_world(None) == (0, 1)
        assert loader_module._auto_rank_and_world(2) == (2, 1)  # a rank given overrides the group's
        loader = make(world_size="auto")
        assert (loader.rank, loader.world_size) == (0, 1)
    finally:
        dist.destroy_process_group()


def test_tail_order_names_the_argument_of_a_bad_tail():
    with pytest.raises(ValueError, match=r"^Expected tail to be one of 'none', 'longest_first', 'packed', got 'last'"):
        tail_order(np.arange(3), LENS, 1, "last")


def test_a_ring_of_three_buffers_reuses_each_every_third_window():
    """buffers=3 on the CPU: window i's inputs, targets and masks live in the same host memory as
    window i + 3's and in other memory than the next two (one in use, one queued, one filling):
    memory bounded by the ring, no fresh arrays per window."""
    seqs = _sequences()
    loader = SlotSwapLoader(seqs, [s[:, :1] * 2 for s in seqs], batch_size=2, bptt=4, buffers=3)
    for part in ("inputs", "targets", "reset"):
        ptrs = [getattr(w, part).data_ptr() for w in loader]
        assert len(ptrs) > 6
        assert all(ptrs[i] == ptrs[i + 3] for i in range(len(ptrs) - 3)), part
        assert all(len({ptrs[i], ptrs[i + 1], ptrs[i + 2]}) == 3 for i in range(len(ptrs) - 2)), part


def _as_tuple(value) -> tuple:
    return value if isinstance(value, tuple) else (value,)


@pytest.mark.parametrize("plan", ["packed", "dense"])
@pytest.mark.parametrize("mode", ["prefetch", "inline", "data_on_device"])
def test_every_tensor_of_a_window_is_on_the_loaders_device(plan, mode):
    """PyTorch's "meta" device stands in for an accelerator on a machine without one: every
    tensor a window hands over is on the loader's device (a packed plan's ``batch_sizes`` stays
    on the CPU, as ``PackedSequence`` needs)."""
    seqs = _sequences()
    kw = {"prefetch": mode == "prefetch", "data_on_device": mode == "data_on_device"}
    loader = SlotSwapLoader(seqs, [s[:, :1] for s in seqs], batch_size=2, bptt=4, device="meta", plan=plan, **kw)
    count = 0
    for w in loader:
        plan_tensors = [t for f in dataclasses.fields(w.plan) if f.name != "batch_sizes"
                        for t in _as_tuple(getattr(w.plan, f.name)) if isinstance(t, torch.Tensor)]
        assert plan_tensors
        for t in [w.inputs, w.targets, w.reset, w.valid, w.sequence, w.slot_map, *plan_tensors]:
            assert t.device.type == "meta"
        count += 1
    assert count == len(loader)
