"""SlotSwapLoader: every step once and in order, prefetch identical to inline, epoch-end policies."""
from __future__ import annotations

import threading

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from fastseq.bptt.loader import SlotSwapLoader, tail_order


def _tagged(lengths):
    """Sequence i, position p holds the row [i, p]: the loader's output says where it came from."""
    return [np.stack([np.full(t, i), np.arange(t)], axis=1).astype(np.float32) for i, t in enumerate(lengths)]


def _visits(loader):
    seen = {}
    for w in loader:
        x, valid, seq = w.inputs.numpy(), w.valid.numpy(), w.sequence.numpy()
        assert x.shape[:2] == valid.shape == seq.shape
        assert w.slot_map.shape[0] == x.shape[1] <= loader.batch_size
        assert np.all(x[~valid] == 0)
        for b in range(x.shape[1]):
            for k in range(x.shape[0]):
                if valid[k, b]:
                    i, p = int(x[k, b, 0]), int(x[k, b, 1])
                    assert i == seq[k, b]
                    assert w.reset[k, b].item() == (p == 0)
                    seen.setdefault(i, []).append(p)
    return seen


@settings(max_examples=30, deadline=None)
@given(st.lists(st.integers(1, 40), min_size=1, max_size=30), st.integers(1, 9), st.integers(1, 7),
       st.booleans(), st.sampled_from(["none", "longest_first", "packed"]))
def test_every_step_once_and_in_order(lengths, batch, bptt, compact, tail):
    loader = SlotSwapLoader(_tagged(lengths), None, batch, bptt, compact=compact, tail=tail, shuffle=True, seed=3)
    seen = _visits(loader)
    assert sorted(seen) == list(range(len(lengths)))
    for i, t in enumerate(lengths):
        assert seen[i] == list(range(t))


def test_prefetch_matches_inline_and_windows_do_not_alias():
    rng = np.random.default_rng(0)
    lengths = rng.integers(1, 30, size=40)
    xs = _tagged(lengths)
    ys = [x[:, :1] * 2 for x in xs]
    a = list(SlotSwapLoader(xs, ys, 6, 5, prefetch=True, shuffle=True, seed=1, buffers=None))
    b = list(SlotSwapLoader(xs, ys, 6, 5, prefetch=False, shuffle=True, seed=1, buffers=None))
    assert len(a) == len(b) > 3
    for u, v in zip(a, b):  # kept windows still hold their own data after the epoch
        for name in ("inputs", "targets", "reset", "valid", "sequence", "slot_map"):
            assert torch.equal(getattr(u, name), getattr(v, name)), name
        assert torch.equal(u.targets, u.inputs[..., :1] * 2)


@pytest.mark.parametrize("prefetch", [True, False])
def test_reused_buffers_hold_each_window_while_it_is_used(prefetch):
    rng = np.random.default_rng(4)
    xs = _tagged(rng.integers(1, 30, size=40))
    fresh = [w.inputs.clone() for w in SlotSwapLoader(xs, None, 6, 5, buffers=None)]
    held = []
    for i, w in enumerate(SlotSwapLoader(xs, None, 6, 5, buffers=4, prefetch=prefetch)):
        held.append(w)
        assert torch.equal(w.inputs, fresh[i])
        if i:  # the previous window is still intact while this one is in use
            assert torch.equal(held[i - 1].inputs, fresh[i - 1])
    assert len(held) == len(fresh)


def test_shuffle_is_reproducible_and_changes_per_epoch():
    xs = _tagged(np.arange(1, 30))
    one = SlotSwapLoader(xs, None, 4, 3, shuffle=True, seed=5, tail="none")
    two = SlotSwapLoader(xs, None, 4, 3, shuffle=True, seed=5, tail="none")
    assert np.array_equal(one.order(0), two.order(0))
    assert not np.array_equal(one.order(0), one.order(1))
    first = [w.sequence.clone() for w in one]
    again = [w.sequence.clone() for w in two]
    assert all(torch.equal(a, b) for a, b in zip(first, again))
    assert one.epoch == 1


def test_tail_policies_are_permutations_with_the_promised_shape():
    rng = np.random.default_rng(2)
    lengths = rng.integers(1, 100, size=50)
    order = rng.permutation(50)
    lf = tail_order(order, lengths, 8, "longest_first")
    for o in (lf, tail_order(order, lengths, 8, "none")):
        assert sorted(o.tolist()) == list(range(50))
    assert sorted(lengths[lf[:8]].tolist(), reverse=True) == sorted(lengths.tolist(), reverse=True)[:8]
    assert np.all(np.diff(lengths[lf[:8]]) <= 0)
    rest = [i for i in order.tolist() if i not in set(lf[:8].tolist())]
    assert lf[8:].tolist() == rest  # the others keep their order
    whole = tail_order(order, lengths, 100, "longest_first")  # batch >= N: the whole order, longest first
    assert np.all(np.diff(lengths[whole]) <= 0)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(1, 60), min_size=0, max_size=40), st.integers(1, 12), st.randoms(use_true_random=False))
def test_packed_tail_moves_the_longest_first_and_sorts_only_a_suffix(lengths, batch, rnd):
    lengths = np.array(lengths, dtype=np.int64)
    order = np.array(rnd.sample(range(lengths.size), lengths.size), dtype=np.int64)
    packed = tail_order(order, lengths, batch, "packed")
    front = tail_order(order, lengths, batch, "longest_first")
    assert sorted(packed.tolist()) == list(range(lengths.size))
    head = min(batch, lengths.size)
    assert packed[:head].tolist() == front[:head].tolist()  # the same longest first
    rest, kept = packed[head:], front[head:]
    # a prefix of the rest keeps the order; the suffix after it is longest first
    cut = next((i for i in range(rest.size + 1) if sorted(rest[i:].tolist()) == sorted(kept[i:].tolist())
                and np.all(np.diff(lengths[rest[i:]]) <= 0)), None)
    assert cut is not None and rest[:cut].tolist() == kept[:cut].tolist()
    if rest.size > 1:  # the sorted suffix holds at least batch x the longest remaining length, or is all of it
        assert cut == 0 or lengths[rest[cut:]].sum() >= batch * lengths[rest].max()


def _epoch_steps(lengths: np.ndarray, batch: int, tail: str, seed: int) -> int:
    loader = SlotSwapLoader([np.zeros((t, 1), np.float32) for t in lengths], None, batch, 1, tail=tail, shuffle=True,
                            seed=seed, plan=None, prefetch=False)
    return len(loader)


@pytest.mark.parametrize("n, batch, cap", [(3000, 256, 400), (2000, 64, 2000), (600, 32, 10_000)])
def test_packed_tail_ends_the_epoch_at_its_lower_bound(n, batch, cap):
    """Slots finish together: the epoch lasts max(longest, ceil(total / B)) steps, within 1%,
    where longest_first drains for tens of steps and the plain order for hundreds."""
    rng = np.random.default_rng(n)
    lengths = np.clip(rng.lognormal(np.log(40), 1.0, size=n).round().astype(int), 1, cap)
    bound = max(int(lengths.max()), -(-int(lengths.sum()) // batch))
    for seed in range(2):
        steps = {tail: _epoch_steps(lengths, batch, tail, seed) for tail in ("packed", "longest_first", "none")}
        assert bound <= steps["packed"] <= bound * 1.01, (bound, steps)
        assert steps["packed"] < steps["longest_first"] <= steps["none"], (bound, steps)


def test_longest_first_shortens_the_drain():
    """Compact windows already skip idle slots; admitting the longest first cuts the narrow windows."""
    rng = np.random.default_rng(0)
    lengths = np.clip(rng.lognormal(np.log(40), 1.0, size=600).round().astype(int), 1, None)
    xs = [np.zeros((t, 1), np.float32) for t in lengths]
    narrow = {}
    for tail in ("none", "longest_first"):
        counts = []
        for seed in range(3):
            loader = SlotSwapLoader(xs, None, 32, 16, tail=tail, shuffle=True, seed=seed, plan=None, prefetch=False)
            counts.append(sum(w.inputs.shape[1] < 32 for w in loader))
        narrow[tail] = counts
    assert all(a < b for a, b in zip(narrow["longest_first"], narrow["none"]))


def test_break_early_stops_the_thread_and_errors_reach_the_caller():
    xs = _tagged(np.full(50, 9))
    before = threading.active_count()
    loader = SlotSwapLoader(xs, None, 4, 2, prefetch=True)
    for i, _ in enumerate(loader):
        if i == 2:
            break
    assert threading.active_count() == before

    def boom(rows, out=None):
        raise RuntimeError("disk gone")

    loader.inputs.gather = boom
    with pytest.raises(RuntimeError, match="disk gone"):
        list(loader)


def test_inputs_are_not_mutated():
    xs = _tagged([3, 5, 2])
    copies = [x.copy() for x in xs]
    list(SlotSwapLoader(xs, xs, 2, 2))
    assert all(np.array_equal(a, b) for a, b in zip(xs, copies))


def test_bad_arguments_name_the_expectation():
    xs = _tagged([3, 5])
    with pytest.raises(ValueError, match=r"inputs\[i\] and targets\[i\] to have the same length, got 5 and 4 at i=1"):
        SlotSwapLoader(xs, [xs[0], xs[1][:4]], 2, 2)
    with pytest.raises(ValueError, match="same number of sequences, got 2 and 1"):
        SlotSwapLoader(xs, xs[:1], 2, 2)
    with pytest.raises(ValueError, match="batch_size to be an integer >= 1, got 0"):
        SlotSwapLoader(xs, None, 0, 2)
    with pytest.raises(ValueError, match="tail to be"):
        SlotSwapLoader(xs, None, 2, 2, tail="shortest")
    with pytest.raises(ValueError, match="buffers to be None or >= 3"):
        SlotSwapLoader(xs, None, 2, 2, buffers=2)
    with pytest.raises(ValueError, match="plan to be"):
        SlotSwapLoader(xs, None, 2, 2, plan="grouped")


def test_len_and_total_steps():
    loader = SlotSwapLoader(_tagged([3, 1, 1]), None, batch_size=2, bptt=2, tail="none")
    assert len(loader) == len(list(loader)) == 2
    assert loader.total_steps == 5


def test_slots_beyond_the_sequences_are_never_allocated_and_huge_windows_are_refused():
    xs = _tagged([3, 5, 2, 4])
    loader = SlotSwapLoader(xs, xs, batch_size=10**9, bptt=4)  # used to allocate 10**9 slots
    assert loader.slots == 4
    assert max(w.inputs.shape[1] for w in loader) == 4
    assert {int(s) for w in loader for s in w.sequence.unique() if s >= 0} == {0, 1, 2, 3}
    many = _tagged(np.full(64, 3))
    with pytest.raises(ValueError, match=r"would need [\d.]+ [KMGTPE]iB"):
        SlotSwapLoader(many, many, batch_size=64, bptt=10**12)


def test_shards_keep_the_global_order_and_cover_every_sequence_once():
    xs = _tagged(np.arange(1, 12))
    loaders = [SlotSwapLoader(xs, None, 2, 3, shuffle=True, seed=1, rank=r, world_size=3, tail="longest_first")
               for r in range(3)]
    whole = loaders[0].global_order(0).tolist()
    for lo in loaders:  # each shard keeps the epoch order, but for its longest sequences admitted first
        rest = lo.order(0)[min(2, lo.order(0).size):].tolist()
        assert rest == [i for i in whole if i in set(rest)]
    per_rank = [{int(s) for w in lo for s in w.sequence.unique() if s >= 0} for lo in loaders]
    assert sorted(i for ids in per_rank for i in ids) == list(range(11))  # each once, on one rank
    with pytest.raises(ValueError, match=r"rank to be an integer in \[0, 3\), got 3"):
        SlotSwapLoader(xs, None, 2, 3, rank=3, world_size=3)


def test_data_on_device_mode_gives_the_same_windows():
    xs = _tagged([4, 1, 6, 3])
    ys = [x * 2 for x in xs]
    host = list(SlotSwapLoader(xs, ys, 3, 2, buffers=None))
    device = list(SlotSwapLoader(xs, ys, 3, 2, data_on_device=True))
    assert len(host) == len(device)
    for a, b in zip(host, device):
        for name in ("inputs", "targets", "reset", "valid", "sequence", "slot_map"):
            assert torch.equal(getattr(a, name), getattr(b, name)), name
